"""Means over users with percentile bootstrap intervals (issue #26), on hand-made cases."""

from __future__ import annotations

import pandas as pd
import pytest

from dfdetect.puface.evaluation.bootstrap import bootstrap_ci, cell, summarise


def test_constant_values_have_a_point_interval():
    assert bootstrap_ci([0.25] * 7) == (0.25, 0.25, 0.25)


def test_half_successes_over_many_users_give_the_normal_width():
    # 40 users, 20 at 1 and 20 at 0: mean 0.5, the mean's s.e. sqrt(0.25 / 40) = 0.079, so the
    # 95 % interval is about 0.5 +- 0.155
    mean, low, high = bootstrap_ci([1.0] * 20 + [0.0] * 20, n_boot=20_000, seed=1)
    assert mean == 0.5
    assert low == pytest.approx(0.345, abs=0.03) and high == pytest.approx(0.655, abs=0.03)


def test_interval_stays_inside_the_values_and_one_user_is_its_own_interval():
    mean, low, high = bootstrap_ci([0.0, 0.1, 0.9])
    assert 0.0 <= low < mean < high <= 0.9
    assert bootstrap_ci([0.3]) == (0.3, 0.3, 0.3)
    with pytest.raises(ValueError):
        bootstrap_ci([])


def test_summarise_groups_and_formats():
    df = pd.DataFrame({"attack": ["a"] * 4 + ["b"] * 2, "user": ["u1", "u2", "u3", "u4", "u1", "u2"],
                       "asr": [1, 1, 1, 1, 0, 0.5], "normal_accuracy": [0.9] * 6})  # fmt: skip
    out = summarise(df, ["attack"], n_boot=2000)
    assert out["users"].tolist() == [4, 2]
    assert out.loc[0, "asr"] == 1 and out.loc[0, "asr_low"] == 1
    assert out.loc[1, "asr"] == 0.25 and out.loc[1, "asr_low"] == 0 and out.loc[1, "asr_high"] == 0.5
    assert cell(out.loc[1], "asr") == "25.0 [0.0, 50.0]"
