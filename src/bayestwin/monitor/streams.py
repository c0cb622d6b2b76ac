"""Vital-sign streams: CSV/tidy frames and FHIR R4 bundles -> the canonical stream frame.

The canonical frame has one row per input observation and the columns of ``STREAM_COLUMNS``:

==============  ======================  ==============================================================
column          dtype                   meaning
==============  ======================  ==============================================================
``patient``     str                     patient id
``timestamp``   datetime64[ns, UTC]     effective time
``time_h``      float64                 hours since the stream origin (``frame.attrs["origin"]``)
``signal``      str                     canonical signal (``bayestwin.monitor.loinc.SIGNALS``)
``value``       float64                 value in the canonical unit (raw value on ``unit_error`` rows)
``unit``        str                     canonical UCUM unit (the raw unit on ``unit_error`` rows)
``device``      str                     device / source id, ``"unknown"`` if absent
``loinc``       str                     LOINC code of the source, ``""`` if none
``received_h``  float64                 arrival time, hours since origin (``time_h`` if unknown)
``source``      str                     ``file.csv:row 12`` or ``Observation/abc`` (FHIR)
``status``      str                     ``ok``, ``duplicate``, ``implausible``, ``unit_error``, ``missing``,
                                        ``unknown_code``, ``retracted``; ``ok`` rows alone enter the model
``reason``      str                     ``""`` on ``ok`` rows, else the rule / problem in words
``late``        bool                    received after a later-timed row of the same patient and signal
==============  ======================  ==============================================================

FHIR R4 bundles are read by ``bayestwin.monitor.fhir.read_fhir_streams`` into the same frame.
Rows are sorted by (patient, signal, time_h); flagged rows are kept, never dropped (``flag_report`` lists
them). The origin of ``time_h`` is each patient's first observation unless ``origin`` is given (one time
for all, or a mapping patient -> time); ``frame.attrs["origin"]`` records it so that ``append_observations``
keeps the same clock.

Examples
--------
>>> raw = pd.DataFrame({"patient": ["p1", "p1", "p1"], "timestamp": ["2024-01-01T08:00Z", "2024-01-01T09:00Z",
...                     "2024-01-01T09:00Z"], "loinc": ["8867-4", "59408-5", "59408-5"],
...                     "value": [72, 131, 97], "unit": ["/min", "%", "%"]})
>>> frame = read_streams(raw)
>>> frame[["signal", "time_h", "value", "status"]].values.tolist()
[['heart_rate', 0.0, 72.0, 'ok'], ['spo2', 1.0, 131.0, 'implausible'], ['spo2', 1.0, 97.0, 'ok']]
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayestwin.exceptions import InputError, UnitError
from bayestwin.monitor.loinc import LOINC, SIGNALS, signal_for_loinc, to_canonical
from bayestwin.monitor.quality import finalise

__all__ = ["STREAM_COLUMNS", "append_observations", "flag_report", "read_streams", "usable"]

STREAM_COLUMNS = ("patient", "timestamp", "time_h", "signal", "value", "unit", "device", "loinc", "received_h",
                  "source", "status", "reason", "late")  # fmt: skip
#: Origin used for numeric time columns (hours since this instant) when no timestamps are given.
DEFAULT_EPOCH = pd.Timestamp("2026-01-01T00:00:00Z")
OriginLike = str | pd.Timestamp | Mapping[str, Any] | None


def _problems(kind: str, labels: list[str], values: list[Any], fix: str) -> InputError:
    shown = "; ".join(f"{lab}: {val!r}" for lab, val in list(zip(labels, values, strict=True))[:10])
    more = f" (and {len(labels) - 10} more)" if len(labels) > 10 else ""
    return InputError(f"{len(labels)} row(s) with {kind}: {shown}{more}. {fix}")


def _to_utc(values: pd.Series, labels: list[str], column: str, tz: str) -> pd.Series:
    text = values.astype("string").str.strip()
    aware = text.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True).fillna(False).to_numpy(dtype=bool)
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    if aware.any():
        out[aware] = pd.to_datetime(text[aware], errors="coerce", format="ISO8601", utc=True).dt.as_unit("ns")
    if (~aware).any():
        naive = pd.to_datetime(text[~aware], errors="coerce", format="ISO8601")
        out[~aware] = naive.dt.tz_localize(tz).dt.tz_convert("UTC").dt.as_unit("ns")
    bad = [i for i in np.flatnonzero(out.isna().to_numpy()) if not pd.isna(text.iloc[i]) and text.iloc[i] != ""]
    if bad:
        raise _problems(f"a {column} that is not a date-time", [labels[i] for i in bad], [text.iloc[i] for i in bad],
                        f"Write {column} as ISO 8601, e.g. 2024-01-01T08:00:00Z.")
    return out


def _times(col: pd.Series, labels: list[str], column: str, tz: str, time_unit: str, epoch: pd.Timestamp) -> pd.Series:
    if pd.api.types.is_numeric_dtype(col):
        hours = pd.Series(np.asarray(col, dtype=float), index=col.index)
        if time_unit != "h":
            from bayestwin.units import convert

            hours = pd.Series(convert(hours.to_numpy(), time_unit, "h"), index=col.index)
        td = pd.to_timedelta(hours.to_numpy() * 3600.0, unit="s").as_unit("ns")
        return pd.Series(epoch + td, index=col.index)
    return _to_utc(col, labels, column, tz)


def _column(data: pd.DataFrame, name: str | None, default: Any) -> pd.Series:
    if name is not None and name in data.columns:
        return data[name]
    return pd.Series([default] * len(data), index=data.index, dtype=object)


def read_streams(
    data: pd.DataFrame | str | Path,
    *,
    origin: OriginLike = None,
    patient: str = "patient",
    time: str = "timestamp",
    signal: str = "signal",
    loinc: str = "loinc",
    value: str = "value",
    unit: str = "unit",
    device: str = "device",
    received: str = "received",
    tz: str = "UTC",
    time_unit: str = "h",
    epoch: pd.Timestamp = DEFAULT_EPOCH,
    unknown: str = "flag",
    name: str | None = None,
) -> pd.DataFrame:
    """Read a long (tidy) table of observations, one row each, into the canonical stream frame.

    Each row names its signal by a canonical name (``signal`` column) or a LOINC code (``loinc`` column).
    Times are ISO 8601 date-times (naive ones read in ``tz``) or numbers (``time_unit`` since ``epoch``);
    ``received`` (optional) is the arrival time in the same form. An empty value is kept as ``missing``;
    a unit not accepted for the signal as ``unit_error``; an unknown signal or code as ``unknown_code``
    (or an error with ``unknown="error"``). ``source`` is ``"<file name>:row N"`` (N the line in the file,
    header = line 1) for a file, ``"<name>:row <index>"`` for a DataFrame (``"row <index>"`` without ``name``).

    Raises
    ------
    InputError
        If a required column is absent, or a time or value is malformed; the message names the row(s)
        (``file.csv:row N``, N being the line in the file, header = line 1) and the column.

    Examples
    --------
    >>> raw = pd.DataFrame({"patient": "p1", "timestamp": [0.0, 0.5], "signal": "temperature",
    ...                     "value": [98.6, 37.2], "unit": ["[degF]", "Cel"]})
    >>> read_streams(raw)[["time_h", "value", "unit"]].values.tolist()
    [[0.0, 37.0, 'Cel'], [0.5, 37.2, 'Cel']]
    """
    if unknown not in ("flag", "error"):
        raise InputError(f"unknown={unknown!r}; use 'flag' or 'error'.")
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.is_file():
            raise InputError(f"stream file {str(path)!r} does not exist; check the path.")
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame.index = frame.index + 2
        labels = [f"{path.name}:row {i}" for i in frame.index]
    else:
        frame = data
        labels = [f"{name}:row {i}" if name else f"row {i}" for i in frame.index]
    missing = [c for c in (patient, time, value, unit) if c not in frame.columns]
    if signal not in frame.columns and loinc not in frame.columns:
        missing.append(f"{signal} or {loinc}")
    if missing:
        raise InputError(f"stream table lacks column(s) {missing}; it has {list(frame.columns)}. Rename the "
                         "columns or pass their names (patient=, time=, signal= or loinc=, value=, unit=).")
    tcol = frame[time]
    if not pd.api.types.is_numeric_dtype(tcol):
        as_num = pd.to_numeric(tcol, errors="coerce")
        if as_num.notna().all():
            tcol = as_num
    stamps = _times(tcol, labels, time, tz, time_unit, epoch)
    if stamps.isna().any():
        bad = list(np.flatnonzero(stamps.isna().to_numpy()))
        raise _problems(f"no {time}", [labels[i] for i in bad], ["" for _ in bad], "Every observation needs a time.")
    rec = _column(frame, received, None)
    if received in frame.columns:
        rnum = pd.to_numeric(rec, errors="coerce")
        rec = rnum if rnum.notna().all() else rec.replace("", None)
        rec = _times(rec, labels, received, tz, time_unit, epoch)
    raw_value = frame[value]
    num = pd.to_numeric(raw_value, errors="coerce").astype(float)
    text = raw_value.astype("string").str.strip()
    given = (text.notna() & (text != "")).to_numpy(dtype=bool)
    bad = list(np.flatnonzero(num.isna().to_numpy() & given))
    if bad:
        raise _problems(f"a {value} that is not a number", [labels[i] for i in bad], [text.iloc[i] for i in bad],
                        "Write values as plain numbers (units go in the unit column); leave missing values empty.")
    raw = pd.DataFrame({
        "patient": _column(frame, patient, "").astype(str).str.strip().to_numpy(),
        "timestamp": stamps.to_numpy(), "received": pd.Series(rec).to_numpy(),
        "signal": _column(frame, signal, "").fillna("").astype(str).str.strip().to_numpy(),
        "loinc": _column(frame, loinc, "").fillna("").astype(str).str.strip().to_numpy(),
        "value": num.to_numpy(), "unit": _column(frame, unit, "").fillna("").astype(str).str.strip().to_numpy(),
        "device": _column(frame, device, "unknown").fillna("unknown").astype(str).replace("", "unknown").to_numpy(),
        "source": labels, "status": "ok", "reason": "",
    })  # fmt: skip
    empty_patient = [labels[i] for i in np.flatnonzero(raw["patient"].isin(["", "nan", "<NA>"]).to_numpy())]
    if empty_patient:
        raise _problems(f"no {patient}", empty_patient, ["" for _ in empty_patient], "Every row needs a patient id.")
    return _canonical(raw, origin, unknown)


def _resolve_signals(raw: pd.DataFrame, unknown: str) -> pd.DataFrame:
    sig = raw["signal"].to_numpy(dtype=object).copy()
    status, reason = raw["status"].to_numpy(dtype=object).copy(), raw["reason"].to_numpy(dtype=object).copy()
    for i, (s, code) in enumerate(zip(sig, raw["loinc"], strict=True)):
        if s in ("", "nan", "<NA>"):
            if code in LOINC:
                sig[i] = LOINC[code]
                continue
            why = f"LOINC code {code!r} is not a vital sign the monitor knows" if code else "no signal and no code"
        elif s in SIGNALS:
            continue
        else:
            why = f"signal {s!r} is not one of {sorted(SIGNALS)}"
        if status[i] not in ("ok", "missing"):
            sig[i] = "unknown"
            continue
        if unknown == "error":
            signal_for_loinc(code, where=raw["source"].iat[i]) if code else None
            raise InputError(f"{raw['source'].iat[i]}: {why}.")
        sig[i], status[i], reason[i] = "unknown", "unknown_code", why
    return raw.assign(signal=sig, status=status, reason=reason)


def _convert_units(raw: pd.DataFrame) -> pd.DataFrame:
    out = raw.copy()
    known = out["signal"].isin(list(SIGNALS)).to_numpy()
    missing = known & (out["status"] == "missing").to_numpy()
    out.loc[missing, "unit"] = out.loc[missing, "signal"].map(lambda s: SIGNALS[s].unit)
    for (sig, unit), idx in out[known & ~missing].groupby(["signal", "unit"], sort=False).groups.items():
        try:
            out.loc[idx, "value"] = to_canonical(out.loc[idx, "value"].to_numpy(), unit, sig)
            out.loc[idx, "unit"] = SIGNALS[sig].unit
        except UnitError:
            flag = out.loc[idx, "status"] == "ok"
            sel = flag[flag].index
            out.loc[sel, "status"] = "unit_error"
            out.loc[sel, "reason"] = (f"unit {unit!r} is not a unit of {SIGNALS[sig].label}; accepted: "
                                      f"{list(SIGNALS[sig].units)}")
    return out


def _origins(raw: pd.DataFrame, origin: OriginLike) -> dict[str, pd.Timestamp]:
    first = raw.groupby("patient", sort=True)["timestamp"].min()
    if origin is None:
        return {str(p): pd.Timestamp(t) for p, t in first.items()}
    if isinstance(origin, Mapping):
        given = {str(p): _stamp(t) for p, t in origin.items()}
        return {str(p): given.get(str(p), pd.Timestamp(t)) for p, t in first.items()} | given
    stamp = _stamp(origin)
    return {str(p): stamp for p in first.index}


def _stamp(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _empty() -> pd.DataFrame:
    cols: dict[str, Any] = {c: pd.Series(dtype="str") for c in STREAM_COLUMNS}
    cols |= {"timestamp": pd.Series(dtype="datetime64[ns, UTC]"), "time_h": pd.Series(dtype=float),
             "value": pd.Series(dtype=float), "received_h": pd.Series(dtype=float), "late": pd.Series(dtype=bool)}
    out = pd.DataFrame(cols)
    out.attrs["origin"] = {}
    return out


def _canonical(raw: pd.DataFrame, origin: OriginLike, unknown: str) -> pd.DataFrame:
    if raw.empty:
        return _empty()
    raw = raw.copy()
    raw.loc[raw["value"].isna() & (raw["status"] == "ok"), ["status", "reason"]] = ["missing", "no value"]
    raw = _convert_units(_resolve_signals(raw, unknown))
    origins = _origins(raw, origin)
    start = raw["patient"].map(origins)
    hours = (raw["timestamp"] - start).dt.total_seconds() / 3600.0
    rec = pd.to_datetime(raw["received"], utc=True)
    rec_h = ((rec - start).dt.total_seconds() / 3600.0).fillna(hours)
    frame = pd.DataFrame({
        "patient": raw["patient"].astype(str), "timestamp": raw["timestamp"].astype("datetime64[ns, UTC]"),
        "time_h": hours.astype(float), "signal": raw["signal"].astype(str), "value": raw["value"].astype(float),
        "unit": raw["unit"].astype(str), "device": raw["device"].astype(str), "loinc": raw["loinc"].astype(str),
        "received_h": rec_h.astype(float), "source": raw["source"].astype(str), "status": raw["status"].astype(str),
        "reason": raw["reason"].astype(str), "late": False,
    })  # fmt: skip
    out = finalise(frame)[list(STREAM_COLUMNS)]
    out.attrs["origin"] = {p: t.isoformat() for p, t in origins.items()}
    return out


def usable(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows a model may use: ``status == "ok"`` (index reset; ``attrs`` kept).

    Examples
    --------
    >>> f = pd.DataFrame({"status": ["ok", "duplicate"], "value": [1.0, 1.0]})
    >>> len(usable(f))
    1
    """
    out = frame[frame["status"] == "ok"].reset_index(drop=True)
    out.attrs = dict(frame.attrs)
    return out


def flag_report(frame: pd.DataFrame) -> pd.DataFrame:
    """Every flagged row (status other than ``ok``) with its reason, for the data-quality report.

    Examples
    --------
    >>> f = pd.DataFrame({"patient": "p", "signal": "spo2", "time_h": [0.0, 1.0], "value": [97.0, 130.0],
    ...                   "unit": "%", "source": ["r0", "r1"], "status": ["ok", "implausible"],
    ...                   "reason": ["", "rule spo2_range: ..."]})
    >>> flag_report(f)[["source", "status"]].values.tolist()
    [['r1', 'implausible']]
    """
    cols = ["patient", "signal", "time_h", "value", "unit", "source", "status", "reason"]
    return frame.loc[frame["status"] != "ok", cols].reset_index(drop=True)


def append_observations(
    frame: pd.DataFrame, new_rows: pd.DataFrame, **read_kw: Any
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Merge newly arrived observations into a canonical frame and say what must be re-filtered.

    ``new_rows`` is a canonical frame (from ``read_streams`` or ``fhir.read_fhir_streams``) or a raw table that
    ``read_streams(new_rows, **read_kw)`` reads; both are put on ``frame``'s clock (``attrs["origin"]``).
    Duplicates, plausibility and late flags are recomputed on the merged rows.

    Returns
    -------
    merged : pandas.DataFrame
        The canonical frame of all rows (``len(frame) + len(new_rows)``).
    refilter : pandas.DataFrame
        One row per (patient, signal) that received usable rows: ``from_h`` (the earliest new usable time),
        ``n_new``, and ``refilter`` -- True when ``from_h`` precedes the last usable time already in
        ``frame``, so a filter must re-process that stream from ``from_h``.

    Examples
    --------
    >>> first = read_streams(pd.DataFrame({"patient": "p", "timestamp": [0.0, 2.0], "signal": "sbp",
    ...                                    "value": [120, 124], "unit": "mm[Hg]"}))
    >>> merged, todo = append_observations(first, pd.DataFrame({"patient": "p", "timestamp": [1.0],
    ...                                    "signal": "sbp", "value": [150], "unit": "mm[Hg]"}))
    >>> len(merged), todo[["patient", "signal", "from_h", "refilter"]].values.tolist()
    (3, [['p', 'sbp', 1.0, True]])
    """
    origins = {p: pd.Timestamp(t) for p, t in frame.attrs.get("origin", {}).items()}
    if not origins and len(frame):
        origins = {p: t - pd.to_timedelta(h, unit="h") for p, t, h in
                   frame.groupby("patient")[["timestamp", "time_h"]].first().itertuples()}
    new = new_rows.copy() if set(STREAM_COLUMNS) <= set(new_rows.columns) else read_streams(new_rows, **read_kw)
    # arrival as an instant, so that it survives the change of clock
    new["received"] = new["timestamp"] + pd.to_timedelta(new["received_h"] - new["time_h"], unit="h")
    new_patients = {p: t for p, t in new.groupby("patient")["timestamp"].min().items() if p not in origins}
    origins.update(new_patients)
    start = new["patient"].map(origins)
    new["time_h"] = (new["timestamp"] - start).dt.total_seconds() / 3600.0
    new["received_h"] = (new["received"] - start).dt.total_seconds() / 3600.0
    new = new.drop(columns="received")
    new["source"] = new["source"].astype(str)
    both = pd.concat([frame[list(STREAM_COLUMNS)].assign(_new=False), new[list(STREAM_COLUMNS)].assign(_new=True)],
                     ignore_index=True)
    done = finalise(both)
    merged = done[list(STREAM_COLUMNS)].copy()
    merged.attrs["origin"] = {p: pd.Timestamp(t).isoformat() for p, t in origins.items()}
    old_ok = frame[frame["status"] == "ok"].groupby(["patient", "signal"])["time_h"].max().rename("last_h")
    fresh = done[done["_new"] & (done["status"] == "ok")]
    todo = fresh.groupby(["patient", "signal"]).agg(from_h=("time_h", "min"), n_new=("time_h", "size"))
    todo = todo.join(old_ok, how="left").reset_index()
    todo["refilter"] = (todo["from_h"] < todo["last_h"]).fillna(False).astype(bool)
    return merged, todo[["patient", "signal", "from_h", "n_new", "refilter"]]
