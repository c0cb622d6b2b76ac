"""A small typed Python client of the bayestwin decision-support service (httpx; imports no JAX).

Every method returns the decoded JSON document of the response; an error status raises
:class:`~bayestwin.exceptions.ServiceRequestError` with ``.status`` and ``.body`` (which names what was wrong
and how to fix it). Long fits return a job; :meth:`BayestwinClient.wait` polls it to the end.

Examples
--------
>>> client = BayestwinClient("https://twins.example.org", token="eyJ...")
>>> client.base_url
'https://twins.example.org'
>>> rows = [{"ID": 12, "TIME": 0.0, "AMT": 320.0, "EVID": 1}]
>>> event_rows(rows, {"time": "h", "amt": "mg", "dv": "mg/L"})["format"]
'rows'
>>> client.close()
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from bayestwin.exceptions import ServiceRequestError

__all__ = ["BayestwinClient", "event_rows", "fhir_bundle"]

Json = dict[str, Any]


def event_rows(rows: Sequence[Mapping[str, Any]], units: Mapping[str, str], *, evid_coding: str = "nonmem") -> Json:
    """The ``data`` of a request made of NONMEM-style rows (``ID``, ``TIME``, ``AMT``, ``DV``, ``EVID`` ...)."""
    return {"format": "rows", "rows": [dict(r) for r in rows], "units": dict(units), "evid_coding": evid_coding}


def fhir_bundle(bundle: Mapping[str, Any], observations: Mapping[str, tuple[int, str]], *, dose_unit: str = "mg",
                routes: Mapping[str, int | str] | None = None) -> Json:
    """The ``data`` of a request made of a FHIR R4 Bundle; `observations` maps LOINC -> (DVID, unit).

    Examples
    --------
    >>> fhir_bundle({"resourceType": "Bundle"}, {"4049-3": (1, "mg/L")})["observations"]
    {'4049-3': [1, 'mg/L']}
    """
    doc: Json = {"format": "fhir", "bundle": dict(bundle), "dose_unit": dose_unit,
                 "observations": {k: [int(v[0]), str(v[1])] for k, v in observations.items()}}
    if routes is not None:
        doc["routes"] = dict(routes)
    return doc


class BayestwinClient:
    """Calls the service at `base_url` with a bearer `token` (JWT).

    Parameters
    ----------
    base_url : str
        E.g. ``https://twins.example.org`` (the ``/v1`` prefix is added).
    token : str, optional
        Bearer JWT; ``None`` only for :meth:`health` and :meth:`ready`.
    timeout_s : float
        Per-request timeout (a forecast compiles on first use: allow tens of seconds).
    verify : bool, str or ssl.SSLContext
        TLS verification (a CA bundle path for a private CA, or an SSL context).
    """

    def __init__(self, base_url: str, token: str | None = None, *, timeout_s: float = 120.0,
                 verify: bool | str | Any = True, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if isinstance(verify, str):  # a CA bundle: httpx wants an SSL context
            import ssl

            verify = ssl.create_default_context(cafile=verify)
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s, verify=verify,
                                  transport=transport)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> BayestwinClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ---------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        """Send a request to ``/v1{path}``; the decoded JSON, or :class:`ServiceRequestError`."""
        response = self._http.request(method, f"/v1{path}", json=json, params=params)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"error": response.reason_phrase, "detail": response.text[:500]}
            detail = body.get("detail", "") if isinstance(body, dict) else str(body)
            wait = response.headers.get("retry-after")
            raise ServiceRequestError(f"{method} /v1{path} -> {response.status_code}: {detail}",
                                      response.status_code, body,
                                      retry_after=float(wait) if wait and wait.isdigit() else None)
        return response.json()

    # --- service ----------------------------------------------------------------------------------
    def health(self) -> Json:
        """Liveness: ``{"status": "ok", "version": ...}``."""
        return self.request("GET", "/health")  # type: ignore[no-any-return]

    def ready(self) -> Json:
        """Readiness (the store opens)."""
        return self.request("GET", "/ready")  # type: ignore[no-any-return]

    def job(self, job_id: str) -> Json:
        """A background job's status, progress and (when done) result."""
        return self.request("GET", f"/jobs/{job_id}")  # type: ignore[no-any-return]

    def wait(self, job: Json | str, *, timeout_s: float = 600.0, poll_s: float = 0.25) -> Json:
        """Poll `job` until it finishes; its final state (``TimeoutError`` after `timeout_s`).

        Polls start every `poll_s` seconds and back off to every 2 s; a 429 waits its ``Retry-After``.
        """
        job_id = job if isinstance(job, str) else job["id"]
        end = time.monotonic() + timeout_s
        pause = poll_s
        while True:
            try:
                state = self.job(job_id)
            except ServiceRequestError as err:
                if err.status != 429 or time.monotonic() > end:
                    raise
                time.sleep(float(err.retry_after or 1.0))
                continue
            if state["status"] not in ("queued", "running"):
                return state
            if time.monotonic() > end:
                raise TimeoutError(f"job {job_id} still {state['status']} after {timeout_s:g} s ({state['message']})")
            time.sleep(pause)
            pause = min(pause * 1.5, max(poll_s, 2.0))

    # --- models -----------------------------------------------------------------------------------
    def register_spec(self, spec: Mapping[str, Any]) -> Json:
        """Register a ``TwinSpec.to_dict()`` document; returns its ``spec_id``."""
        return self.request("POST", "/specs", json={"spec": dict(spec)})  # type: ignore[no-any-return]

    def fit_population(self, spec_id: str, data: Json, *, sampler: Mapping[str, Any] | None = None,
                       gate: Mapping[str, Any] | None = None, allow_failed_convergence: bool = False) -> Json:
        """Start a population fit (a job); `data` from :func:`event_rows` or :func:`fhir_bundle`."""
        body = {"spec_id": spec_id, "data": data, "sampler": dict(sampler or {}), "gate": dict(gate or {}),
                "allow_failed_convergence": allow_failed_convergence}
        return self.request("POST", "/populations", json=body)  # type: ignore[no-any-return]

    def populations(self) -> list[Json]:
        """Every population version."""
        return self.request("GET", "/populations")  # type: ignore[no-any-return]

    # --- twins ------------------------------------------------------------------------------------
    def create_twin(self, patient: str, data: Json, *, population: str = "latest",
                    sampler: Mapping[str, Any] | None = None, gate: Mapping[str, Any] | None = None,
                    update_warmup: int = 200, allow_failed_convergence: bool = False) -> Json:
        """Start fitting `patient`'s twin (a job)."""
        body = {"data": data, "population": population, "sampler": dict(sampler or {}), "gate": dict(gate or {}),
                "update_warmup": update_warmup, "allow_failed_convergence": allow_failed_convergence}
        return self.request("PUT", f"/twins/{patient}", json=body)  # type: ignore[no-any-return]

    def add_data(self, patient: str, data: Json, *, cold: bool = False) -> Json:
        """Add events to `patient`'s twin and update it (a job)."""
        return self.request("POST", f"/twins/{patient}/data", json={"data": data, "cold": cold})  # type: ignore

    def check_events(self, patient: str, data: Json) -> Json:
        """The canonical event table `data` reads to (nothing stored)."""
        return self.request("POST", f"/twins/{patient}/events/check", json=data)  # type: ignore[no-any-return]

    def forecast(self, patient: str, times: Sequence[float], *, levels: Sequence[float] = (0.8, 0.95),
                 version: int | None = None, seed: int = 0) -> Json:
        """Forecast intervals (``bayestwin.forecast/1`` under ``"forecast"``), recorded with the version."""
        body = {"times": list(times), "levels": list(levels), "version": version, "seed": seed}
        return self.request("POST", f"/twins/{patient}/forecast", json=body)  # type: ignore[no-any-return]

    def compare(self, patient: str, plans: Sequence[Mapping[str, Any]], targets: Sequence[Mapping[str, Any]],
                times: Sequence[float], *, levels: Sequence[float] = (0.8, 0.95), interval_draws: int = 1000,
                recommend: Mapping[str, Any] | None = None, version: int | None = None) -> Json:
        """Compare plans; with `recommend` (``{"chosen", "rule"}``) record the recommendation."""
        body = {"plans": [dict(p) for p in plans], "targets": [dict(t) for t in targets], "times": list(times),
                "levels": list(levels), "interval_draws": interval_draws, "version": version,
                "recommend": None if recommend is None else dict(recommend)}
        return self.request("POST", f"/twins/{patient}/compare", json=body)  # type: ignore[no-any-return]

    def recommendations(self, patient: str, version: int | None = None) -> Json:
        """The recommendation records of a version (default the latest)."""
        params = {} if version is None else {"version": version}
        return self.request("GET", f"/twins/{patient}/recommendations", params=params)  # type: ignore

    def history(self, patient: str) -> Json:
        """The twin's versions."""
        return self.request("GET", f"/twins/{patient}/history")  # type: ignore[no-any-return]
