"""Clock times to model time: ISO 8601 date-times -> hours since a per-patient reference.

Clinical sources often record *when* something happened (lab draw, dose
administration, wearable reading) instead of "hours since first dose".
``timestamps_to_hours`` turns such a column into hours since a reference
time per patient, handles time zones explicitly and reports every problem with
its patient, source row and column (rules ``Z001``-``Z006``; nothing raises on
bad data). ``hours_to_timestamps`` is the inverse, for writers and tests.

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
  zone rules; a ``pandas.Series`` works too) hours are negative for events
  before the reference, which is allowed. Every patient needs a reference and
  every reference needs a patient (``Z006``). A reference time with a problem
  (``Z001``/``Z002``/``Z004``/``Z005``) is reported once, without a row, and
  leaves that patient's rows NaN; reference times are not part of ``Z003``.
* **Exact hours.** Hours are the integer nanosecond difference divided by
  3.6e12 and correctly rounded to float64 (``nanoseconds_to_hours``):
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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from bayestwin.data.ingest._tzcheck import Reporter, flag_mixed_kinds, map_reference, resolve_naive
from bayestwin.data.ingest._tzparse import AWARE, EXAMPLE, NAT, known_zone, parse
from bayestwin.data.report import ValidationReport, Violation
from bayestwin.data.rules.base import declare

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

_EXACT_LIMIT = 2**53  # integers up to here are exact in float64

# --- rules -------------------------------------------------------------------------------------------
Z001 = declare("Z001", "error", "timestamp cannot be parsed",
               f"Write date-times in ISO 8601 with a clock time and a UTC offset, e.g. {EXAMPLE} "
               "(or 2024-03-01T07:30:00Z for UTC).")
Z002 = declare("Z002", "error", "timestamp has no time zone and no assume_timezone was given",
               f"Add a UTC offset or zone to the data (e.g. {EXAMPLE}), or, if all times without a zone are "
               'local times of one place, pass its IANA name, e.g. assume_timezone="Europe/Paris".')
Z003 = declare("Z003", "error", "timestamps mix values with and without a time zone",
               "Make the timestamps consistent: give every value a UTC offset (e.g. +01:00), or give none "
               "and pass assume_timezone with the IANA zone they are local to.")
Z004 = declare("Z004", "error", "local time does not exist or is ambiguous (daylight-saving change)",
               "Write the UTC offset explicitly for times near a daylight-saving change, "
               "e.g. 2024-10-27T02:30:00+02:00 instead of 2024-10-27 02:30.")
Z005 = declare("Z005", "error", "timestamp is missing",
               "Fill in the date-time of the event (ISO 8601 with a UTC offset), or remove the row if the "
               "event did not happen.")
Z006 = declare("Z006", "error", "reference time does not match the patients",
               "Pass a reference time for every patient id in the data (and only for those), "
               'or use reference="first".')


# --- arithmetic --------------------------------------------------------------------------------------
def nanoseconds_to_hours(ns: Sequence[int] | np.ndarray) -> np.ndarray:
    """Convert integer nanoseconds to hours, correctly rounded to float64.

    This is how ``timestamps_to_hours`` computes every hour value: the exact
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
    if arr.dtype.kind not in "iu":  # Python ints beyond int64 (object arrays)
        return np.array([int(d) / NS_PER_HOUR for d in arr.ravel().tolist()], dtype=np.float64).reshape(arr.shape)
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
        rounded (``nanoseconds_to_hours``), so 30 min is exactly ``0.5``.
        NaN only on rows covered by a violation.
    reference : pandas.Series
        Patient id -> reference time as a tz-aware UTC ``pandas.Timestamp``
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
        """Return the violations as a ``ValidationReport``.

        Examples
        --------
        >>> import pandas as pd
        >>> r = timestamps_to_hours(pd.Series(["2024-03-01"]), pd.Series([1]), column="DT")
        >>> r.report("visits.csv").rules()
        ['Z001']
        """
        return ValidationReport.from_violations(self.violations, source=source)


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
        Timestamps as ISO 8601 strings, ``pandas.Timestamp``/``datetime``
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
    if assume_timezone is not None and (not isinstance(assume_timezone, str) or not known_zone(assume_timezone)):
        raise ValueError(
            f"assume_timezone={assume_timezone!r} is not an IANA time-zone name; use e.g. 'Europe/Paris', "
            "'America/New_York' or 'UTC'"
        )
    if isinstance(reference, str):
        if reference != "first":
            raise ValueError(f"reference must be 'first' or a mapping patient id -> time, not {reference!r}")
    elif not isinstance(reference, Mapping | pd.Series):
        raise ValueError("reference must be 'first' or a mapping patient id -> time")

    codes, uniques = pd.factorize(patients)
    codes = np.asarray(codes, dtype=np.int64)
    n_pat = len(uniques)
    rep = Reporter(values, codes, uniques, column)
    parsed = parse(values)
    for issue in parsed.issues:
        rep.at(issue.rule, issue.pos, issue.message, issue.fix)
    kind, ns = parsed.kind, parsed.ns
    flag_mixed_kinds(rep, kind, n_pat)
    resolve_naive(rep, kind, ns, assume_timezone)

    valid = np.flatnonzero((kind == AWARE) & (codes >= 0))
    if isinstance(reference, str):
        ref_ns = np.full(n_pat, NAT, np.int64)
        firsts = pd.Series(ns[valid]).groupby(codes[valid]).min()
        ref_ns[firsts.index.to_numpy()] = firsts.to_numpy()
    else:
        ref_ns = map_reference(reference, rep, n_pat, assume_timezone)

    has_ref = ref_ns != NAT
    rows = valid[has_ref[codes[valid]]]
    hours = np.full(len(values), np.nan)
    hours[rows] = _elapsed_hours(ns[rows], ref_ns[codes[rows]])
    reference_out = pd.Series(
        pd.DatetimeIndex(ref_ns[has_ref].view("M8[ns]")).tz_localize("UTC"),
        index=uniques[has_ref].rename(patients.name), name="reference",
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

    The inverse of ``timestamps_to_hours``. Hours are float64, so the round
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
    if ref.tz is not None:
        ref = ref.tz_convert(None)  # UTC wall clock
    per_row = pd.DatetimeIndex(pd.Series(ref, index=reference.index).reindex(patients.to_numpy()))
    ref_ns = per_row.as_unit("ns").asi8
    h = hours.to_numpy(dtype=np.float64, na_value=np.nan)
    ok = np.isfinite(h) & np.asarray(per_row.notna()) & (np.abs(h) < 2_000_000)  # +-228 years
    # Exact split: integer hours times NS_PER_HOUR (exact int64) + the fraction's nanoseconds.
    whole = np.floor(h[ok])
    delta = whole.astype(np.int64) * NS_PER_HOUR + np.rint((h[ok] - whole) * NS_PER_HOUR).astype(np.int64)
    out = np.full(len(h), NAT, np.int64)
    base = ref_ns[ok]
    total = base + delta
    in_range = ~((((base ^ total) & (delta ^ total)) < 0) | (total == NAT))
    out[np.flatnonzero(ok)[in_range]] = total[in_range]
    result = pd.Series(
        pd.DatetimeIndex(out.view("M8[ns]")).tz_localize("UTC"), index=hours.index, name=hours.name
    )
    if round_to is not None:
        result = result.dt.round(round_to)
    return result
