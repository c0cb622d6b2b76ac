#!/usr/bin/env bash
# Population SBC blocks of one model on a many-core machine (a device loan), returned as they finish.
#
# Starts WORKERS processes of `validation/sbc_blocks.py run`, each with 2 host devices (its replication's 2
# chains) and `--block 1`; they share the ids through claim files, skip the ids already stored under ROOT
# (the repository's copy of docs/validation/fragments/sbc_parts, so nothing is run twice), and start no
# replication they expect to end after DEADLINE seconds. Every PACK_S seconds, and at the end, the model's
# stored blocks are packed into $OUT/sbc_parts.tar (one file: a call brings back few files), so a call cut at
# its time limit still returns every replication that ended. Unpack it at the repository root:
#     tar xf sbc_parts.tar            # adds docs/validation/fragments/sbc_parts/<model>/*.json
#
# Environment: MODEL (default pd.one_cmt_oral_idr1), IDS (0:200), BROKEN (1: the broken variant),
# WORKERS (nproc / 2), DEADLINE (420), PACK_S (10), ROOT (the stored parts), PYTHON (python3), OUT (.).
# Wheels in .whl/ (git-ignored; see validation/device_sbc.md) are installed into /tmp/site first when
# PYTHON lacks numpyro, arviz, pint or pandas (the device image has JAX only).
#
# Example (here, 2 workers on 2 cores, 10 minutes):
#     WORKERS=2 DEADLINE=600 PYTHON=.venv/bin/python OUT=/tmp bash validation/device_blocks.sh
set -u
MODEL=${MODEL:-pd.one_cmt_oral_idr1}
IDS=${IDS:-0:200}
WORKERS=${WORKERS:-$(( $(nproc) / 2 ))}
DEADLINE=${DEADLINE:-420}
PACK_S=${PACK_S:-10}
ROOT=${ROOT:-docs/validation/fragments/sbc_parts}
PYTHON=${PYTHON:-python3}
OUT=${OUT:-.}
EXTRA=()
[ "${BROKEN:-0}" = 1 ] && EXTRA+=(--broken)
T0=$(date +%s)

if ! "$PYTHON" -c "import numpyro, arviz, pint, pandas" 2> /dev/null && compgen -G ".whl/*.whl" > /dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 JAX_PLATFORMS=cpu XLA_FLAGS=--xla_force_host_platform_device_count=2
mkdir -p "$ROOT/$MODEL" "$OUT/device_blocks_logs"

pack() {
  tar cf "$OUT/sbc_parts.tmp" "$ROOT/$MODEL" -C "$OUT" device_blocks_logs 2> /dev/null \
    && mv "$OUT/sbc_parts.tmp" "$OUT/sbc_parts.tar"
}

pids=()
for w in $(seq 1 "$WORKERS"); do
  "$PYTHON" validation/sbc_blocks.py run "$MODEL" --ids "$IDS" --block 1 --deadline "$DEADLINE" --root "$ROOT" \
    "${EXTRA[@]}" > "$OUT/device_blocks_logs/worker$w.log" 2>&1 &
  pids+=($!)
  sleep 1  # stagger the first claims and compilations a little
done
echo "[device_blocks] $MODEL: $WORKERS workers started at $(( $(date +%s) - T0 )) s"
while :; do
  alive=0
  for p in "${pids[@]}"; do kill -0 "$p" 2> /dev/null && alive=1; done
  pack
  [ "$alive" = 0 ] && break
  sleep "$PACK_S"
done
pack
echo "[device_blocks] done at $(( $(date +%s) - T0 )) s"
cat "$OUT"/device_blocks_logs/worker*.log | grep "sbc_blocks\|Error" || true
