"""Probability that a forecast trajectory crosses a threshold by a horizon, with its Monte Carlo error.

For each posterior predictive draw of a twin's forecast (``Forecast.dataset``, dims ``chain, draw, time,
output``), the trajectory *has crossed* by horizon ``H`` when any forecast time ``t <= H`` (and ``t >=
after``) has a value beyond the threshold (below it with ``below=True``). The probability is the mean of
that indicator over the draws; its Monte Carlo standard error is ``sqrt(p (1 - p) / ESS)`` with the
effective sample size of the indicator across chains (arviz ``ess``; the number of draws when the chains
are independent draws). Examples: P(eGFR < 15 mL/min within 2 years), P(tumour size >= 1.2 x nadir by a
scan date).

The forecast must be evaluated on a grid fine enough for the question: a trajectory that crosses and
returns between two grid times is not seen (no issue for monotone trajectories such as the eGFR models,
where the value at ``H`` decides). ``quantity="ipred"`` (default) asks about the patient's true value
under the model; ``"pred"`` about a new *measurement* (with residual error), which crosses more often.

Examples
--------
>>> import numpy as np
>>> from bayestwin.forecast import Forecast
>>> ipred = np.array([[50.0, 20.0], [50.0, 10.0], [50.0, 40.0], [50.0, 14.0]])[:, :, None]   # 4 draws, 2 times
>>> fc = Forecast.from_draws(ipred, ipred, chains=1, times=np.array([0.0, 2.0]), outputs=["egfr"],
...                          units={"egfr": "mL/min"}, time_unit="year", metadata={})
>>> probability_of_crossing(fc, threshold=15.0, by=2.0)[["by", "probability", "n_draws"]].to_dict("records")
[{'by': 2.0, 'probability': 0.5, 'n_draws': 4}]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bayestwin.exceptions import InputError

if TYPE_CHECKING:
    from bayestwin.forecast.forecast import Forecast

__all__ = ["crossing_indicator", "probability_of_crossing"]


def crossing_indicator(
    forecast: Forecast, *, threshold: float, below: bool = True, by: float, after: float = -np.inf,
    output: str | None = None, quantity: str = "ipred",
) -> np.ndarray:
    """Per draw, whether the trajectory is beyond `threshold` at some forecast time in ``[after, by]``.

    Returns a boolean array ``(chain, draw)``. Raises ``InputError`` when no forecast time lies in
    ``[after, by]``, naming the forecast's times, or when `output` or `quantity` is unknown.

    Examples
    --------
    >>> import numpy as np
    >>> from bayestwin.forecast import Forecast
    >>> x = np.array([[30.0, 12.0], [30.0, 20.0]])[:, :, None]
    >>> fc = Forecast.from_draws(x, x, chains=2, times=np.array([1.0, 3.0]), outputs=["egfr"],
    ...                          units={"egfr": "mL/min"}, time_unit="year", metadata={})
    >>> crossing_indicator(fc, threshold=15.0, by=3.0).tolist()
    [[True], [False]]
    """
    if quantity not in ("ipred", "pred"):
        raise InputError(f"quantity must be 'ipred' (the patient's true value) or 'pred' (a new measurement), "
                         f"got {quantity!r}")
    outputs = forecast.outputs
    output = output if output is not None else outputs[0]
    if output not in outputs:
        raise InputError(f"the forecast has no output {output!r}; it has {outputs}")
    da = forecast.dataset[quantity].sel(output=output)
    times = da["time"].to_numpy()
    window = (times >= after) & (times <= by)
    if not window.any():
        raise InputError(f"no forecast time lies in [{after:g}, {by:g}] {forecast.time_unit}; the forecast has "
                         f"times {times.tolist()[:10]}{' ...' if times.size > 10 else ''}: forecast on a grid up to "
                         "the horizon")
    values = da.transpose("chain", "draw", "time").to_numpy()[:, :, window]
    beyond = values < threshold if below else values > threshold
    return beyond.any(axis=-1)


def probability_of_crossing(
    forecast: Forecast, *, threshold: float, below: bool = True, by: float | Sequence[float],
    after: float = -np.inf, output: str | None = None, quantity: str = "ipred",
) -> pd.DataFrame:
    """P(the trajectory crosses `threshold` by each horizon in `by`), with its Monte Carlo standard error.

    Parameters
    ----------
    forecast : Forecast
        A twin's forecast on a time grid reaching the horizons (``Twin.forecast(times)``).
    threshold : float
        In the output's unit (e.g. 15 mL/min for eGFR).
    below : bool
        True: crossing means falling below `threshold`; False: rising above it.
    by : float or sequence of float
        Horizon(s), absolute times on the forecast's clock and in its time unit.
    after : float
        Only forecast times ``>= after`` count (e.g. the time of the last observation).
    output, quantity :
        Which output (default the first) and ``"ipred"`` (true value) or ``"pred"`` (a new measurement).

    Returns
    -------
    pandas.DataFrame
        One row per horizon: ``output, unit, threshold, direction, by, time_unit, probability, mcse,
        ess, n_draws``. ``mcse`` is 0 when every draw agrees (the error is then below ``1 / n_draws``).

    Examples
    --------
    >>> import numpy as np
    >>> from bayestwin.forecast import Forecast
    >>> x = np.linspace(60.0, 5.0, 400)[:, None, None] * np.ones((1, 1, 1))   # 400 draws, one time
    >>> fc = Forecast.from_draws(x, x, chains=4, times=np.array([2.0]), outputs=["egfr"],
    ...                          units={"egfr": "mL/min"}, time_unit="year", metadata={})
    >>> row = probability_of_crossing(fc, threshold=15.0, by=2.0).iloc[0]
    >>> float(row["probability"]), row["direction"]
    (0.1825, 'below')
    """
    import arviz as az

    horizons = np.atleast_1d(np.asarray(by, dtype=float))
    rows = []
    for h in horizons:
        hit = crossing_indicator(forecast, threshold=threshold, below=below, by=float(h), after=after,
                                 output=output, quantity=quantity).astype(float)
        p = float(hit.mean())
        if 0.0 < p < 1.0:
            ess = float(az.ess(hit)) if hit.shape[1] >= 4 else float(hit.size)
            mcse = float(np.sqrt(p * (1.0 - p) / ess))
        else:
            ess, mcse = float(hit.size), 0.0
        name = output if output is not None else forecast.outputs[0]
        rows.append({"output": name, "unit": forecast.unit(name), "threshold": float(threshold),
                     "direction": "below" if below else "above", "by": float(h), "time_unit": forecast.time_unit,
                     "probability": p, "mcse": mcse, "ess": ess, "n_draws": int(hit.size)})
    return pd.DataFrame(rows)
