"""Keep direct identifiers out of what the store writes: JSON payloads and posterior metadata.

Forecast documents carry the patient's identifier in a top-level ``"patient"``
field; :func:`scrub_payload` replaces it with the pseudonym. Any other place where
the identifier appears as a text value or key is refused, because the store must
hold no direct identifier; the error says where it was found.

Examples
--------
>>> scrub_payload({"patient": "MRN-7", "dose": 100}, "MRN-7", "p-1f")
{'patient': 'p-1f', 'dose': 100}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from bayestwin.exceptions import StoreError

__all__ = ["check_no_identifier", "scrub_payload", "to_json"]


def scrub_payload(payload: dict[str, Any], patient: object, pseudonym: str) -> dict[str, Any]:
    """Replace a top-level ``"patient"`` identifier by `pseudonym`; refuse the identifier anywhere else.

    Examples
    --------
    >>> scrub_payload({"note": {"who": "MRN-7"}}, "MRN-7", "p-1f")
    Traceback (most recent call last):
    ...
    bayestwin.exceptions.StoreError: the patient's identifier appears in the record at note.who; ...
    """
    out = dict(payload)
    if "patient" in out and str(out["patient"]) == str(patient):
        out["patient"] = pseudonym
    _refuse(out, str(patient), "the record", "")
    return out


def check_no_identifier(idata: Any, patient: object, *, where: str) -> None:
    """Refuse an InferenceData whose attributes or text coordinates contain the patient's identifier.

    Examples
    --------
    >>> import numpy as np, arviz as az
    >>> idata = az.InferenceData(posterior=az.dict_to_dataset({"cl": np.ones((1, 2))}, attrs={"id": "MRN-7"}))
    >>> check_no_identifier(idata, "MRN-7", where="the posterior")
    Traceback (most recent call last):
    ...
    bayestwin.exceptions.StoreError: the patient's identifier appears in the posterior at posterior.attrs.id; ...
    """
    ident = str(patient)
    for group in idata.groups():
        ds = idata[group]
        _refuse(dict(ds.attrs), ident, where, f"{group}.attrs")
        for name, var in ds.variables.items():
            _refuse(dict(var.attrs), ident, where, f"{group}.{name}.attrs")
            if var.dtype.kind in "OUS" and any(str(v) == ident for v in np.asarray(var.values).ravel()):
                raise _found(where, f"{group}.{name}")


def to_json(value: Any) -> str:
    """Canonical JSON (sorted keys, no spaces; numpy scalars and arrays as plain values).

    Examples
    --------
    >>> to_json({"b": np.float64(1.5), "a": [1]})
    '{"a":[1],"b":1.5}'
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_default, allow_nan=True)


def _refuse(value: Any, ident: str, where: str, path: str) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            if str(k) == ident:
                raise _found(where, f"{path}.{k}".lstrip("."))
            _refuse(v, ident, where, f"{path}.{k}".lstrip("."))
    elif isinstance(value, list | tuple | np.ndarray):
        for i, v in enumerate(value):
            _refuse(v, ident, where, f"{path}[{i}]")
    elif isinstance(value, str | np.str_) and str(value) == ident:
        raise _found(where, path)


def _found(where: str, path: str) -> StoreError:
    return StoreError(f"the patient's identifier appears in {where} at {path}; the store keeps no direct "
                      "identifiers. Remove it (the store files the patient under a pseudonym) and try again.")


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store a {type(value).__name__} in a JSON record; convert it to numbers, text, "
                    "lists or dicts first")
