"""nsde.metrics.stats against known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from nsde.metrics.stats import (
    auroc,
    bootstrap,
    bootstrap_mean,
    bootstrap_seeds,
    holm,
    mcnemar,
    mean_estimate,
    paired_difference,
    proportion,
    seed_mean,
)


def test_wilson_interval_known_values():
    e = proportion([True] * 8 + [False] * 2)
    assert (e.value, e.n) == (0.8, 10)
    assert e.low == pytest.approx(0.4902, abs=1e-4) and e.high == pytest.approx(0.9433, abs=1e-4)
    all_right = proportion([True] * 20)
    assert all_right.high == 1.0 and all_right.low == pytest.approx(0.8389, abs=1e-4)
    assert math.isnan(proportion([]).value) and proportion([]).n == 0


def test_mean_interval():
    e = mean_estimate([1.0, 2.0, 3.0, 4.0])
    half = 3.182446305284263 * np.std([1, 2, 3, 4], ddof=1) / 2  # Student t, 3 degrees of freedom
    assert e.value == 2.5 and e.low == pytest.approx(2.5 - half) and e.high == pytest.approx(2.5 + half)


def test_auroc_known_cases():
    pos = np.array([True, True, False, False])
    assert auroc(np.array([0.9, 0.8, 0.2, 0.1]), pos) == 1.0
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), pos) == 0.0
    assert auroc(np.array([0.5, 0.5, 0.5, 0.5]), pos) == 0.5
    # 3 of the 4 positive/negative pairs are ordered correctly.
    assert auroc(np.array([0.9, 0.3, 0.5, 0.1]), pos) == 0.75
    assert math.isnan(auroc(np.array([0.1, 0.2]), np.array([True, True])))


def test_bootstrap_mean_is_seeded_and_bounded():
    v = np.array([1.0] * 14 + [0.25, 0.2])
    a, b = bootstrap_mean(v, seed=1), bootstrap_mean(v, seed=1)
    assert a == b and a.value == pytest.approx(v.mean()) and 0 <= a.low < a.value < a.high <= 1.0
    assert bootstrap_mean(np.ones(10)).low == bootstrap_mean(np.ones(10)).high == 1.0
    # the bootstrap of a mean is close to the normal interval for a large symmetric sample
    big = np.random.default_rng(0).normal(size=4000)
    e = bootstrap_mean(big)
    half = 1.96 * big.std(ddof=1) / np.sqrt(big.size)
    assert e.low == pytest.approx(big.mean() - half, abs=0.01) and e.high == pytest.approx(big.mean() + half, abs=0.01)


def test_bootstrap_of_an_auroc_skips_undefined_resamples():
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    positive = np.array([True, True, True, False])
    e = bootstrap(lambda idx: auroc(scores[idx], positive[idx]), 4, resamples=300)
    assert e.value == 1.0 and e.low == e.high == 1.0  # every defined resample ranks perfectly


def test_paired_difference_and_mcnemar_known_cases():
    a = np.array([1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1], dtype=float)
    diff, p = paired_difference(a, a)
    assert (diff.value, diff.low, diff.high, p) == (0.0, 0.0, 0.0, 1.0)
    better = np.ones(12)
    diff, p = paired_difference(better, a)
    assert diff.value == pytest.approx(2 / 12) and diff.low >= 0 and diff.high <= 0.5
    # 10 discordant pairs, all won by the first classifier: p = 2 * 0.5 ** 10
    x, y = np.ones(20, dtype=bool), np.array([False] * 10 + [True] * 10)
    assert mcnemar(x, y) == pytest.approx(2 * 0.5**10)
    assert mcnemar(x, x) == 1.0
    with pytest.raises(ValueError, match="same examples"):
        paired_difference(np.ones(3), np.ones(4))


def test_bootstrap_over_seeds_counts_seeds_and_carries_their_spread():
    rng = np.random.default_rng(0)
    one = rng.random(200) < 0.7
    single = bootstrap_seeds([one])
    assert single.n == 1 and single.value == pytest.approx(one.mean())
    apart = bootstrap_seeds([rng.random(200) < p for p in (0.5, 0.7, 0.9)])
    close = bootstrap_seeds([rng.random(200) < 0.7 for _ in range(3)])
    assert apart.n == 3 and 0 <= apart.low <= apart.high <= 1
    assert apart.high - apart.low > close.high - close.low  # seed-to-seed spread widens it


def test_bootstrap_over_seeds_resamples_rows_of_two_column_values():
    rng = np.random.default_rng(1)
    per_seed = [np.column_stack([rng.random(50), rng.random(50) < 0.5]) for _ in range(2)]
    ratio = lambda a: a[:, 0].mean() / a[:, 1].mean()  # noqa: E731
    e = bootstrap_seeds(per_seed, ratio, resamples=200)
    assert e.n == 2 and e.value == pytest.approx(np.mean([ratio(a) for a in per_seed])) and e.low < e.value < e.high


def test_holm_matches_the_textbook_example_and_keeps_nan():
    # Holm (1979)-style worked example: p = (0.01, 0.04, 0.03, 0.005), m = 4
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.02, 0.03, 0.06, 0.06
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert np.allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    # capped at 1; NaN stays NaN and does not count toward m (m = 2 here)
    adjusted = holm([0.6, np.nan, 0.02])
    assert adjusted[0] == 0.6 and np.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    assert holm([0.5, 0.7]).tolist() == [1.0, 1.0]
    assert holm([]).shape == (0,)


def test_holm_is_statsmodels_multipletests():
    from statsmodels.stats.multitest import multipletests

    p = np.random.default_rng(3).random(14) ** 3
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1])


def test_a_mean_over_few_seeds_is_students_t_on_the_seeds_plus_the_shared_examples():
    # seeds scored on other examples share nothing: the interval is the plain t-interval of the
    # seeds' statistics
    per_seed = [np.full(10, 0.6), np.full(12, 0.7), np.full(8, 0.8)]
    est = seed_mean(per_seed)
    half = stats.t.ppf(0.975, 2) * np.std([0.6, 0.7, 0.8], ddof=1) / np.sqrt(3)
    assert est.value == pytest.approx(0.7) and est.n == 3
    assert (est.low, est.high) == pytest.approx((0.7 - half, 0.7 + half))
    # three identical models on the same examples: no seed spread, all of it the examples' draw
    same = (np.arange(200) % 3 == 0).astype(float)
    est = seed_mean([same, same, same], resamples=2000)
    boot = bootstrap_mean(same, resamples=2000)
    assert est.high - est.low > boot.high - boot.low  # Student's t on 2 df over the examples' sd
    assert (est.high - est.low) / 2 == pytest.approx(stats.t.ppf(0.975, 2) * same.std() / np.sqrt(200), rel=0.1)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        seed_mean([same])


def test_seed_estimates_use_t_below_five_seeds_and_the_two_level_bootstrap_from_five():
    from nsde.metrics.report import SEED_BOOTSTRAP_MIN, replicate_estimate

    rng = np.random.default_rng(0)
    parts = [{"clean": {"index": list(range(100)), "correct": (rng.random(100) < p).tolist(),
                        "location": [""] * 100}} for p in (0.5, 0.6, 0.7, 0.8, 0.65)]
    columns = [np.asarray(p["clean"]["correct"], float)[:, None] for p in parts]
    three = replicate_estimate(parts[:3], "clean_accuracy", resamples=500)
    t = seed_mean(columns[:3], lambda v: float(v[:, 0].mean()), resamples=500)
    assert (three.value, three.n) == (t.value, 3) and three.low == max(t.low, 0.0) and three.high == min(t.high, 1.0)
    assert 0.0 <= three.low < three.value < three.high <= 1.0  # kept inside the objective's bounds
    five = replicate_estimate(parts, "clean_accuracy", resamples=500)
    assert SEED_BOOTSTRAP_MIN == 5 and five == bootstrap_seeds(columns, lambda v: float(v[:, 0].mean()), resamples=500)
