"""Recommendation.to_html: self-contained, escaped, the same content as the Markdown report (no fit needed)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from bayestwin.decision import Recommendation
from bayestwin.exceptions import InputError

EVIL = "<script>alert('x')</script>"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _rec() -> Recommendation:
    plans = [{"name": EVIL, "estimates": [{"target": "trough", "estimate": 0.8123, "mcse": 0.0117}],
              "intervals": [{"time": 24.0, "output": "conc", "prob": 0.8, "lower": 3.0, "median": 5.0, "upper": 7.5,
                             "unit": "mg/L"}]},
             {"name": "100 mg q12h x3", "estimates": [{"target": "trough", "estimate": 0.5, "mcse": 0.02}]}]
    return Recommendation(
        patient="p-<1>", plans=plans, chosen=EVIL, rule="maximise trough & keep P(peak) <= 5 %",
        model={"spec_name": "theophylline", "spec_digest": "sha256:abc"}, population_version="pop-v1",
        data={"first_time": 0.0, "last_time": 24.4, "n_observations": 11, "time_unit": "h",
              "data_digest": "sha256:def"},
        diagnostics={"status": "failed-overridden"}, ties=["100 mg q12h x3"],
        targets=[{"name": "trough", "description": "P(5 <= conc <= 15 at trough)"}],
        point_estimate_choices={"map": {"chosen": "100 mg q12h x3", "differs": True}},
        warnings=["dose <img src=x onerror=alert(1)> is outside the cohort's range"],
        software={"bayestwin": "0.1.0", "jax": "0.10"})


def test_html_escapes_every_text_and_loads_nothing() -> None:
    page = _rec().to_html()
    assert EVIL not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    parser = _Tags()
    parser.feed(page)
    assert not {"script", "img", "link", "iframe", "object", "embed"} & set(parser.tags)
    assert not [a for a in parser.attrs if a[0] in ("src", "href") or (a[0].startswith("on"))]
    assert "http" not in page and "@import" not in page and "url(" not in page  # no external assets
    assert parser.tags[0] == "html" and parser.tags.count("table") == 2  # plans table + one interval table
    text = "".join(parser.text)
    assert EVIL in text  # the escaped name reads as the original text


def test_html_has_the_content_of_the_markdown() -> None:
    rec = _rec()
    page, md = rec.to_html(), rec.to_markdown()
    for item in ["Treatment recommendation for patient p-&lt;1&gt;", rec.created, "sha256:abc", "pop-v1",
                 "sha256:def", "11 observations, 0.0-24.4 h", "diagnostics: failed-overridden",
                 "maximise trough &amp; keep P(peak) &lt;= 5 %", "81.2 % ± 1.2 %", "50.0 % ± 2.0 %",
                 "bayestwin 0.1.0", "Tied within Monte Carlo error", "100 mg q12h x3",
                 "Choosing on the posterior map", "differs from", "P(5 &lt;= conc &lt;= 15 at trough)"]:
        assert item in page, item
    for item in ["81.2 % ± 1.2 %", "sha256:def", "pop-v1", "Choosing on the posterior map"]:
        assert item in md  # the Markdown says the same
    assert "<td>7.5</td>" in page  # the plan's predictive interval


class _EmptyStore:
    """A record sink that knows no twin versions."""

    def head(self, patient: object) -> None:
        return None

    def add_record(self, patient: object, version: int, kind: str, payload: object) -> int:
        raise AssertionError("nothing may be stored without a twin version")

    def pseudonym(self, patient: object) -> str:
        return "p-0"


def test_recording_without_a_twin_version_says_what_to_commit_first() -> None:
    from bayestwin.decision import record_recommendation, record_recommendation_html

    rec = Recommendation(patient="P9", plans=[{"name": "A"}], chosen="A", rule="by hand")
    for record in (record_recommendation, record_recommendation_html):
        with pytest.raises(InputError, match=r"patient 'P9' has no twin version .*commit the twin"):
            record(_EmptyStore(), rec)
