"""An SBC in parts: replications keyed by id add up, over separate calls, to the same SBC as one call.

The real runs use a tiny design (one-compartment IV, 3 patients, 20 + 20 iterations): what is checked is the
bookkeeping -- truth, data and chains of replication i do not depend on the block it runs in -- not the
calibration (``test_sbc.py`` runs the real reduced SBC).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bayestwin.exceptions import InputError, SpecError
from bayestwin.inference.batch import run_batched_nuts
from bayestwin.models import get_model
from bayestwin.testing import default_spec
from bayestwin.validation import SBCResult, combine_sbc, misspecified_prior, run_sbc, sbc_from_dict, sbc_to_dict

TINY = {"n_patients": 3, "warmup": 20, "draws": 20, "thin": 2, "chains": 2, "seed": 5}


@pytest.fixture(scope="module")
def iv_spec():
    return default_spec(get_model("pk.one_cmt_iv"))


@pytest.fixture(scope="module")
def whole(iv_spec):
    return run_sbc(iv_spec, replication_ids=[0, 1, 2, 3], **TINY)


def test_blocks_give_the_same_replications_as_one_call(iv_spec, whole) -> None:
    parts = [run_sbc(iv_spec, replication_ids=[2, 0], **TINY), run_sbc(iv_spec, replication_ids=[3, 1], **TINY)]
    joined = combine_sbc(parts)
    assert list(joined.ranks.index) == [0, 1, 2, 3]
    pd.testing.assert_frame_equal(joined.ranks, whole.ranks)
    pd.testing.assert_frame_equal(joined.replications, whole.replications)
    assert joined.settings["replications"] == 4 and joined.settings["parts"] == 2
    assert joined.settings["spec_digest"] == joined.settings["fit_spec_digest"] == iv_spec.digest()
    assert joined.wall_s == pytest.approx(sum(p.wall_s for p in parts))


def test_keyed_replications_differ_from_each_other_and_from_the_default_keys(iv_spec, whole) -> None:
    assert whole.ranks.drop_duplicates().shape[0] == 4  # four different data sets and fits
    default = run_sbc(iv_spec, n_replications=4, **TINY)
    assert not default.ranks.equals(whole.ranks)
    assert "replication_keys" not in default.settings
    with pytest.raises(SpecError, match="not run with replication_ids"):
        combine_sbc([whole, default])


def test_combine_refuses_a_replication_twice_and_another_sbc(iv_spec, whole) -> None:
    with pytest.raises(SpecError, match=r"replication ids \[1\] occur in more than one part"):
        combine_sbc([whole, run_sbc(iv_spec, replication_ids=[1], **TINY)])
    other_seed = run_sbc(iv_spec, replication_ids=[7], **(TINY | {"seed": 6}))
    with pytest.raises(SpecError, match="settings\\['seed'\\]: 6 vs 5"):
        combine_sbc([whole, other_seed])
    broken = run_sbc(iv_spec, fit_spec=misspecified_prior(iv_spec, 1 / 3), replication_ids=[9], **TINY)
    with pytest.raises(SpecError, match="spec"):
        combine_sbc([whole, broken])


def test_replication_ids_are_checked(iv_spec) -> None:
    for bad in ([1, 1], [-1], []):
        with pytest.raises(SpecError, match="distinct non-negative"):
            run_sbc(iv_spec, replication_ids=bad, **TINY)


def test_json_round_trip_keeps_everything_the_tests_use(whole) -> None:
    back = sbc_from_dict(json.loads(json.dumps(sbc_to_dict(whole))))
    pd.testing.assert_frame_equal(back.ranks, whole.ranks)
    pd.testing.assert_frame_equal(back.replications, whole.replications)
    assert back.settings == whole.settings
    pd.testing.assert_frame_equal(back.tests(), whole.tests())
    assert combine_sbc([back]).ranks.equals(whole.ranks)


def test_layout_settings_may_differ_between_parts() -> None:
    def part(ids: list[int], devices: int, platform: str) -> SBCResult:
        ranks = pd.DataFrame({"q": np.asarray(ids) % 10}, index=pd.Index(ids, name="replication"))
        rep = pd.DataFrame({"max_rhat": 1.0, "divergences": 0, "mean_steps": 7.0}, index=ranks.index)
        return SBCResult("m", "s", ranks, n_draws=9, replications=rep, alpha=0.01, wall_s=1.0,
                         settings={"replication_keys": "fold_in", "devices": devices, "platform": platform,
                                   "batch": 2, "warmup": 300})

    joined = combine_sbc([part([5, 6], 14, "cpu"), part([0, 1], 1, "gpu")])
    assert list(joined.ranks.index) == [0, 1, 5, 6]
    assert list(joined.ranks["q"]) == [0, 1, 5, 6]
    assert joined.settings["devices"] == "14/1" and joined.settings["platform"] == "cpu/gpu"
    with pytest.raises(SpecError, match="settings\\['warmup'\\]"):
        combine_sbc([part([0], 1, "cpu"), SBCResult("m", "s", part([1], 1, "cpu").ranks, 9,
                                                    part([1], 1, "cpu").replications, 0.01, 1.0,
                                                    {"replication_keys": "fold_in", "warmup": 500})])


def test_run_batched_nuts_fit_ids_are_checked(iv_spec) -> None:
    with pytest.raises(InputError, match="fit_ids must hold one non-negative id per data set"):
        run_batched_nuts(lambda: None, (np.zeros((2, 1)),), warmup=1, draws=1, fit_ids=[0])
