"""Reduced SBC of the gradient-based warm-up (issue 9): does ``adaptation="gradient"`` keep NUTS calibrated?

pk.one_cmt_iv (``default_spec``, non-centred as ``validation/run.py`` fits PK models), 12 patients, diagonal
mass, the settings of ``tests/validation/test_sbc.py``'s reduced SBC (warm-up 300, 500 draws thinned by 10,
2 chains, seed 11), with ``run_sbc(..., adaptation=...)``. Passing means the ranks of the true values among
the posterior draws are uniform (Bonferroni over the quantities at ``alpha``); the misspecified-prior variant
(prior SDs / 3) must fail, or the check has no power. Both adaptations run in the same process, so their
wall times compare (the machine's load aside); the Stan-style one is the reference.

Measured 2026-11-27 05:28 UTC (30 replications, 2-core shared machine, load ~10): gradient passed (smallest p
0.36; 61.9 leapfrog steps per draw; 11 of 30 replications with a divergence; median max R-hat 1.026; 136 s),
its misspecified variant failed (p 2.5e-13); stan passed (p 0.22; 111.7 steps per draw; 7 of 30; 1.026;
145 s), misspecified failed (p 7.9e-12).

``--model NAME`` instead runs that built-in model's SBC exactly as ``validation/run.py`` does (its spec and
centring from ``run.sbc_setup``, ``SBC_SETTINGS``: 2 chains x (300 warm-up + 500 draws) thinned by 10, seed 0,
mass by ``dense_mass_for``), with ``adaptation=...``: the Stan-style row is then the committed SBC result of
``docs/validation.md`` and need not be rerun (``--adaptations gradient``). The misspecified-prior variant runs
``--broken-replications`` replications (60, as ``validation/run.py``).

Measured 2026-11-27 20:59-21:10 UTC, ``--model pk.one_cmt_oral --replications 200 --adaptations gradient
--broken-replications 60`` (the FULL population SBC, non-centred, diagonal mass; 2-core box shared with other
jobs, load 10-13, nice 5): gradient passed (smallest p 0.026, sigma_prop; Bonferroni threshold 0.001); mean
leapfrog steps per draw 51.4; 63 of 200 replications with a divergence; median max R-hat 1.029; 512 s. Its
misspecified variant failed, as it must (p 3.3e-14; 112 s). The Stan-style reference (docs/validation.md,
18:59 UTC near idle): passed, p 0.057, 44 of 200 with divergences, median max R-hat 1.034, 269 s; rerun here
right after (21:12-21:21 UTC, ``--adaptations stan --no-broken``, load 10-11): the same figures exactly, 87.4
leapfrog steps per draw, 543 s. So the gradient warm-up took 0.59x the steps per draw, with more replications
with a divergence (63 vs 44) and a smaller but passing smallest p (0.026 vs 0.057).

``--adaptations gradient:stan`` runs the gradient warm-up with bayestwin's own NUTS tree
(``run_sbc(..., trajectory="stan")``, ``bayestwin.inference.trajectory``: Stan's U-turn criterion).
Measured 2026-11-27 23:34-23:41 UTC (helper NUT4; 2-core box shared with other jobs, load 3-6, nice 5),
``--model pk.one_cmt_oral --replications 60``, the same replications (seed 0) for both trees, gradient
warm-up: bayestwin's tree passed (smallest p 0.28, omega_cl), 63.6 leapfrog steps per draw, 21 of 60
replications with a divergence, median max R-hat 1.029, 144 s; its misspecified variant (60) failed, as it
must (p 3.5e-15; 87 s). NumPyro's tree (``--adaptations gradient --no-broken``, right after): passed (p 0.105,
v[1]), 59.0 steps per draw, 20 of 60 with a divergence, median max R-hat 1.033, 158 s. The FULL 200 with
bayestwin's tree (23:43-23:50 UTC, load 4-9, ``--replications 200 --adaptations gradient:stan --no-broken``):
passed (smallest p 0.020, cl[1]; threshold 0.001), 56.1 steps per draw, 66 of 200 with a divergence, median
max R-hat 1.029, 371 s; NumPyro's tree on the same 200 (the committed run above): p 0.026, 51.4, 63 of 200.

Two more models with the gradient warm-up and bayestwin's tree, FULL 200 + 60 misspecified (lead,
2026-11-28 01:17-01:26 UTC, load 4.8-5.6, beside another SBC; ``--model M --replications 200 --adaptations
gradient:stan --broken-replications 60``): pk.two_cmt_iv passed (smallest p 0.082, v2[1]; threshold 0.00077),
43.0 steps per draw, 56 of 200 with a divergence, median max R-hat 1.037, 214 s; misspecified failed (7.9e-15).
pk.one_cmt_iv passed (0.042, tv_v; threshold 0.0014), 53.0 steps per draw, 52 of 200 with a divergence, median
max R-hat 1.026, 157 s; misspecified failed (2e-11). The Stan-style warm-up with NumPyro's tree on the same
designs (docs/validation.md, diagonal mass): 34 of 200 with a divergence for both models. So on all three PK
models the gradient warm-up, with either tree, passes SBC but leaves more replications with a divergence
(56 vs 34, 52 vs 34, 66/63 vs 44): the reason the default stays ``adaptation="stan"``.

Usage: ``python validation/adaptation_sbc.py [--replications 30] [--adaptations gradient,stan,gradient:stan]
[--no-broken] [--model pk.one_cmt_oral] [--broken-replications 60]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    import bayestwin  # noqa: F401  (4 XLA host devices before JAX starts)
    from bayestwin.models import get_model
    from bayestwin.testing import default_spec
    from bayestwin.validation import misspecified_prior, run_sbc

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=30)
    parser.add_argument("--adaptations", default="gradient,stan")
    parser.add_argument("--no-broken", action="store_true", help="skip the misspecified-prior variant")
    parser.add_argument("--model", default="", help="a built-in model, set up as validation/run.py's SBC")
    parser.add_argument("--broken-replications", type=int, default=None,
                        help="replications of the misspecified variant (default: as --replications)")
    args = parser.parse_args(argv)
    if args.model:
        sys.path.insert(0, str(ROOT / "validation"))
        from run import sbc_setup

        spec, base = sbc_setup(args.model)
        settings = {"n_replications": args.replications, **base}
    else:
        spec = dataclasses.replace(default_spec(get_model("pk.one_cmt_iv")), centered=False)
        settings = {"n_replications": args.replications, "n_patients": 12, "warmup": 300, "draws": 500, "thin": 10,
                    "seed": 11, "dense_mass": False}
    broken = dict(settings, n_replications=args.broken_replications or args.replications)
    failures = 0
    for label in [a.strip() for a in args.adaptations.split(",") if a.strip()]:
        adaptation, _, trajectory = label.partition(":")  # "gradient:stan": bayestwin's own NUTS tree
        tree = {"trajectory": trajectory} if trajectory else {}
        good = run_sbc(spec, adaptation=adaptation, **tree, **settings)
        rep = good.replications
        p_min = good.tests()["p_value"].min()
        print(f"{label}: {'passed' if good.ok else 'FAILED'} (smallest p {p_min:.3g}); mean leapfrog steps "
              f"per draw {rep['mean_steps'].mean():.1f}; reps with divergences {(rep['divergences'] > 0).sum()}; "
              f"median max R-hat {rep['max_rhat'].median():.3f}; {good.wall_s:.0f} s", flush=True)
        print(good.format(), flush=True)
        failures += not good.ok
        if not args.no_broken:
            bad = run_sbc(spec, fit_spec=misspecified_prior(spec, 1 / 3), adaptation=adaptation, **tree, **broken)
            print(f"{label} misspecified prior: {'failed, as it must' if not bad.ok else 'PASSED (no power)'} "
                  f"(smallest p {bad.tests()['p_value'].min():.2g}); {bad.wall_s:.0f} s", flush=True)
            failures += bad.ok
    return int(failures > 0)


if __name__ == "__main__":
    raise SystemExit(main())
