"""A forecast: labelled predictive draws, interval tables and a versioned JSON document.

``Forecast.dataset`` is an xarray Dataset with ``ipred`` (the latent prediction:
the patient's true concentration under the model) and ``pred`` (a new
measurement: IPRED plus residual error), both with dims
``(chain, draw, time, output)``; the ``unit`` coordinate along ``output`` gives
each output's unit (several observed outputs may have different units). Interval tables are tidy pandas frames with
explicit units. ``to_json`` writes the documented schema below, for
decision-support tools.

JSON schema ``bayestwin.forecast/1``
------------------------------------
::

    {
      "schema": "bayestwin.forecast/1",
      "patient": "<id>",
      "created": "<ISO 8601 UTC>",
      "time_unit": "h", "time_origin": "<what time 0 is>",
      "outputs": [{"name": "conc", "unit": "mg/L"}],
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["FORECAST_SCHEMA", "Forecast"]

FORECAST_SCHEMA = "bayestwin.forecast/1"


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
                   metadata: Mapping[str, Any]) -> Forecast:
        """Build from ``(sample, time, output)`` arrays whose samples are chain-major."""
        draws = ipred.shape[0] // chains
        shape = (chains, draws, len(times), len(outputs))
        coords = {"chain": np.arange(chains), "draw": np.arange(draws), "time": np.asarray(times, dtype=float),
                  "output": list(outputs)}
        dims = ("chain", "draw", "time", "output")
        ds = xr.Dataset({"ipred": (dims, ipred.reshape(shape)), "pred": (dims, pred.reshape(shape))}, coords=coords)
        ds = ds.assign_coords(unit=("output", [units[o] for o in outputs]))
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

    def interval(self, prob: float = 0.8, *, quantity: str = "pred") -> pd.DataFrame:
        """Central interval of `quantity` with probability `prob`, one row per time and output.

        Columns: ``time, output, lower, median, upper, unit`` (and ``time_unit``).
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
            for i, t in enumerate(sub["time"].to_numpy()):
                lo, med, hi = (float(x) for x in sub.isel(time=i).to_numpy())
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
            "outputs": [{"name": o, "unit": self.unit(o)} for o in self.outputs],
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
