"""Reading timestamp cells: text forms, offsets, zone names, date-only values, DST-checked localisation.

Private helper of ``bayestwin.data.ingest.timestamps``, which documents the
rules of interpretation. ``parse`` classifies every cell as missing,
invalid, aware (UTC nanoseconds) or naive (wall-clock nanoseconds) and returns
the problems found as ``Issue`` s naming their rule id (``Z001``,
``Z004``, ``Z005``); the rules themselves are declared in ``timestamps``.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

EXAMPLE = "2024-03-01T08:30:00+01:00"

#: Cell kinds in ``Parsed.kind``.
MISSING, INVALID, AWARE, NAIVE = 0, 1, 2, 3
#: int64 value of NaT.
NAT = np.iinfo(np.int64).min
# Supported instants: the datetime64[ns] range less a day at each end, so that no UTC offset overflows it.
_LOWEST = pd.Timestamp.min.ceil("D") + pd.Timedelta(days=1)
_HIGHEST = pd.Timestamp.max.floor("D") - pd.Timedelta(days=1)
_MISSING_WORDS = frozenset({"", ".", "na", "n/a", "nan", "nat", "null", "none"})

_FIX_DATE_ONLY = (
    "A clock time is required (clinical times are used to the hour; midnight would be a guess): "
    f"write e.g. {EXAMPLE}."
)
_FIX_ZONE_NAME = f"Use an IANA time-zone name such as Europe/Paris or America/New_York, or a UTC offset: {EXAMPLE}."

_CLOCK = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?"
_FAST_AWARE = _CLOCK + r"(?:Z|[+-]\d{2}(?::?\d{2})?)"
_FULL = re.compile(
    r"(?P<local>\d{4}-\d{2}-\d{2}(?P<clock>[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?)"
    r"\s*(?P<offset>[Zz]|[+-]\d{2}(?::?\d{2})?)?"
    r"(?:\[!?(?P<bzone>[^\]\s]+)\]|\s+(?P<szone>[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*))?"
)
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})?")


class Issue(NamedTuple):
    """A problem with one cell: its position (-1 for none), rule id, message and optional fix."""

    pos: int
    rule: str
    message: str
    fix: str | None = None


@dataclass(slots=True)
class Parsed:
    """Per-cell parse state: kind code, nanoseconds (UTC if aware, wall clock if naive), issues."""

    kind: np.ndarray
    ns: np.ndarray
    issues: list[Issue] = field(default_factory=list)


def parse(values: pd.Series) -> Parsed:
    """Classify and parse every cell; vectorised for the common all-ISO-8601 cases."""
    n = len(values)
    out = Parsed(np.full(n, INVALID, np.int8), np.zeros(n, np.int64))
    if isinstance(values.dtype, pd.DatetimeTZDtype | np.dtype) and values.dtype.kind == "M":
        dti = pd.DatetimeIndex(values)
        if dti.tz is None:
            kind = NAIVE
        else:
            kind, dti = AWARE, dti.tz_convert(None)
        missing = np.asarray(dti.isna())
        out.kind[missing] = MISSING
        _store(out, np.flatnonzero(~missing), dti[~missing], kind, values.iat)
    else:
        raw = values.to_numpy(dtype=object)
        missing = np.asarray(pd.isna(values), dtype=bool)
        if isinstance(values.dtype, pd.StringDtype):
            is_str = ~missing
        else:
            is_str = np.fromiter((isinstance(v, str) for v in raw), bool, n) & ~missing
        out.kind[missing] = MISSING
        if is_str.any():
            _parse_strings(out, np.flatnonzero(is_str), raw)
        for p in np.flatnonzero(~is_str & ~missing).tolist():
            _parse_object(out, p, raw[p])
    for p in np.flatnonzero(out.kind == MISSING).tolist():
        out.issues.append(Issue(p, "Z005", "timestamp is missing"))
    return out


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


def _store(out: Parsed, pos: np.ndarray, dti: pd.DatetimeIndex, kind: int, raw: Any) -> None:
    """Write parsed instants at `pos`; NaT or out-of-range ones become Z001."""
    ns, ok = _to_ns(dti)
    out.kind[pos[ok]] = kind
    out.ns[pos[ok]] = ns[ok]
    for p in pos[~ok].tolist():
        out.issues.append(Issue(p, "Z001", _out_of_range(raw[p])))


def _parse_strings(out: Parsed, pos: np.ndarray, raw: np.ndarray) -> None:
    text = pd.Series(raw[pos], dtype="str").str.strip()
    short = (text.str.len() <= 4).to_numpy()
    if short.any():
        is_missing = np.zeros(len(pos), bool)
        is_missing[short] = text[short].str.lower().isin(_MISSING_WORDS).to_numpy()
        out.kind[pos[is_missing]] = MISSING
        pos, text = pos[~is_missing], text[~is_missing]
    # Fast paths: ISO 8601 with a numeric offset or Z (the recommended form), then naive ISO 8601
    # (local times, resolved later with assume_timezone).
    for pattern, utc, kind in ((_FAST_AWARE, True, AWARE), (_CLOCK, False, NAIVE)):
        fast = text.str.fullmatch(pattern).to_numpy(dtype=bool)
        if fast.any():
            dti = pd.DatetimeIndex(pd.to_datetime(text[fast], format="ISO8601", utc=utc, errors="coerce"))
            _store(out, pos[fast], dti.tz_localize(None) if utc else dti, kind, raw)
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
def known_zone(name: str) -> bool:
    """True when `name` is an IANA time-zone name available here."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _parse_other_strings(out: Parsed, pos: np.ndarray, texts: list[str], raw: np.ndarray) -> None:
    """Slow path: lower-case T/Z, spaces before the offset, zone names, and everything invalid."""
    rows = []  # (position, wall-clock text, offset text, zone name)
    for p, t in zip(pos.tolist(), texts, strict=True):
        m = _FULL.fullmatch(t)
        if m is None:
            out.issues.append(Issue(p, "Z001", f"cannot read {raw[p]!r} as an ISO 8601 date-time"))
        elif m.group("clock") is None:
            out.issues.append(Issue(p, "Z001", f"{raw[p]!r} is a date without a clock time", _FIX_DATE_ONLY))
        else:
            rows.append((p, m.group("local").upper(), m.group("offset"), m.group("bzone") or m.group("szone")))
    if not rows:
        return
    local_text = pd.Series([r[1] for r in rows], dtype="str")
    wall, ok = _to_ns(pd.DatetimeIndex(pd.to_datetime(local_text, format="ISO8601", errors="coerce")))
    with_offset: dict[str, list[tuple[int, int]]] = {}  # zone -> (position, offset ns): must agree
    zone_only: dict[str, list[tuple[int, int]]] = {}  # zone -> (position, wall ns): localised in the zone
    for (p, _, offset, zone_name), w, good in zip(rows, wall.tolist(), ok.tolist(), strict=True):
        offset_ns = None if offset is None else _offset_ns(offset)
        if not good:
            out.issues.append(Issue(p, "Z001", _out_of_range(raw[p])))
        elif zone_name is not None and not known_zone(zone_name):
            out.issues.append(
                Issue(p, "Z001", f"{raw[p]!r} names an unknown time zone {zone_name!r}", _FIX_ZONE_NAME)
            )
        elif offset is not None and offset_ns is None:
            out.issues.append(Issue(p, "Z001", f"{raw[p]!r} has an impossible UTC offset {offset!r}"))
        elif offset_ns is not None:
            out.kind[p], out.ns[p] = AWARE, w - offset_ns
            if zone_name is not None:
                with_offset.setdefault(zone_name, []).append((p, offset_ns))
        elif zone_name is not None:
            zone_only.setdefault(zone_name, []).append((p, w))
        else:
            out.kind[p], out.ns[p] = NAIVE, w
    # Offset and zone both given: the offset fixes the instant; the zone must agree with it.
    for zone_name, items in with_offset.items():
        p_off = np.array([p for p, _ in items], dtype=np.int64)
        utc = out.ns[p_off]
        local = pd.DatetimeIndex(utc.view("M8[ns]")).tz_localize("UTC").tz_convert(zone_name)
        zone_offset = local.tz_localize(None).as_unit("ns").asi8 - utc
        for (p, given), zoff in zip(items, zone_offset.tolist(), strict=True):
            if given != zoff:
                out.kind[p] = INVALID
                out.issues.append(Issue(
                    p, "Z001",
                    f"offset {_fmt_offset(given)} in {raw[p]!r} does not match {zone_name}, "
                    f"which is at {_fmt_offset(zoff)} on that date",
                    "Correct the offset or the zone name so that they agree, or drop the zone name.",
                ))
    # Zone only: a local time in that zone, with the same DST checks as assume_timezone.
    for zone_name, items in zone_only.items():
        p_loc, w_loc = (np.array(col, dtype=np.int64) for col in zip(*items, strict=True))
        utc, good, issues = localize(p_loc, w_loc, zone_name)
        out.kind[p_loc[good]] = AWARE
        out.ns[p_loc[good]] = utc[good]
        out.issues.extend(issues)


def _parse_object(out: Parsed, p: int, v: Any) -> None:
    """One non-string cell: a datetime/Timestamp/datetime64 is taken as it is; anything else is Z001."""
    if isinstance(v, datetime | np.datetime64):
        try:
            ts = pd.Timestamp(v)
            value = ts.value  # ns since the epoch: UTC if aware, wall clock if naive
        except (OverflowError, ValueError):  # OutOfBoundsDatetime is a ValueError
            value = None
        if value is None or not _LOWEST.value <= value <= _HIGHEST.value:
            out.issues.append(Issue(p, "Z001", _out_of_range(v)))
        else:
            out.kind[p], out.ns[p] = (NAIVE if ts.tz is None else AWARE), value
    elif isinstance(v, date):
        out.issues.append(Issue(p, "Z001", f"{v} is a date without a clock time", _FIX_DATE_ONLY))
    else:
        out.issues.append(Issue(p, "Z001", f"{v!r} ({type(v).__name__}) is not a date-time"))


def localize(
    pos: np.ndarray, wall: np.ndarray, tz: str, what: str = "local time"
) -> tuple[np.ndarray, np.ndarray, list[Issue]]:
    """Wall-clock ns in `tz` -> (UTC ns, ok mask, a Z004 issue at `pos` for each skipped or repeated time)."""
    dti = pd.DatetimeIndex(np.asarray(wall, dtype=np.int64).view("M8[ns]"))
    loc = dti.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    good = np.asarray(loc.notna())
    utc = loc.tz_convert(None).as_unit("ns").asi8.copy()
    issues = [_dst_issue(p, naive, tz, what) for p, naive in zip(pos[~good].tolist(), dti[~good], strict=True)]
    return utc, good, issues


def _dst_issue(pos: int, naive: pd.Timestamp, tz: str, what: str) -> Issue:
    shown = naive.isoformat()
    if naive.tz_localize(tz, ambiguous=True, nonexistent="NaT") is not pd.NaT:
        first = naive.tz_localize(tz, ambiguous=True).isoformat()
        second = naive.tz_localize(tz, ambiguous=False).isoformat()
        return Issue(
            pos, "Z004",
            f"{what} {shown} is ambiguous in {tz}: it occurs twice when clocks fall back, as {first} and as {second}",
            f"Write the UTC offset explicitly: {first} for the first occurrence or {second} for the second.",
        )
    before = naive.tz_localize(tz, nonexistent="shift_backward").utcoffset()
    after = naive.tz_localize(tz, nonexistent="shift_forward").utcoffset()
    off_before = _fmt_offset(int(before.total_seconds()) * 10**9)
    off_after = _fmt_offset(int(after.total_seconds()) * 10**9)
    return Issue(
        pos, "Z004",
        f"{what} {shown} does not exist in {tz}: it falls in the gap skipped when clocks spring "
        f"forward (UTC offset {off_before} -> {off_after})",
        f"Check the time and write the UTC offset the clock actually used, e.g. {shown}{off_before} "
        f"or {shown}{off_after}.",
    )
