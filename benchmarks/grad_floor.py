"""How cheap can one gradient of the N-patient population density be in JAX on this CPU? (issue 9, brief DENS2)

One process, float64, the peer model of ``peerlib.models`` (one-compartment oral PK, one dose, ten samples per
patient, proportional error, the ``oral_1cpt`` spec: centred log-normal BSV), each candidate inside a compiled
``lax.fori_loop`` of ``--loop`` evaluations (what NUTS pays inside its compiled while loop), one chain (``jit``)
and 4 chains under ``pmap`` over the 4 XLA host devices (as ``fit_population`` samples: the layout that counts),
timed in interleaved rounds: wall time and this process's CPU time per step of all chains, min and median.

Candidates, all on the same unconstrained vector as bayestwin's sampler (``bayestwin_density``'s ravel order):

* (a) bayestwin's population potential, value only;
* (b) bayestwin, value + gradient as the sampler calls it (NumPyro's ``potential_fn`` on the unravelled dict);
* (c) the model written directly in NumPyro (``peerlib.models.numpyro_model``; its own flat vector);
* (d) the FLOOR: the same log density written by hand in ``jax.numpy`` on flat ``(patient, 10)`` arrays (no
  NumPyro, no padding, no masks), differentiated by ``jax.value_and_grad``;
* (e) the same density with its gradient written out (``jax.custom_vjp``: the Bateman prediction and its
  derivatives in log ka, log CL, log V share ``exp(-ka t)`` and ``exp(-ke t)``; the proportional-error Normal
  log density and its derivative written out), through ``jax.value_and_grad``;
* (d'), (d'') the floor on bayestwin's padded ``(patient, 12)`` layout with its masks, and with bayestwin's
  kernels (``predict_cohort`` + ``observation_loglik``) under hand-written priors and transforms: what padding
  and what the NumPyro wrapper (dict unravel, transforms, Jacobians) cost;
* the library's parts (``density_cost._parts``): prediction, likelihood, priors.

Load-independent evidence first: XLA's cost analysis (flops, transcendental calls, bytes) and the number of
fusions / kernels in the optimised HLO of each compiled value-and-gradient. Values of (a), (d), (e) and the
gradients of (d), (e) are checked against (b) at the start point and four random points.

``--ablation``: bayestwin, (e') and (e') with each part of bayestwin's element chain added (the stable divided
difference, its ``x == 0`` branch, the dose-time masks): where the floor's advantage lies.

Usage: ``python benchmarks/grad_floor.py [--sizes 12,200] [--rounds 21] [--loop 300] [--chains 1,4] [--ablation]``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bayestwin  # noqa: E402,F401  (before jax: 4 host devices, as in sampling)

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def hand_density(data: dict, padded: int | None = None, ablation: frozenset[str] = frozenset()):
    """``(logp, value_and_grad by autodiff, value_and_grad written out)`` on bayestwin's flat vector.

    bayestwin's ravel order: ``eta`` (patient x [ka, cl, v]) first, then the log of omega_cl, omega_ka, omega_v,
    sigma_prop, tv_cl, tv_ka, tv_v. `padded`: lay the observations out as bayestwin does, ``(patient, padded)``
    with a mask (the extra slots get t = 1, y = 1 and contribute 0), instead of ``(patient, 10)``.

    `ablation` adds to the written-out gradient what bayestwin's element chain carries: ``"stable"`` the stable
    divided difference (``-exp(-min(ka, ke) t) expm1(-|x|) / |ka - ke|``, flip-flop selects), ``"branch"`` the
    library's ``bolus._parts`` itself (with its ``x == 0`` branch, and the derivatives' branch), ``"masks"`` the
    dose-time masks of ``closed_form.superpose`` (time since the dose, counts, lag, active).
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    from peerlib.models import OMEGA_PRIOR, SIGMA_PRIOR, TV_PRIOR

    n = int(data["dose"].size)
    m = int(data["y"].size) // n
    t = np.reshape(data["t"], (n, m))
    y = np.reshape(data["y"], (n, m))
    mask = np.ones((n, m), bool)
    if padded:
        pad = ((0, 0), (0, padded - m))
        t, y, mask = np.pad(t, pad, constant_values=1.0), np.pad(y, pad, constant_values=1.0), np.pad(mask, pad)
    t, y, mask = jnp.asarray(t), jnp.asarray(y), jnp.asarray(mask)
    dose = jnp.asarray(data["dose"])[:, None]
    loc = jnp.log(jnp.array([TV_PRIOR[p][0] for p in ("ka", "cl", "v")]))
    scale = jnp.array([TV_PRIOR[p][1] for p in ("ka", "cl", "v")])
    om_scale = jnp.array([OMEGA_PRIOR[p] for p in ("ka", "cl", "v")])
    count = float(mask.sum())

    def split(x):
        eta = jnp.reshape(x[:3 * n], (n, 3))
        w = x[3 * n:3 * n + 3][jnp.array([1, 0, 2])]  # log omega in (ka, cl, v) order
        u = x[3 * n + 4:3 * n + 7][jnp.array([1, 0, 2])]  # log tv in (ka, cl, v) order
        return eta, w, x[3 * n + 3], u

    def priors(eta, w, ls, u):
        omega = jnp.exp(w)
        lp = jnp.sum(-0.5 * ((u - loc) / scale) ** 2 - jnp.log(scale)) - 3 * HALF_LOG_2PI
        lp += jnp.sum(math.log(2.0) - HALF_LOG_2PI - jnp.log(om_scale) - 0.5 * (omega / om_scale) ** 2 + w)
        lp += math.log(2.0) - HALF_LOG_2PI - math.log(SIGMA_PRIOR) - 0.5 * (jnp.exp(ls) / SIGMA_PRIOR) ** 2 + ls
        return lp + jnp.sum(-0.5 * (eta / omega) ** 2 - w) - n * 3 * HALF_LOG_2PI

    def logp(x):
        eta, w, ls, u = split(x)
        lk, lc, lv = ((u[j] + eta[:, j])[:, None] for j in range(3))
        ka, ke = jnp.exp(lk), jnp.exp(lc - lv)
        c = dose * ka * jnp.exp(-lv) / (ka - ke) * (jnp.exp(-ke * t) - jnp.exp(-ka * t))
        sigma = jnp.exp(ls)
        r = (y - c) / (sigma * c)
        ll = jnp.where(mask, -0.5 * r * r - jnp.log(c) - ls, 0.0)
        return priors(eta, w, ls, u) + jnp.sum(ll) - count * HALF_LOG_2PI

    def written_out(x):
        """``(logp(x), its gradient)``: the likelihood block's derivatives from the shared exponentials."""
        eta, w, ls, u = split(x)
        lk, lc, lv = ((u[j] + eta[:, j])[:, None] for j in range(3))
        ka, ke = jnp.exp(lk), jnp.exp(lc - lv)
        amp = dose * ka * jnp.exp(-lv)
        if not ablation:
            inv_d = 1.0 / (ka - ke)
            e_ke, e_ka = jnp.exp(-ke * t), jnp.exp(-ka * t)
            dd = (e_ke - e_ka) * inv_d
            c = amp * dd
        else:
            c, dd, dd_ke, dd_ka, active = _ablated_elements(ka, ke, amp, t, ablation)
        q = y / c
        r = q - 1.0
        s2 = jnp.exp(-2.0 * ls)
        ll = jnp.where(mask, -0.5 * r * r * s2 - jnp.log(c) - ls, 0.0)
        gc = jnp.where(mask, r * q * s2 - 1.0, 0.0)  # c d ll / dc
        if not ablation:
            h = gc * inv_d / dd  # (d ll / dc) amp / (ka - ke)
            g_lk = jnp.sum(gc + h * ka * (t * e_ka - dd), axis=1)
            g_lc = jnp.sum(h * ke * (dd - t * e_ke), axis=1)
        else:
            h = gc / dd if active is None else jnp.where(active, gc / dd, 0.0)  # (d ll / dc) amp
            g_lk = jnp.sum(gc + h * ka * dd_ka, axis=1)
            g_lc = jnp.sum(h * ke * dd_ke, axis=1)
        g_lv = -jnp.sum(gc, axis=1) - g_lc
        g_ls = jnp.sum(jnp.where(mask, r * r * s2 - 1.0, 0.0))
        g_lik = jnp.stack([g_lk, g_lc, g_lv], axis=1)
        (lp, (g_eta, g_w, g_s, g_u)) = jax.value_and_grad(priors, argnums=(0, 1, 2, 3))(eta, w, ls, u)
        g_eta = g_eta + g_lik
        g_u = g_u + jnp.sum(g_lik, axis=0)
        perm = jnp.array([1, 0, 2])
        grad = jnp.concatenate([jnp.ravel(g_eta), g_w[perm], jnp.reshape(g_s + g_ls, (1,)), g_u[perm]])
        return lp + jnp.sum(ll) - count * HALF_LOG_2PI, grad

    @jax.custom_vjp
    def logp_vjp(x):
        return written_out(x)[0]

    def fwd(x):
        v, g = written_out(x)
        return v, g

    def bwd(g, ct):
        return (ct * g,)

    logp_vjp.defvjp(fwd, bwd)
    return logp, jax.value_and_grad(logp), jax.value_and_grad(logp_vjp)


def _ablated_elements(ka, ke, amp, t, ablation: frozenset[str]):
    """``(c, dd, d dd / d ke, d dd / d ka, active or None)`` with the parts of bayestwin's chain in `ablation`."""
    import jax.numpy as jnp

    from bayestwin.dynamics.bolus import _parts

    active = None
    tau = t
    if "masks" in ablation:  # one dose at time 0 into the depot, no lag: what superpose computes around it
        since = t - jnp.zeros_like(ka)
        counts = since >= 0
        tau = jnp.where(counts, since, 0.0) - 0.0
        active = counts & (tau >= 0)
        tau = jnp.where(active, tau, 0.0)
    if "branch" in ablation:
        e_ke, e_ka, dd, near, inv_d = _parts(ke, ka, tau, False)
        half_t2 = -0.5 * tau * tau * e_ke
        dd_ke = jnp.where(near, half_t2, (dd - tau * e_ke) * inv_d)
        dd_ka = jnp.where(near, half_t2, (tau * e_ka - dd) * inv_d)
    else:
        diff = ka - ke
        inv_d = 1.0 / diff
        if "stable" in ablation:
            e_lo = jnp.exp(-jnp.minimum(ka, ke) * tau)
            m = jnp.expm1(-jnp.abs(diff * tau))
            e_hi = e_lo + e_lo * m
            flip = diff < 0
            e_ke, e_ka = jnp.where(flip, e_hi, e_lo), jnp.where(flip, e_lo, e_hi)
            dd = -e_lo * m * jnp.abs(inv_d)
        else:
            e_ke, e_ka = jnp.exp(-ke * tau), jnp.exp(-ka * tau)
            dd = (e_ke - e_ka) * inv_d
        dd_ke, dd_ka = (dd - tau * e_ke) * inv_d, (tau * e_ka - dd) * inv_d
    c = amp * dd
    if active is not None:
        c = jnp.where(active, c, 0.0)
    return c, dd, dd_ke, dd_ka, active


def library_kernels_hand_priors(data: dict):
    """value_and_grad of bayestwin's prediction and likelihood kernels under hand-written priors and transforms."""
    import jax
    import jax.numpy as jnp
    from model_specs.oral_1cpt import spec
    from peerlib.models import nonmem_frame

    from bayestwin.data import read_nonmem
    from bayestwin.inference.arrays import cohort_arrays
    from bayestwin.inference.likelihood import observation_loglik
    from bayestwin.inference.population import predict_cohort
    from bayestwin.models import get_model

    s = spec()
    model = get_model(s.model)
    arrays = cohort_arrays(read_nonmem(nonmem_frame(data), units={"time": "h", "amt": "mg", "dv": "mg/L"}), s, model)
    obs = arrays.obs
    n = arrays.n_patients
    priors = _hand_priors(data)

    def logp(x):
        eta = jnp.reshape(x[:3 * n], (n, 3))
        u = x[3 * n + 4:3 * n + 7][jnp.array([1, 0, 2])]
        theta = {p: jnp.exp(u[j] + eta[:, j]) for j, p in enumerate(("ka", "cl", "v"))}
        pred = predict_cohort(model, theta, arrays.doses, obs.time, arrays.features)[..., 0]
        ll = observation_loglik(obs.value, pred, kind="proportional", sigmas={"sigma_prop": jnp.exp(x[3 * n + 3])},
                                cens=obs.cens, limit=obs.limit, mask=obs.mask, censored=False)
        return priors(x) + jnp.sum(ll)

    return jax.value_and_grad(logp)


def _hand_priors(data: dict):
    """The hand density's priors + Jacobians + random effects alone (no likelihood), on bayestwin's vector."""
    import jax.numpy as jnp
    from peerlib.models import OMEGA_PRIOR, SIGMA_PRIOR, TV_PRIOR

    n = int(data["dose"].size)
    loc = jnp.log(jnp.array([TV_PRIOR[p][0] for p in ("ka", "cl", "v")]))
    scale = jnp.array([TV_PRIOR[p][1] for p in ("ka", "cl", "v")])
    om_scale = jnp.array([OMEGA_PRIOR[p] for p in ("ka", "cl", "v")])

    def priors(x):
        eta = jnp.reshape(x[:3 * n], (n, 3))
        w = x[3 * n:3 * n + 3][jnp.array([1, 0, 2])]
        ls = x[3 * n + 3]
        u = x[3 * n + 4:3 * n + 7][jnp.array([1, 0, 2])]
        omega = jnp.exp(w)
        lp = jnp.sum(-0.5 * ((u - loc) / scale) ** 2 - jnp.log(scale)) - 3 * HALF_LOG_2PI
        lp += jnp.sum(math.log(2.0) - HALF_LOG_2PI - jnp.log(om_scale) - 0.5 * (omega / om_scale) ** 2 + w)
        lp += math.log(2.0) - HALF_LOG_2PI - math.log(SIGMA_PRIOR) - 0.5 * (jnp.exp(ls) / SIGMA_PRIOR) ** 2 + ls
        return lp + jnp.sum(-0.5 * (eta / omega) ** 2 - w) - n * 3 * HALF_LOG_2PI
    return priors


def hlo_counts(fn, x0) -> dict[str, float]:
    """XLA cost analysis of the compiled `fn` and the number of fusions / instructions in its entry computation."""
    import jax

    compiled = jax.jit(fn).lower(x0).compile()
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    text = compiled.as_text()
    entry = text[text.index("ENTRY"):]
    entry = entry[:entry.index("\n}")]
    lines = [ln for ln in entry.splitlines()[1:] if "=" in ln]
    kinds = [re.search(r"= \S+ (\S+?)\(", ln) for ln in lines]
    ops = [k.group(1) for k in kinds if k]
    skip = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast"}
    return {"Mflop": float(analysis.get("flops", float("nan"))) / 1e6,
            "transcendentals": float(analysis.get("transcendentals", float("nan"))),
            "MB": float(analysis.get("bytes accessed", float("nan"))) / 1e6,
            "fusions": float(sum(op == "fusion" for op in ops)),
            "kernels": float(sum(op not in skip for op in ops))}


def value_loop(fn, k: int):
    """``x -> (x', sum)`` after `k` evaluations of the scalar `fn` in a ``lax.fori_loop`` (x nudged each time)."""
    import jax
    import jax.numpy as jnp

    def loop(x):
        def body(_i, carry):
            x, acc = carry
            v = fn(x)
            return x + 1e-12 * v, acc + v
        return jax.lax.fori_loop(0, k, body, (x, jnp.zeros((), x.dtype)))
    return jax.jit(loop)


def agreement(reference, candidate, x0, seed: int = 0) -> tuple[float, float]:
    """Largest relative difference of value and gradient (``candidate`` vs ``reference``) at x0 + 4 random points."""
    import jax
    import numpy as np

    rng = np.random.default_rng(seed)
    points = [np.asarray(x0)] + [np.asarray(x0) + rng.normal(0.0, 0.3, x0.size) for _ in range(4)]
    fr, fc = jax.jit(reference), jax.jit(candidate)
    dv, dg = [], []
    for x in points:
        (vr, gr), (vc, gc) = fr(x), fc(x)
        dv.append(float(abs(vc - vr) / abs(vr)))
        gr, gc = np.asarray(gr), np.asarray(gc)
        dg.append(float(np.max(np.abs(gc - gr)) / np.max(np.abs(gr))))
    return float(np.max(dv)), float(np.max(dg))  # NaN propagates


ABLATION = {"(e'') + stable divided difference": frozenset({"stable"}),
            "(e'') + bolus._parts (stable, x == 0 branch)": frozenset({"branch"}),
            "(e'') + bolus._parts + dose-time masks": frozenset({"branch", "masks"}),
            "(e'') + dose-time masks only": frozenset({"masks"})}


def ablation_candidates(data: dict) -> dict[str, tuple]:
    """``name -> ("vg", fn, x0)``: bayestwin, (e') and (e') with each part of bayestwin's element chain added."""
    from peerlib.profile import bayestwin_density

    vg, _ravel, _unravel, x0 = bayestwin_density(data)
    out = {"(b) bayestwin value + gradient (potential_fn)": ("vg", vg, x0),
           "(e') written-out gradient on padded (patient, 12) + mask": ("vg", hand_density(data, padded=12)[2], x0)}
    return out | {name: ("vg", hand_density(data, padded=12, ablation=parts)[2], x0)
                  for name, parts in ABLATION.items()}


def candidates(data: dict) -> dict[str, tuple]:
    """``name -> (kind, fn, x0)``; kind "vg" (value and gradient) or "v" (value only)."""
    import jax
    from density_cost import _parts
    from peerlib.profile import bayestwin_density, numpyro_density

    vg, _ravel, _unravel, x0 = bayestwin_density(data)
    logp, floor_vg, vjp_vg = hand_density(data)
    _, floor12_vg, vjp12_vg = hand_density(data, padded=12)
    out = {"(a) bayestwin potential, value only": ("v", lambda x: vg(x)[0], x0),  # XLA drops the gradient
           "(b) bayestwin value + gradient (potential_fn)": ("vg", vg, x0)}
    nvg, nx0 = numpyro_density(data)
    out["(c) NumPyro written directly"] = ("vg", nvg, nx0)
    out["(d) floor: hand jnp, flat (patient, 10), jax.grad"] = ("vg", floor_vg, x0)
    out["(e) floor: hand jnp, flat, gradient written out (custom_vjp)"] = ("vg", vjp_vg, x0)
    out["(d') floor on padded (patient, 12) + mask, jax.grad"] = ("vg", floor12_vg, x0)
    out["(e') written-out gradient on padded (patient, 12) + mask"] = ("vg", vjp12_vg, x0)
    out["(d'') bayestwin kernels, hand priors + transforms"] = ("vg", library_kernels_hand_priors(data), x0)
    out["(d) floor value only"] = ("v", logp, x0)
    for name, (f, x) in _parts(data).items():
        if "whole" not in name:
            out["part: " + name] = ("vg", f, x)
    out["part: hand priors + random effects (+ transforms)"] = ("vg", jax.value_and_grad(_hand_priors(data)), x0)
    return out


def measure(n: int, rounds: int, k: int, chains: tuple[int, ...] = (1, 4), ablation: bool = False) -> dict:
    """Agreement, HLO counts and interleaved timings (1 chain: jit; more: pmap) of every candidate at `n` patients.

    `ablation`: the candidates of ``ablation_candidates`` instead.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    from peerlib.models import simulate
    from peerlib.profile import evaluation_loop

    data = simulate(n)
    cands = ablation_candidates(data) if ablation else candidates(data)
    ref = cands["(b) bayestwin value + gradient (potential_fn)"][1]
    x0 = cands["(b) bayestwin value + gradient (potential_fn)"][2]
    agree = {name: agreement(ref, f, x0) for name, (kind, f, x) in cands.items()
             if kind == "vg" and x.shape == x0.shape and not name.startswith("part")}
    counts = {name: hlo_counts(f, x) for name, (_kind, f, x) in cands.items()}
    loops = {}
    for name, (kind, f, x) in cands.items():
        loop = value_loop(f, k) if kind == "v" else evaluation_loop(f, k)
        for c in chains:
            run, xs = (jax.jit(loop), x) if c == 1 else (jax.pmap(loop), jnp.stack([x] * c))
            jax.block_until_ready(run(xs))
            loops[(name, c)] = (run, xs)
    wall: dict = {key: [] for key in loops}
    cpu: dict = {key: [] for key in loops}
    for _ in range(rounds):
        for key, (run, xs) in loops.items():
            c0, t0 = time.process_time(), time.perf_counter()
            jax.block_until_ready(run(xs))
            wall[key].append(1e6 * (time.perf_counter() - t0) / k)
            cpu[key].append(1e6 * (time.process_time() - c0) / k)
    timing = {key: (min(wall[key]), float(np.median(wall[key])), min(cpu[key]), float(np.median(cpu[key])))
              for key in loops}
    return {"agree": agree, "counts": counts, "time": timing}


def _print(n: int, res: dict) -> None:
    print(f"\n**N = {n}**\n")
    print("| candidate | chains | wall us min | median | CPU us min | median | Mflop | transc. | MB | fusions |\n"
          "|---|---|---|---|---|---|---|---|---|---|")
    for (name, c), (wmin, wmed, cmin, cmed) in res["time"].items():
        h = res["counts"][name]
        print(f"| {name} | {c} | {wmin:.1f} | {wmed:.1f} | {cmin:.1f} | {cmed:.1f} | {h['Mflop']:.3f} | "
              f"{h['transcendentals']:.0f} | {h['MB']:.2f} | {h['fusions']:.0f} |")
    print("\nAgreement with (b) at x0 and 4 random points (largest relative difference; gradient relative to its "
          "largest entry):\n")
    for name, (v, g) in res["agree"].items():
        print(f"* {name}: value {v:.1e}, gradient {g:.1e}")


def main(argv: list[str] | None = None) -> None:
    """Print the tables (markdown) for each size."""
    import jax

    jax.config.update("jax_enable_x64", True)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="12,200")
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--loop", type=int, default=300)
    ap.add_argument("--chains", default="1,4", help="1: one chain (jit); c > 1: c chains under pmap, per step of all")
    ap.add_argument("--ablation", action="store_true", help="(e') plus each part of bayestwin's element chain")
    a = ap.parse_args(argv)
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {platform.machine()}, {os.cpu_count()} CPUs; jax {jax.__version__};"
          f" {jax.device_count()} host devices; {a.loop} evaluations per compiled loop, {a.rounds} interleaved rounds;"
          f" load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    for n in (int(x) for x in a.sizes.split(",") if x):
        _print(n, measure(n, a.rounds, a.loop, tuple(int(c) for c in a.chains.split(",")), a.ablation))
        print(f"\nload average {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
