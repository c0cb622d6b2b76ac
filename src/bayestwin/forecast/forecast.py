"""A forecast: labelled predictive draws, interval tables and a versioned JSON document.

``Forecast.dataset`` is an xarray Dataset with ``ipred`` (the latent prediction:
the patient's true concentration under the model) and ``pred`` (a new
measurement: IPRED plus residual error), both with dims
``(chain, draw, time, output)``; the ``unit`` coordinate along ``output`` gives
each output's unit (several observed outputs may have different units). Interval tables are tidy pandas frames with
explicit units. ``to_json`` writes the documented schema below, for
decision-support tools.

An output that cannot be negative (a concentration: the structural model's ``nonnegative_outputs``; the
``nonnegative`` coordinate along ``output``) has its intervals reported as those of the value a laboratory
reports, ``max(0, y)``: where the residual model puts a quantile below 0 (additive error at low
concentrations), the table shows 0. The draws in ``dataset`` are kept as sampled, and whether an interval
covers a positive observation is the same either way.

JSON schema ``bayestwin.forecast/1``
------------------------------------
::

    {
      "schema": "bayestwin.forecast/1",
      "patient": "<id>",
      "created": "<ISO 8601 UTC>",
      "time_unit": "h", "time_origin": "<what time 0 is>",
      "outputs": [{"name": "conc", "unit": "mg/L", "nonnegative": true}],
      "intervals": [{"time": 1.0, "output": "conc", "quantity": "pred", "prob": 0.8,
                     "lower": ..., "median": ..., "upper": ...}, ...],
      "regimen": [{"time": ..., "amt": ..., "rate": ..., "cmt": ...}] or null,
      "provenance": {"spec_name", "spec_digest", "data_digest", "population_fit_id",
                     "population_version", "rebased_from": "<old population version>" or null,
                     "twin_fit_id", "software": {"bayestwin", "jax", "numpyro", "arviz"}},
      "diagnostics": {"population": {...gate...}, "twin": {...gate...},
                      "status": "ok" | "failed-overridden", "override_recorded": bool}
    }
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayestwin.exceptions import InputError, PredictionError

__all__ = ["FORECAST_SCHEMA", "Forecast", "forecast_times", "require_finite_predictions"]

FORECAST_SCHEMA = "bayestwin.forecast/1"


def forecast_times(times: Any, *, what: str = "forecast times") -> np.ndarray:
    """`times` as a non-empty 1-d float array of finite values, or ``InputError`` saying which entries are not.

    A NaN or infinite time would otherwise come back as a forecast row of its own (a prediction at no time).

    Examples
    --------
    >>> forecast_times([1, 2.5]).tolist()
    [1.0, 2.5]
    >>> forecast_times([1.0, float("nan"), float("inf")])
    Traceback (most recent call last):
    ...
    bayestwin.exceptions.InputError: forecast times must be finite numbers; not at positions [1, 2] (nan, inf) ...
    """
    try:
        arr = np.asarray(times, dtype=float)
    except (TypeError, ValueError) as err:
        raise InputError(f"{what} must be numbers (in the spec's time unit), got {times!r:.80}: {err}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"{what} must be a non-empty 1-d sequence of times, got shape {arr.shape}; pass e.g. "
                         "[24.0, 36.0, 48.0]")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        shown = ", ".join(str(v) for v in arr[bad[:5]])
        raise InputError(f"{what} must be finite numbers; not at positions {bad[:10].tolist()} ({shown}) of "
                         f"{arr.size}; remove or replace them")
    return arr


def require_finite_predictions(values: np.ndarray, times: np.ndarray, outputs: Sequence[str], *,
                               what: str = "the forecast") -> None:
    """Raise ``PredictionError`` unless every draw's prediction ``values`` ``(draw, time, output)`` is finite.

    The message counts the draws whose prediction is NaN or infinite and names the first times and outputs
    where it is; nothing is summarised from the draws that did solve (a biased subset).

    Examples
    --------
    >>> v = np.ones((4, 2, 1)); v[1, 1, 0] = np.nan
    >>> try:
    ...     require_finite_predictions(v, np.array([1.0, 2.0]), ["conc"])
    ... except PredictionError as err:
    ...     print(str(err)[:86])
    the forecast: the model's prediction is not finite for 1 of 4 posterior draws (conc at
    """
    bad = ~np.isfinite(np.asarray(values, dtype=float))
    if not bad.any():
        return
    draws = int(bad.any(axis=(1, 2)).sum())
    where = sorted({(str(outputs[o]), float(times[t])) for t, o in zip(*np.nonzero(bad.any(axis=0)), strict=True)},
                   key=lambda x: (x[1], x[0]))
    shown = ", ".join(f"{o} at time {t:g}" for o, t in where[:5]) + (" ..." if len(where) > 5 else "")
    raise PredictionError(
        f"{what}: the model's prediction is not finite for {draws} of {bad.shape[0]} posterior draws ({shown}): an "
        "ODE solve failed (too many steps: stiff parameters or doses) or the prediction overflowed. Intervals or "
        "probabilities from the other draws would be biased, so none are given. Check the regimen and times, or "
        "refit / use a model whose solver settings cover these draws (e.g. a larger max_steps).")


@dataclass(frozen=True)
class Forecast:
    """Predictive draws for one patient with provenance.

    Parameters
    ----------
    dataset : xarray.Dataset
        ``ipred`` and ``pred`` with dims ``(chain, draw, time, output)``;
        ``attrs["time_unit"]`` and per-variable ``attrs["unit"]``.
    metadata : Mapping
        Provenance and diagnostics (see the module docstring).
    """

    dataset: xr.Dataset
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_draws(cls, ipred: np.ndarray, pred: np.ndarray, *, chains: int, times: np.ndarray,
                   outputs: Sequence[str], units: Mapping[str, str], time_unit: str,
                   metadata: Mapping[str, Any], nonnegative: Collection[str] = ()) -> Forecast:
        """Build from ``(sample, time, output)`` arrays whose samples are chain-major.

        `nonnegative` names the outputs whose intervals are floored at 0 (see the module docstring).

        Examples
        --------
        >>> y = np.array([[[-0.5]], [[1.0]], [[2.0]], [[3.0]]])  # 4 draws, 1 time, 1 output
        >>> fc = Forecast.from_draws(y, y, chains=1, times=np.array([24.0]), outputs=["conc"],
        ...                          units={"conc": "mg/L"}, time_unit="h", metadata={}, nonnegative=["conc"])
        >>> fc.interval(0.95)[["lower", "median", "upper"]].round(3).values.tolist()
        [[0.0, 1.5, 2.925]]
        """
        unknown = sorted(set(nonnegative) - set(outputs))
        if unknown:
            raise ValueError(f"nonnegative names outputs {unknown} that are not forecast ({list(outputs)})")
        draws = ipred.shape[0] // chains
        shape = (chains, draws, len(times), len(outputs))
        coords = {"chain": np.arange(chains), "draw": np.arange(draws), "time": np.asarray(times, dtype=float),
                  "output": list(outputs)}
        dims = ("chain", "draw", "time", "output")
        ds = xr.Dataset({"ipred": (dims, ipred.reshape(shape)), "pred": (dims, pred.reshape(shape))}, coords=coords)
        ds = ds.assign_coords(unit=("output", [units[o] for o in outputs]),
                              nonnegative=("output", [o in set(nonnegative) for o in outputs]))
        ds["ipred"].attrs.update(description="latent prediction (IPRED) without residual error")
        ds["pred"].attrs.update(description="a new measurement: IPRED plus residual error")
        if len({units[o] for o in outputs}) == 1:  # one unit for the whole variable; else see the `unit` coordinate
            ds["ipred"].attrs["unit"] = ds["pred"].attrs["unit"] = units[outputs[0]]
        ds["time"].attrs["unit"] = time_unit
        ds.attrs.update(time_unit=time_unit)
        return cls(ds, dict(metadata))

    @property
    def time_unit(self) -> str:
        """Unit of the ``time`` coordinate."""
        return str(self.dataset.attrs["time_unit"])

    @property
    def outputs(self) -> list[str]:
        """Names of the forecast outputs (the spec's observed outputs)."""
        return [str(o) for o in self.dataset["output"].to_numpy()]

    def unit(self, output: str) -> str:
        """Unit of one output's values."""
        if "unit" in self.dataset.coords:
            return str(self.dataset["unit"].sel(output=output).item())
        return str(self.dataset["pred"].attrs["unit"])  # forecasts saved before the per-output unit coordinate

    def nonnegative(self, output: str) -> bool:
        """Whether `output` cannot be negative (its intervals are floored at 0; see the module docstring).

        >>> y = np.zeros((2, 1, 1))
        >>> Forecast.from_draws(y, y, chains=1, times=np.array([1.0]), outputs=["conc"], units={"conc": "mg/L"},
        ...                     time_unit="h", metadata={}, nonnegative=["conc"]).nonnegative("conc")
        True
        """
        if "nonnegative" not in self.dataset.coords:  # forecasts built before the coordinate
            return False
        return bool(self.dataset["nonnegative"].sel(output=output).item())

    def interval(self, prob: float = 0.8, *, quantity: str = "pred") -> pd.DataFrame:
        """Central interval of `quantity` with probability `prob`, one row per time and output.

        Columns: ``time, output, lower, median, upper, unit`` (and ``time_unit``). For a non-negative output
        the quantiles are those of ``max(0, y)`` (see the module docstring).
        """
        if not 0 < prob < 1:
            raise ValueError(f"prob must be in (0, 1), got {prob}")
        if quantity not in ("pred", "ipred"):
            raise ValueError(f"quantity must be 'pred' (new measurement) or 'ipred' (latent), got {quantity!r}")
        da = self.dataset[quantity].stack(sample=("chain", "draw"))
        q = da.quantile([(1 - prob) / 2, 0.5, (1 + prob) / 2], dim="sample")
        rows = []
        for out in da["output"].to_numpy():
            sub = q.sel(output=out)
            unit = self.unit(str(out))
            floor = 0.0 if self.nonnegative(str(out)) else -np.inf
            for i, t in enumerate(sub["time"].to_numpy()):
                lo, med, hi = (max(float(x), floor) for x in sub.isel(time=i).to_numpy())
                rows.append({"time": float(t), "output": str(out), "lower": lo, "median": med, "upper": hi,
                             "unit": unit, "time_unit": self.time_unit})
        return pd.DataFrame(rows)

    def intervals(self, probs: Sequence[float] = (0.5, 0.8, 0.95), *, quantity: str = "pred") -> pd.DataFrame:
        """Several central intervals stacked, with a ``prob`` column."""
        return pd.concat([self.interval(p, quantity=quantity).assign(prob=p) for p in probs], ignore_index=True)

    def to_json(self, probs: Sequence[float] = (0.5, 0.8, 0.95), *, indent: int | None = 2) -> str:
        """The forecast as a ``bayestwin.forecast/1`` JSON document (see the module docstring)."""
        rows = []
        for quantity in ("pred", "ipred"):
            table = self.intervals(probs, quantity=quantity)
            for rec in table.to_dict(orient="records"):
                rows.append({"time": rec["time"], "output": rec["output"], "quantity": quantity,
                             "prob": rec["prob"], "lower": rec["lower"], "median": rec["median"],
                             "upper": rec["upper"]})
        doc = {
            "schema": FORECAST_SCHEMA,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "time_unit": self.time_unit,
            "outputs": [{"name": o, "unit": self.unit(o), "nonnegative": self.nonnegative(o)} for o in self.outputs],
            "intervals": rows,
            **{k: v for k, v in self.metadata.items()},
        }
        return json.dumps(doc, indent=indent, default=json_default)

    def __repr__(self) -> str:
        t = self.dataset["time"].to_numpy()
        n = self.dataset.sizes["chain"] * self.dataset.sizes["draw"]
        return (f"Forecast(patient={self.metadata.get('patient')!r}, times={len(t)} "
                f"[{t.min():g}-{t.max():g} {self.time_unit}], draws={n}, "
                f"status={self.metadata.get('diagnostics', {}).get('status')!r})")


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback for numpy scalars and arrays (anything else becomes its string).

    >>> import json, numpy as np
    >>> json.dumps({"n": np.int64(3), "x": np.array([0.5])}, default=json_default)
    '{"n": 3, "x": [0.5]}'
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
