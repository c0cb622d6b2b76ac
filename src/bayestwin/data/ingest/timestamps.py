"""Clock times to model time: ISO 8601 date-times -> hours since a per-patient reference.

Clinical sources often record *when* something happened (lab draw, dose
administration, wearable reading) instead of "hours since first dose".
:func:`timestamps_to_hours` turns such a column into hours since a reference
time per patient, handles time zones explicitly and reports every problem with
its patient, source row and column (rules ``Z001``-``Z006``; nothing raises on
bad data). :func:`hours_to_timestamps` is the inverse, for writers and tests.

Rules of interpretation
-----------------------
* **Accepted text.** ISO 8601 extended date-times with a clock time,
  ``YYYY-MM-DD[T| ]HH:MM[:SS[.fffffffff]]``, optionally followed by a UTC
  offset (``Z``, ``+01:00``, ``+0100``, ``+01``) and/or a zone name, either in
  brackets as written by RFC 9557 / ``java.time``
  (``2024-03-01T08:30:00+01:00[Europe/Paris]``) or after a space
  (``2024-03-01 08:30 Europe/Paris``, ``2024-03-01 08:30 UTC``). ``T`` and
  ``Z`` may be lower case. ``pandas.Timestamp``/``datetime`` objects and
  ``datetime64`` columns are accepted as they are.
* **Aware values** (with an offset or a zone) are converted to UTC. Values
  within one patient may carry different offsets (``+01:00`` in winter,
  ``+02:00`` in summer): that is correct and each is converted exactly. When
  both an offset and a zone name are given the offset decides the instant and
  must agree with the zone on that date (otherwise ``Z001``).
* **Naive values** (no offset, no zone) are local times of `assume_timezone`
  (an IANA name such as ``"Europe/Paris"``). Without it they are an error
  (``Z002``, reported once per patient). A local time that does not exist
  (skipped when clocks spring forward) or occurs twice (clocks fall back) is
  reported (``Z004``) and never shifted or guessed silently. A zone named in
  the text itself follows the same rule.
* **Mixing** aware and naive values in one file is an error (``Z003``), even
  with `assume_timezone`: it usually means two exports were pasted together.
  The kind in the minority is flagged, with one violation per patient naming
  the rows.
* **Date-only values** (``2024-03-01``) are rejected (``Z001``): clinical
  times are needed to the hour, and midnight would be a guess.
* **Missing values** (empty, ``.``, ``NA``, ``NaN``, ``NaT``, ``null``,
  ``None``, case-insensitive, and pandas missing values) are ``Z005``.
* **Reference.** ``reference="first"`` uses each patient's earliest valid
  timestamp, so all hours are >= 0. With a mapping ``{patient id: time}`` (same
  zone rules; a :class:`pandas.Series` works too) hours are negative for events
  before the reference, which is allowed. Every patient needs a reference and
  every reference needs a patient (``Z006``). A reference time with a problem
  (``Z001``/``Z002``/``Z004``/``Z005``) is reported once, without a row, and
  leaves that patient's rows NaN; reference times are not part of ``Z003``.
* **Exact hours.** Hours are the integer nanosecond difference divided by
  3.6e12 and correctly rounded to float64 (:func:`nanoseconds_to_hours`):
  30 min is exactly ``0.5``, 1 s is the double nearest to 1/3600.
* **NaN** appears only on rows that cannot be converted, and each of them is
  covered by a violation: its own (``Z001``, ``Z004``, ``Z005``), its
  patient's (``Z002``, ``Z003``, ``Z006``, or a problem with the patient's
  reference time). Rows whose patient id is missing are left NaN without a
  violation here; the reader's patient-id rule reports them.

Examples
--------
>>> import pandas as pd
>>> values = pd.Series(["2024-03-01T08:00:00+01:00", "2024-03-01T10:30:00+01:00"], index=[10, 11])
>>> result = timestamps_to_hours(values, pd.Series([1, 1], index=[10, 11]), column="DATETIME")
>>> result.hours.tolist()
[0.0, 2.5]
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from bayestwin.data.report import ValidationReport, Violation
from bayestwin.data.rules.base import Rule, declare

__all__ = [
    "NS_PER_HOUR",
    "Z001",
    "Z002",
    "Z003",
    "Z004",
    "Z005",
    "Z006",
    "TimestampResult",
    "hours_to_timestamps",
    "nanoseconds_to_hours",
    "timestamps_to_hours",
]

#: Nanoseconds in one hour (an exact integer).
NS_PER_HOUR: int = 3_600_000_000_000

_EXAMPLE = "2024-03-01T08:30:00+01:00"

# --- rules -------------------------------------------------------------------------------------------
Z001 = declare(
    "Z001",
    "error",
    "timestamp cannot be parsed",
    f"Write date-times in ISO 8601 with a clock time and a UTC offset, e.g. {_EXAMPLE} "
    "(or 2024-03-01T07:30:00Z for UTC).",
)
Z002 = declare(
    "Z002",
    "error",
    "timestamp has no time zone and no assume_timezone was given",
    f"Add a UTC offset or zone to the data (e.g. {_EXAMPLE}), or, if all times without a zone are "
    'local times of one place, pass its IANA name, e.g. assume_timezone="Europe/Paris".',
)
Z003 = declare(
    "Z003",
    "error",
    "timestamps mix values with and without a time zone",
    "Make the timestamps consistent: give every value a UTC offset (e.g. +01:00), or give none "
    "and pass assume_timezone with the IANA zone they are local to.",
)
Z004 = declare(
    "Z004",
    "error",
    "local time does not exist or is ambiguous (daylight-saving change)",
    "Write the UTC offset explicitly for times near a daylight-saving change, "
    "e.g. 2024-10-27T02:30:00+02:00 instead of 2024-10-27 02:30.",
)
Z005 = declare(
    "Z005",
    "error",
    "timestamp is missing",
    "Fill in the date-time of the event (ISO 8601 with a UTC offset), or remove the row if the "
    "event did not happen.",
)
Z006 = declare(
    "Z006",
    "error",
    "reference time does not match the patients",
    'Pass a reference time for every patient id in the data (and only for those), or use reference="first".',
)

_FIX_DATE_ONLY = (
    "A clock time is required (clinical times are used to the hour; midnight would be a guess): "
    f"write e.g. {_EXAMPLE}."
)
_FIX_ZONE_NAME = (
    f"Use an IANA time-zone name such as Europe/Paris or America/New_York, or a UTC offset: {_EXAMPLE}."
)

# --- parsing machinery -------------------------------------------------------------------------------
_MISSING, _INVALID, _AWARE, _NAIVE = 0, 1, 2, 3
_NAT = np.iinfo(np.int64).min
_EXACT_LIMIT = 2**53  # integers up to here are exact in float64
# Supported instants: the datetime64[ns] range less a day at each end, so that no UTC offset overflows it.
_LOWEST = pd.Timestamp.min.ceil("D") + pd.Timedelta(days=1)
_HIGHEST = pd.Timestamp.max.floor("D") - pd.Timedelta(days=1)
_MISSING_WORDS = frozenset({"", ".", "na", "n/a", "nan", "nat", "null", "none"})

_CLOCK = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?"
_FAST_AWARE = _CLOCK + r"(?:Z|[+-]\d{2}(?::?\d{2})?)"
_FULL = re.compile(
    r"(?P<local>\d{4}-\d{2}-\d{2}(?P<clock>[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?)"
    r"\s*(?P<offset>[Zz]|[+-]\d{2}(?::?\d{2})?)?"
    r"(?:\[!?(?P<bzone>[^\]\s]+)\]|\s+(?P<szone>[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*))?"
)
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})?")


class _Issue(NamedTuple):
    pos: int
    rule: Rule
    message: str
    fix: str | None = None


@dataclass(slots=True)
class _Parsed:
    """Per-row parse state: kind code, nanoseconds (UTC if aware, wall clock if naive), issues."""

    kind: np.ndarray
    ns: np.ndarray
    issues: list[_Issue] = field(default_factory=list)


def _to_ns(dti: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """Naive DatetimeIndex of any unit -> (int64 ns, ok mask); NaT or out of range counts as not ok."""
    dti = pd.DatetimeIndex(dti)
    ok = np.asarray(dti.notna() & (dti >= _LOWEST) & (dti <= _HIGHEST))
    ns = dti.where(ok).as_unit("ns").asi8.copy()
    return ns, ok


def _out_of_range(text: Any) -> str:
    return (
        f"timestamp {text!s} is not a valid date-time or is outside the supported range "
        f"({_LOWEST:%Y-%m-%d} to {_HIGHEST:%Y-%m-%d})"
    )


def _store(out: _Parsed, pos: np.ndarray, dti: pd.DatetimeIndex, kind: int, raw: Any) -> None:
    """Write parsed instants at `pos`; NaT or out-of-range ones become Z001."""
    ns, ok = _to_ns(dti)
    out.kind[pos[ok]] = kind
    out.ns[pos[ok]] = ns[ok]
    for p in pos[~ok].tolist():
        out.issues.append(_Issue(p, Z001, _out_of_range(raw[p])))


class _Cells:
    """Positional access to the source cells without converting a whole datetime column to objects."""

    def __init__(self, values: pd.Series) -> None:
        self._values = values

    def __getitem__(self, pos: int) -> Any:
        return self._values.iat[pos]


def _is_datetime_dtype(dtype: Any) -> bool:
    return isinstance(dtype, pd.DatetimeTZDtype) or (isinstance(dtype, np.dtype) and dtype.kind == "M")


def _parse(values: pd.Series) -> _Parsed:
    """Classify and parse every element; vectorised for the common all-ISO-8601 cases."""
    n = len(values)
    out = _Parsed(np.full(n, _INVALID, np.int8), np.zeros(n, np.int64))
    if _is_datetime_dtype(values.dtype):
        raw: Any = _Cells(values)
        dti = pd.DatetimeIndex(values)
        kind = _NAIVE if dti.tz is None else _AWARE
        if dti.tz is not None:
            dti = dti.tz_convert("UTC").tz_localize(None)
        missing = np.asarray(dti.isna())
        out.kind[missing] = _MISSING
        _store(out, np.flatnonzero(~missing), dti[~missing], kind, raw)
        _report_missing(out)
        return out

    raw = values.to_numpy(dtype=object)
    missing = np.asarray(pd.isna(values), dtype=bool)
    if isinstance(values.dtype, pd.StringDtype):
        is_str = ~missing
    else:
        is_str = np.fromiter((isinstance(v, str) for v in raw), bool, n) & ~missing
    out.kind[missing] = _MISSING
    if is_str.any():
        _parse_strings(out, np.flatnonzero(is_str), raw)
    other = np.flatnonzero(~is_str & ~missing)
    if len(other):
        _parse_objects(out, other, raw)
    _report_missing(out)
    return out


def _report_missing(out: _Parsed) -> None:
    for p in np.flatnonzero(out.kind == _MISSING).tolist():
        out.issues.append(_Issue(p, Z005, "timestamp is missing"))


def _parse_strings(out: _Parsed, pos: np.ndarray, raw: np.ndarray) -> None:
    text = pd.Series(raw[pos], dtype="str").str.strip()
    short = (text.str.len() <= 4).to_numpy()
    if short.any():
        is_missing = np.zeros(len(pos), bool)
        is_missing[short] = text[short].str.lower().isin(_MISSING_WORDS).to_numpy()
        out.kind[pos[is_missing]] = _MISSING
        pos, text = pos[~is_missing], text[~is_missing]
    # Fast path 1: ISO 8601 with a numeric offset or Z (the recommended form).
    fast = text.str.fullmatch(_FAST_AWARE).to_numpy(dtype=bool)
    if fast.any():
        dti = pd.to_datetime(text[fast], format="ISO8601", utc=True, errors="coerce")
        _store(out, pos[fast], pd.DatetimeIndex(dti).tz_localize(None), _AWARE, raw)
        pos, text = pos[~fast], text[~fast]
    # Fast path 2: naive ISO 8601 (local times, resolved later with assume_timezone).
    fast = text.str.fullmatch(_CLOCK).to_numpy(dtype=bool)
    if fast.any():
        dti = pd.to_datetime(text[fast], format="ISO8601", errors="coerce")
        _store(out, pos[fast], pd.DatetimeIndex(dti), _NAIVE, raw)
        pos, text = pos[~fast], text[~fast]
    if len(pos):
        _parse_other_strings(out, pos, text.tolist(), raw)


@functools.lru_cache(maxsize=1024)
def _offset_ns(offset: str) -> int | None:
    """UTC offset text (``Z``, ``+01:00``, ``+0100``, ``+01``) -> ns; None beyond +-23:59 as in pandas."""
    if offset.upper() == "Z":
        return 0
    m = _OFFSET.fullmatch(offset)
    if m is None or int(m.group(2)) > 23 or int(m.group(3) or 0) > 59:
        return None
    minutes = int(m.group(2)) * 60 + int(m.group(3) or 0)
    return (1 if m.group(1) == "+" else -1) * minutes * 60 * 10**9


def _fmt_offset(ns: int) -> str:
    sign = "+" if ns >= 0 else "-"
    minutes = abs(ns) // (60 * 10**9)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


@functools.lru_cache(maxsize=1024)
def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _parse_other_strings(out: _Parsed, pos: np.ndarray, texts: list[str], raw: np.ndarray) -> None:
    """Slow path: lower-case T/Z, spaces before the offset, zone names, and everything invalid."""
    wall_pos, wall_text, offsets, zones = [], [], [], []
    for p, t in zip(pos.tolist(), texts, strict=True):
        m = _FULL.fullmatch(t)
        if m is None:
            out.issues.append(_Issue(p, Z001, f"cannot read {raw[p]!r} as an ISO 8601 date-time"))
        elif m.group("clock") is None:
            out.issues.append(
                _Issue(p, Z001, f"{raw[p]!r} is a date without a clock time", _FIX_DATE_ONLY)
            )
        else:
            wall_pos.append(p)
            wall_text.append(m.group("local").upper())
            offsets.append(m.group("offset"))
            zones.append(m.group("bzone") or m.group("szone"))
    if not wall_pos:
        return
    wpos = np.asarray(wall_pos, dtype=np.int64)
    wall, ok = _to_ns(pd.DatetimeIndex(pd.to_datetime(pd.Series(wall_text, dtype="str"),
                                                      format="ISO8601", errors="coerce")))
    by_zone: dict[str, list[int]] = {}
    for i, p in enumerate(wall_pos):
        if not ok[i]:
            out.issues.append(_Issue(p, Z001, _out_of_range(raw[p])))
            continue
        zone_name, offset = zones[i], offsets[i]
        if zone_name is not None and _zone(zone_name) is None:
            out.issues.append(
                _Issue(p, Z001, f"{raw[p]!r} names an unknown time zone {zone_name!r}", _FIX_ZONE_NAME)
            )
        elif offset is not None and (offset_ns := _offset_ns(offset)) is None:
            out.issues.append(_Issue(p, Z001, f"{raw[p]!r} has an impossible UTC offset {offset!r}"))
        elif offset is not None:
            out.kind[p] = _AWARE
            out.ns[p] = int(wall[i]) - offset_ns
            if zone_name is not None:
                by_zone.setdefault(zone_name, []).append(i)
        elif zone_name is not None:
            by_zone.setdefault(zone_name, []).append(i)
        else:
            out.kind[p], out.ns[p] = _NAIVE, wall[i]
    for zone_name, idx in by_zone.items():
        sel = np.asarray(idx)
        has_offset = np.array([offsets[i] is not None for i in idx], dtype=bool)
        # Offset and zone both given: the offset fixes the instant; the zone must agree with it.
        if has_offset.any():
            i_off = sel[has_offset]
            utc = out.ns[wpos[i_off]]
            local = pd.DatetimeIndex(utc.view("M8[ns]")).tz_localize("UTC").tz_convert(zone_name)
            zone_offset = local.tz_localize(None).as_unit("ns").asi8 - utc
            for i, zoff in zip(i_off.tolist(), zone_offset.tolist(), strict=True):
                given = _offset_ns(offsets[i]) or 0
                if given != zoff:
                    p = wall_pos[i]
                    out.kind[p] = _INVALID
                    out.issues.append(_Issue(
                        p, Z001,
                        f"offset {_fmt_offset(given)} in {raw[p]!r} does not match {zone_name}, "
                        f"which is at {_fmt_offset(zoff)} on that date",
                        "Correct the offset or the zone name so that they agree, or drop the zone name.",
                    ))
        # Zone only: a local time in that zone, with the same DST checks as assume_timezone.
        i_loc = sel[~has_offset]
        if len(i_loc):
            p_loc = wpos[i_loc]
            utc, status = _localize(wall[i_loc], zone_name)
            good = status == 0
            out.kind[p_loc[good]] = _AWARE
            out.ns[p_loc[good]] = utc[good]
            for p, w, s in zip(p_loc[~good].tolist(), wall[i_loc][~good].tolist(),
                               status[~good].tolist(), strict=True):
                out.issues.append(_dst_issue(p, w, zone_name, s))


def _parse_objects(out: _Parsed, pos: np.ndarray, raw: Any) -> None:
    for p in pos.tolist():
        v = raw[p]
        if isinstance(v, datetime | np.datetime64):
            try:
                ts = v if isinstance(v, pd.Timestamp) else pd.Timestamp(v)
                value = ts.value  # ns since the epoch: UTC if aware, wall clock if naive
            except (OverflowError, ValueError):  # OutOfBoundsDatetime is a ValueError
                value = None
            if value is None or not _LOWEST.value <= value <= _HIGHEST.value:
                out.issues.append(_Issue(p, Z001, _out_of_range(v)))
                continue
            out.ns[p] = value
            out.kind[p] = _NAIVE if ts.tz is None else _AWARE
        elif isinstance(v, date):
            out.issues.append(_Issue(p, Z001, f"{v} is a date without a clock time", _FIX_DATE_ONLY))
        else:
            out.issues.append(_Issue(p, Z001, f"{v!r} ({type(v).__name__}) is not a date-time"))


def _localize(wall: np.ndarray, tz: str) -> tuple[np.ndarray, np.ndarray]:
    """Wall-clock ns in `tz` -> (UTC ns, status): status 0 ok, 1 nonexistent, 2 ambiguous."""
    dti = pd.DatetimeIndex(np.asarray(wall, dtype=np.int64).view("M8[ns]"))
    loc = dti.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    bad = np.asarray(loc.isna())
    status = np.zeros(len(dti), np.int8)
    if bad.any():
        probe = dti[bad].tz_localize(tz, ambiguous=np.ones(int(bad.sum()), bool), nonexistent="NaT")
        status[bad] = np.where(np.asarray(probe.isna()), 1, 2)
    utc = loc.tz_convert("UTC").tz_localize(None).as_unit("ns").asi8.copy()
    return utc, status


def _dst_issue(pos: int | None, wall: int, tz: str, status: int, what: str = "local time") -> _Issue:
    naive = pd.Timestamp(wall, unit="ns")
    shown = naive.isoformat()
    if status == 2:
        first = naive.tz_localize(tz, ambiguous=True).isoformat()
        second = naive.tz_localize(tz, ambiguous=False).isoformat()
        return _Issue(
            -1 if pos is None else pos, Z004,
            f"{what} {shown} is ambiguous in {tz}: it occurs twice when clocks fall back, "
            f"as {first} and as {second}",
            f"Write the UTC offset explicitly: {first} for the first occurrence or {second} for the second.",
        )
    before = naive.tz_localize(tz, nonexistent="shift_backward").utcoffset()
    after = naive.tz_localize(tz, nonexistent="shift_forward").utcoffset()
    off_before = _fmt_offset(int(before.total_seconds()) * 10**9)
    off_after = _fmt_offset(int(after.total_seconds()) * 10**9)
    return _Issue(
        -1 if pos is None else pos, Z004,
        f"{what} {shown} does not exist in {tz}: it falls in the gap skipped when clocks spring "
        f"forward (UTC offset {off_before} -> {off_after})",
        f"Check the time and write the UTC offset the clock actually used, e.g. {shown}{off_before} "
        f"or {shown}{off_after}.",
    )


# --- arithmetic --------------------------------------------------------------------------------------
def nanoseconds_to_hours(ns: Sequence[int] | np.ndarray) -> np.ndarray:
    """Convert integer nanoseconds to hours, correctly rounded to float64.

    This is how :func:`timestamps_to_hours` computes every hour value: the exact
    integer nanosecond difference divided by ``3.6e12`` with a single rounding.
    Up to 2**53 ns (about 104 days) numpy's float division is already exact in
    its inputs; larger magnitudes are divided as Python integers, which round
    correctly too.

    Parameters
    ----------
    ns : sequence of int or numpy.ndarray
        Integer nanoseconds (int64 or Python ints of any size).

    Returns
    -------
    numpy.ndarray
        float64 hours, same shape.

    Examples
    --------
    >>> nanoseconds_to_hours([1_800_000_000_000, 1_000_000_000, -NS_PER_HOUR]).tolist() == [
    ...     0.5, 1 / 3600, -1.0]
    True
    """
    arr = np.asarray(ns)
    if arr.dtype == object or arr.dtype.kind not in "iu":
        return np.array([int(d) / NS_PER_HOUR for d in arr.ravel().tolist()], dtype=np.float64).reshape(
            arr.shape
        )
    out = arr.astype(np.float64) / float(NS_PER_HOUR)
    big = (arr > _EXACT_LIMIT) | (arr < -_EXACT_LIMIT)
    if big.any():
        out[big] = [int(d) / NS_PER_HOUR for d in arr[big].tolist()]
    return out


def _elapsed_hours(t: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Hours from `r` to `t` (int64 ns), exact even where the int64 difference would overflow."""
    d = t - r  # wraps silently on overflow (spans over 292 years); detected below
    out = nanoseconds_to_hours(d)
    over = ((t ^ r) & (t ^ d)) < 0
    if over.any():
        out[over] = [(a - b) / NS_PER_HOUR for a, b in zip(t[over].tolist(), r[over].tolist(), strict=True)]
    return out


# --- public API --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TimestampResult:
    """Hours since each patient's reference time, and every problem found on the way.

    Parameters
    ----------
    hours : pandas.Series
        float64, same index as the input values. Exact: the integer nanosecond
        difference to the patient's reference divided by 3.6e12 and correctly
        rounded (:func:`nanoseconds_to_hours`), so 30 min is exactly ``0.5``.
        NaN only on rows covered by a violation.
    reference : pandas.Series
        Patient id -> reference time as a tz-aware UTC :class:`pandas.Timestamp`
        (``datetime64[ns, UTC]``), in order of first appearance; patients whose
        reference could not be determined are absent.
    violations : list of Violation
        Rules ``Z001``-``Z006``, sorted by source position.

    Examples
    --------
    >>> import pandas as pd
    >>> r = timestamps_to_hours(pd.Series(["2024-03-01T08:00Z", "2024-03-01T08:00:01Z"]),
    ...                         pd.Series(["A", "A"]), column="TIME")
    >>> bool(r.hours.iloc[1] == 1 / 3600), r.ok
    (True, True)
    """

    hours: pd.Series
    reference: pd.Series
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no error was found."""
        return not any(v.severity == "error" for v in self.violations)

    def report(self, source: str = "<data>") -> ValidationReport:
        """Return the violations as a :class:`~bayestwin.data.report.ValidationReport`.

        Examples
        --------
        >>> import pandas as pd
        >>> r = timestamps_to_hours(pd.Series(["2024-03-01"]), pd.Series([1]), column="DT")
        >>> r.report("visits.csv").rules()
        ['Z001']
        """
        return ValidationReport.from_violations(self.violations, source=source)


def _py(x: Any) -> Any:
    """NumPy scalar -> Python scalar (cleaner reports)."""
    return x.item() if isinstance(x, np.generic) else x


def _rows_text(labels: list[Any], limit: int = 5) -> str:
    shown = ", ".join(str(_py(x)) for x in labels[:limit])
    more = f" and {len(labels) - limit} more" if len(labels) > limit else ""
    return f"row{'s' if len(labels) != 1 else ''} {shown}{more}"


def _group(pos: np.ndarray, codes: np.ndarray) -> dict[int, np.ndarray]:
    """Positions grouped by patient code, groups in order of first position, positions ascending."""
    if not len(pos):
        return {}
    order = np.argsort(codes[pos], kind="stable")
    sorted_pos, sorted_codes = pos[order], codes[pos][order]
    cut = np.flatnonzero(np.diff(sorted_codes)) + 1
    groups = {int(g[0]): p for g, p in zip(np.split(sorted_codes, cut), np.split(sorted_pos, cut),
                                           strict=True)}
    return dict(sorted(groups.items(), key=lambda kv: kv[1][0]))


class _Reporter:
    """Collects violations located at source rows, with their patient, label, column and cell value."""

    def __init__(self, values: pd.Series, codes: np.ndarray, uniques: Any, column: str) -> None:
        self.labels, self.cells, self.codes, self.uniques = values.index, _Cells(values), codes, uniques
        self.column = column
        self.found: list[tuple[int, str, Violation]] = []  # (position, rule id, violation), -1 = no row

    def patient(self, code: int) -> Any:
        return _py(self.uniques[code]) if code >= 0 else None

    def who(self, code: int) -> str:
        return f"patient {self.patient(code)}" if code >= 0 else "rows without a patient id"

    def rows(self, pos: np.ndarray) -> str:
        return _rows_text(list(self.labels[pos]))

    def at(self, rule: Rule, pos: int, message: str, fix: str | None = None, cell: bool = True) -> None:
        self.found.append((pos, rule.id, rule.violation(
            message, patient=self.patient(int(self.codes[pos])), row=_py(self.labels[pos]),
            column=self.column, value=_py(self.cells[pos]) if cell else None, fix=fix,
        )))

    def unplaced(self, rule: Rule, message: str, patient: Any, value: Any, fix: str | None = None) -> None:
        self.found.append((-1, rule.id, rule.violation(message, patient=patient, value=_py(value), fix=fix)))

    def sorted(self) -> list[Violation]:
        return [v for _, _, v in sorted(self.found, key=lambda item: (item[0], item[1]))]


def _counts(codes: np.ndarray, mask: np.ndarray, n_pat: int) -> np.ndarray:
    """Rows per patient code under `mask`; index 0 counts rows without a patient id (code -1)."""
    return np.bincount(codes[mask] + 1, minlength=n_pat + 1)


def _flag_mixed_kinds(rep: _Reporter, kind: np.ndarray, n_pat: int) -> None:
    """Z003: aware and naive values in one file; flag the minority kind, once per patient."""
    n_aware, n_naive = int((kind == _AWARE).sum()), int((kind == _NAIVE).sum())
    if not (n_aware and n_naive):
        return
    minority, majority = (_NAIVE, _AWARE) if n_naive <= n_aware else (_AWARE, _NAIVE)
    has = {_NAIVE: "no time zone", _AWARE: "a time zone"}
    own_majority = _counts(rep.codes, kind == majority, n_pat)
    for code, pos in _group(np.flatnonzero(kind == minority), rep.codes).items():
        own, n = int(own_majority[code + 1]), len(pos)
        if own:
            msg = (f"{rep.who(code)} mixes timestamps with and without a time zone: {n} of {n + own} "
                   f"have {has[minority]} ({rep.rows(pos)})")
        else:
            msg = (f"{rep.who(code)}: {n} timestamp{'s' if n != 1 else ''} with {has[minority]} "
                   f"({rep.rows(pos)}), while the file's other {max(n_aware, n_naive)} have {has[majority]}")
        rep.at(Z003, int(pos[0]), msg)
    kind[kind == minority] = _INVALID


def _resolve_naive(rep: _Reporter, kind: np.ndarray, ns: np.ndarray, assume_timezone: str | None) -> None:
    """Naive values: one Z002 per patient without `assume_timezone`, else localise them (Z004 per row)."""
    naive = np.flatnonzero(kind == _NAIVE)
    if not len(naive):
        return
    if assume_timezone is None:
        for code, pos in _group(naive, rep.codes).items():
            rep.at(Z002, int(pos[0]),
                   f"{rep.who(code)}: {len(pos)} timestamp{'s' if len(pos) != 1 else ''} without a time "
                   f"zone ({rep.rows(pos)}) and no assume_timezone was given")
        kind[naive] = _INVALID
        return
    utc, status = _localize(ns[naive], assume_timezone)
    good = status == 0
    kind[naive] = np.where(good, _AWARE, _INVALID)
    for p, st in zip(naive[~good].tolist(), status[~good].tolist(), strict=True):
        issue = _dst_issue(p, int(ns[p]), assume_timezone, st)
        rep.at(issue.rule, p, issue.message, issue.fix)
    ns[naive[good]] = utc[good]


def _check_timezone(name: str | None) -> None:
    if name is None:
        return
    if not isinstance(name, str) or _zone(name) is None:
        raise ValueError(
            f"assume_timezone={name!r} is not an IANA time-zone name; use e.g. 'Europe/Paris', "
            "'America/New_York' or 'UTC'"
        )


def _map_reference(
    reference: Mapping[Any, Any] | pd.Series, rep: _Reporter, n_pat: int, assume_timezone: str | None
) -> np.ndarray:
    """Parse a patient id -> time mapping into reference ns per patient code (Z006 and zone rules)."""
    ref_ns = np.full(n_pat, _NAT, np.int64)
    lookup: dict[Any, int] = {}
    for code in range(n_pat):
        lookup.setdefault(rep.patient(code), code)
    if isinstance(reference, pd.Series):
        keys, vals = [_py(k) for k in reference.index], list(reference.to_numpy(dtype=object))
    else:
        keys, vals = [_py(k) for k in reference], [reference[k] for k in reference]
    parsed = _parse(pd.Series(vals, dtype=object))
    problems = {issue.pos: issue for issue in parsed.issues}
    given = np.zeros(n_pat, bool)
    for i, (key, value) in enumerate(zip(keys, vals, strict=True)):
        code = lookup.get(key)
        if code is None or given[code]:
            why = f"who has no rows in column {rep.column}" if code is None else "given more than once"
            rep.unplaced(Z006, f"reference time given for patient {key}, {why}", key, value)
            continue
        given[code] = True
        what = f"reference time for patient {key}"
        if i in problems:
            issue = problems[i]
            rep.unplaced(issue.rule, f"{what}: {issue.message}", key, value, issue.fix)
        elif parsed.kind[i] == _NAIVE and assume_timezone is None:
            rep.unplaced(Z002, f"{what} ({value}) has no time zone and no assume_timezone was given", key, value)
        elif parsed.kind[i] == _NAIVE:
            assert assume_timezone is not None
            utc, status = _localize(parsed.ns[i : i + 1], assume_timezone)
            if status[0]:
                issue = _dst_issue(None, int(parsed.ns[i]), assume_timezone, int(status[0]), what=f"{what}:")
                rep.unplaced(Z004, issue.message, key, value, issue.fix)
            else:
                ref_ns[code] = utc[0]
        elif parsed.kind[i] == _AWARE:
            ref_ns[code] = parsed.ns[i]
    rows_per_patient = _counts(rep.codes, np.ones(len(rep.codes), bool), n_pat)[1:]
    present, first = np.unique(rep.codes, return_index=True)
    for code, p in zip(present.tolist(), first.tolist(), strict=True):
        if code >= 0 and not given[code]:
            n = int(rows_per_patient[code])
            rep.at(Z006, p, f"{rep.who(code)} has no reference time in `reference`, so its {n} "
                   f"row{'s' if n != 1 else ''} cannot be converted to hours", cell=False)
    return ref_ns


def timestamps_to_hours(
    values: pd.Series,
    patients: pd.Series,
    *,
    column: str,
    assume_timezone: str | None = None,
    reference: Literal["first"] | Mapping[Any, Any] = "first",
) -> TimestampResult:
    """Convert date-times to hours since a per-patient reference time.

    See the module documentation for the rules of interpretation (accepted
    forms, time zones, daylight-saving changes, missing and date-only values).

    Parameters
    ----------
    values : pandas.Series
        Timestamps as ISO 8601 strings, :class:`pandas.Timestamp`/``datetime``
        objects or a ``datetime64`` column. The index holds the source row
        labels reported in violations.
    patients : pandas.Series
        Patient id of each row, same index as `values`.
    column : str
        Column name as written in the source, for violations.
    assume_timezone : str, optional
        IANA zone (e.g. ``"Europe/Paris"``) of values without offset or zone.
        ``None`` (default) makes such values an error (``Z002``).
    reference : "first" or mapping, default "first"
        ``"first"``: each patient's earliest valid timestamp. A mapping (or
        Series) patient id -> time (string or Timestamp, same zone rules as
        `values`): hours may then be negative.

    Returns
    -------
    TimestampResult
        ``hours`` (float64, exact, same index), ``reference`` (patient id ->
        UTC Timestamp) and ``violations`` (rules ``Z001``-``Z006``).

    Raises
    ------
    ValueError
        If the arguments themselves are wrong (index mismatch, unknown
        `assume_timezone`, `reference` neither ``"first"`` nor a mapping).
        Problems in the data never raise.

    Examples
    --------
    Daylight saving ends in New York at 2 a.m. on 2024-11-03, so this night
    lasts an hour longer than the clock shows:

    >>> import pandas as pd
    >>> values = pd.Series(["2024-11-03 00:00", "2024-11-03 04:00", "2024-03-01"], index=[7, 8, 9])
    >>> r = timestamps_to_hours(values, pd.Series(["P1", "P1", "P1"], index=[7, 8, 9]),
    ...                         column="DRAWN", assume_timezone="America/New_York")
    >>> r.hours.tolist()
    [0.0, 5.0, nan]
    >>> [(v.rule, v.row, v.column) for v in r.violations]
    [('Z001', 9, 'DRAWN')]
    """
    if not isinstance(values, pd.Series) or not isinstance(patients, pd.Series):
        raise ValueError("values and patients must be pandas Series")
    if len(values) != len(patients) or not values.index.equals(patients.index):
        raise ValueError("values and patients must have the same index (the source row labels)")
    _check_timezone(assume_timezone)
    if isinstance(reference, str):
        if reference != "first":
            raise ValueError(f"reference must be 'first' or a mapping patient id -> time, not {reference!r}")
    elif not (isinstance(reference, Mapping | pd.Series)):
        raise ValueError("reference must be 'first' or a mapping patient id -> time")

    codes, uniques = pd.factorize(patients)
    codes = np.asarray(codes, dtype=np.int64)
    n_pat = len(uniques)
    rep = _Reporter(values, codes, uniques, column)
    parsed = _parse(values)
    for issue in parsed.issues:
        rep.at(issue.rule, issue.pos, issue.message, issue.fix)
    kind, ns = parsed.kind, parsed.ns
    _flag_mixed_kinds(rep, kind, n_pat)
    _resolve_naive(rep, kind, ns, assume_timezone)

    valid = (kind == _AWARE) & (codes >= 0)
    if isinstance(reference, str):
        ref_ns = np.full(n_pat, _NAT, np.int64)
        vpos = np.flatnonzero(valid)
        if len(vpos):
            firsts = pd.Series(ns[vpos]).groupby(codes[vpos]).min()
            ref_ns[firsts.index.to_numpy()] = firsts.to_numpy()
    else:
        ref_ns = _map_reference(reference, rep, n_pat, assume_timezone)

    has_ref = ref_ns != _NAT
    rows = np.flatnonzero(valid)
    rows = rows[has_ref[codes[rows]]]
    hours = np.full(len(values), np.nan)
    if len(rows):
        hours[rows] = _elapsed_hours(ns[rows], ref_ns[codes[rows]])
    ref_index = uniques[has_ref]
    if isinstance(ref_index, pd.Index):
        ref_index = ref_index.rename(patients.name)
    reference_out = pd.Series(
        pd.DatetimeIndex(ref_ns[has_ref].view("M8[ns]")).tz_localize("UTC"),
        index=ref_index, name="reference",
    )
    return TimestampResult(
        hours=pd.Series(hours, index=values.index, name=values.name, dtype=np.float64),
        reference=reference_out,
        violations=rep.sorted(),
    )


def hours_to_timestamps(
    hours: pd.Series,
    reference: pd.Series,
    *,
    patients: pd.Series,
    round_to: str | None = None,
) -> pd.Series:
    """Convert hours since each patient's reference back to UTC timestamps.

    The inverse of :func:`timestamps_to_hours`. Hours are float64, so the round
    trip is exact to the nanosecond for spans up to 2**52 ns (about 52 days)
    from the reference and exact to within ``span * 2**-53`` beyond (about 4 ns
    after a year); pass `round_to` (e.g. ``"s"`` or ``"us"``) to snap to the
    resolution the source was written in.

    Parameters
    ----------
    hours : pandas.Series
        Hours since the reference (NaN allowed, gives NaT).
    reference : pandas.Series
        Patient id -> tz-aware reference time, e.g. ``TimestampResult.reference``.
    patients : pandas.Series
        Patient id of each row of `hours`, same index.
    round_to : str, optional
        pandas frequency to round the result to (``"s"``, ``"ms"``, ``"us"``).

    Returns
    -------
    pandas.Series
        ``datetime64[ns, UTC]``, same index as `hours`; NaT where the hours are
        NaN, the patient has no reference, or the result is out of range.

    Raises
    ------
    ValueError
        If the indexes of `hours` and `patients` differ or `reference` is not tz-aware.

    Examples
    --------
    >>> import pandas as pd
    >>> ref = pd.Series([pd.Timestamp("2024-03-01T07:00Z")], index=["P1"])
    >>> hours_to_timestamps(pd.Series([0.5, -1.0]), ref, patients=pd.Series(["P1", "P1"])).tolist()
    [Timestamp('2024-03-01 07:30:00+0000', tz='UTC'), Timestamp('2024-03-01 06:00:00+0000', tz='UTC')]
    """
    if len(hours) != len(patients) or not hours.index.equals(patients.index):
        raise ValueError("hours and patients must have the same index")
    ref = pd.DatetimeIndex(reference)
    if len(ref) and ref.tz is None:
        raise ValueError("reference times must be tz-aware (e.g. TimestampResult.reference)")
    if len(ref):
        ref = ref.tz_convert("UTC")
    per_row = pd.Series(ref, index=reference.index).reindex(patients.to_numpy())
    ref_dti = pd.DatetimeIndex(per_row)
    ref_ns = (ref_dti.tz_localize(None) if ref_dti.tz is not None else ref_dti).as_unit("ns").asi8
    h = hours.to_numpy(dtype=np.float64, na_value=np.nan)
    ok = np.isfinite(h) & np.asarray(ref_dti.notna()) & (np.abs(h) < 2_000_000)  # +-228 years
    # Exact split: integer hours times NS_PER_HOUR (exact int64) + the fraction's nanoseconds.
    whole = np.floor(h[ok])
    delta = whole.astype(np.int64) * NS_PER_HOUR + np.rint((h[ok] - whole) * NS_PER_HOUR).astype(np.int64)
    out = np.full(len(h), _NAT, np.int64)
    base = ref_ns[ok]
    total = base + delta
    in_range = ~((((base ^ total) & (delta ^ total)) < 0) | (total == _NAT))
    out[np.flatnonzero(ok)[in_range]] = total[in_range]
    result = pd.Series(
        pd.DatetimeIndex(out.view("M8[ns]")).tz_localize("UTC"), index=hours.index, name=hours.name
    )
    if round_to is not None:
        result = result.dt.round(round_to)
    return result
