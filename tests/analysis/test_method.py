"""analysis.method: the method-level comparison, tested against worked examples, statsmodels'
own mixed model and power analysis, simulated studies whose seed and example variances are
known, and the independent re-analysis of the stored 45-trial study."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.method import blocked_contrasts, factor_tests, minimal_detectable_effect, seeds_needed
from analysis.study import BASELINE, factor_table, method_table, power_table, reanalysis, record_values
from nsde.metrics.stats import paired_difference, seed_mean

RECORD = Path(__file__).parents[2] / "bench" / "results" / "study-cpu.json"


def _frame(table: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"arm": arm, "seed": s, "value": v} for arm, values in table.items()
                         for s, v in enumerate(values)])


def test_a_blocked_contrast_is_the_mean_paired_difference_with_the_pooled_residual():
    table = {"base": [0.60, 0.70, 0.65, 0.62], "b": [0.66, 0.74, 0.69, 0.70], "c": [0.58, 0.71, 0.60, 0.61]}
    out = blocked_contrasts(_frame(table), "base")
    y = np.array(list(table.values()))  # (arms, seeds)
    # two-way ANOVA by hand: residual = y - arm mean - seed mean + grand mean, df = (a-1)(s-1)
    resid = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + y.mean()
    df = (y.shape[0] - 1) * (y.shape[1] - 1)
    sigma = math.sqrt((resid ** 2).sum() / df)
    se = sigma * math.sqrt(2 / y.shape[1])
    for j, arm in enumerate(["b", "c"], start=1):
        d = (y[j] - y[0]).mean()
        row = out.loc[arm]
        assert row["difference"] == pytest.approx(d) and row["se"] == pytest.approx(se) and row["df"] == df
        assert row["p"] == pytest.approx(2 * stats.t.sf(abs(d) / se, df))
        assert row["high"] - row["low"] == pytest.approx(2 * stats.t.ppf(0.975, df) * se)
    assert out.loc["b", "sigma"] == pytest.approx(sigma) and set(out.index) == {"b", "c"}
    # a minimised metric: the sign flips, so that positive is better; the interval flips with it
    flipped = blocked_contrasts(_frame(table), "base", direction="min").loc["b"]
    assert flipped["difference"] == pytest.approx(-out.loc["b", "difference"])
    assert flipped["low"] == pytest.approx(-out.loc["b", "high"]) and flipped["p"] == pytest.approx(out.loc["b", "p"])


def test_the_block_model_equals_the_random_intercept_mixed_model_on_a_balanced_design():
    import statsmodels.formula.api as smf
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    rng = np.random.default_rng(4)
    seed_effect = rng.normal(0, 0.05, 5)  # a clear seed effect, so that REML's seed variance is positive
    table = {arm: list(0.6 + shift + seed_effect + rng.normal(0, 0.01, 5))
             for arm, shift in (("base", 0.0), ("b", 0.03), ("c", -0.02))}
    ours = blocked_contrasts(_frame(table), "base")
    with warnings.catch_warnings():  # "may be on the boundary": its seed variance here is 0.0043, well inside
        warnings.simplefilter("ignore", ConvergenceWarning)
        mixed = smf.mixedlm("value ~ C(arm, Treatment('base'))", _frame(table), groups="seed").fit(reml=True)
    assert mixed.cov_re.iloc[0, 0] > 0.001
    for arm in ("b", "c"):
        name = f"C(arm, Treatment('base'))[T.{arm}]"
        assert ours.loc[arm, "difference"] == pytest.approx(mixed.fe_params[name], abs=1e-10)
        assert ours.loc[arm, "se"] == pytest.approx(mixed.bse_fe[name], rel=1e-3)


def test_one_seed_has_no_method_level_interval_and_unshared_arms_are_left_out():
    one = blocked_contrasts(_frame({"base": [0.6], "b": [0.7]}), "base")
    assert one.loc["b", "difference"] == pytest.approx(0.1) and math.isnan(one.loc["b", "p"])
    values = _frame({"base": [0.6, 0.7], "b": [0.7, 0.8]})
    values = pd.concat([values, pd.DataFrame([{"arm": "c", "seed": 9, "value": 0.5}])])
    assert list(blocked_contrasts(values, "base").index) == ["b"]


def _study(rng, *, delta: float, seed_sd: float, n: int, seeds: int, arms: int = 4):
    """One simulated study: per (arm, seed) a trained model whose accuracy is the arm's plus a
    seed-block effect plus its own seed scatter (`seed_sd`), scored on n fresh test examples of
    known difficulty; arm 1 is better than the baseline by `delta`, the others equal to it.
    Returns the per-example correctness, (arms, seeds, n)."""
    difficulty = rng.uniform(-0.25, 0.25, n)  # the test set's own draw, shared by every model
    block = rng.normal(0, seed_sd, seeds)
    quality = 0.62 + block[None, :] + rng.normal(0, seed_sd, (arms, seeds))
    quality[1] += delta
    p = np.clip(quality[:, :, None] + difficulty[None, None, :], 0, 1)
    return rng.random(p.shape) < p


def _method_covers(correct: np.ndarray, delta: float) -> bool:
    acc = correct.mean(axis=2)
    values = pd.DataFrame([{"arm": a, "seed": s, "value": acc[a, s]} for a in range(acc.shape[0])
                           for s in range(acc.shape[1])])
    row = blocked_contrasts(values, 0).loc[1]
    return row["low"] <= delta <= row["high"]


def test_the_method_interval_covers_the_true_difference_in_95_percent_of_simulated_studies():
    rng = np.random.default_rng(2026)
    for seed_sd, n, seeds in ((0.03, 200, 3), (0.0, 300, 3), (0.02, 100, 6)):
        covered = [_method_covers(_study(rng, delta=0.04, seed_sd=seed_sd, n=n, seeds=seeds), 0.04)
                   for _ in range(1000)]
        assert 0.93 <= np.mean(covered) <= 0.97, (seed_sd, n, seeds, np.mean(covered))


def test_the_examples_only_interval_under_covers_when_the_seeds_vary():
    """The paired bootstrap over examples describes the trained models: when the seed scatter
    dominates, it misses the method's difference far more often than 5 % of the time."""
    rng = np.random.default_rng(7)
    hits = {"examples": [], "method": []}
    for _ in range(200):
        correct = _study(rng, delta=0.04, seed_sd=0.04, n=300, seeds=3, arms=2).astype(float)
        a, b = correct[1].T, correct[0].T  # (n, seeds): seed k of the arm against seed k of the baseline
        est, _ = paired_difference(a, b, lambda v: float(v.mean()), resamples=200)
        hits["examples"].append(est.low <= 0.04 <= est.high)
        hits["method"].append(_method_covers(correct, 0.04))
    assert np.mean(hits["examples"]) < 0.75 and np.mean(hits["method"]) > 0.9


def test_the_minimal_detectable_effect_is_statsmodels_paired_t_power():
    from statsmodels.stats.power import TTestPower

    sigma = 0.02
    for seeds in (3, 5, 12):
        ours = minimal_detectable_effect(sigma, seeds)
        # two arms: the paired t-test of the per-seed differences, whose sd is sigma * sqrt(2)
        d = TTestPower().solve_power(effect_size=None, nobs=seeds, alpha=0.05, power=0.8, alternative="two-sided")
        assert ours / (sigma * math.sqrt(2)) == pytest.approx(d, rel=1e-5)
    strict = minimal_detectable_effect(sigma, 12, comparisons=14)  # Holm's first step over 14 cells
    power = TTestPower().power(effect_size=strict / (sigma * math.sqrt(2)), nobs=12, alpha=0.05 / 14,
                               alternative="two-sided")
    assert power == pytest.approx(0.8, abs=1e-5)
    assert math.isnan(minimal_detectable_effect(sigma, 1)) and minimal_detectable_effect(0.0, 3) == 0.0


def test_the_minimal_detectable_effect_of_three_seeds_at_a_strict_level_has_its_power_in_simulation():
    """Three seeds at alpha 0.05 / 14: statsmodels' and scipy's noncentral t give no number
    there; 20,000 simulated paired t-tests at the minimal detectable effect reject 80 % of the time."""
    sigma, seeds, level = 0.02, 3, 0.05 / 14
    effect = minimal_detectable_effect(sigma, seeds, comparisons=14)
    rng = np.random.default_rng(5)
    diffs = effect + rng.normal(0, sigma * math.sqrt(2), (20000, seeds))
    t = diffs.mean(1) / (diffs.std(1, ddof=1) / math.sqrt(seeds))
    rejected = np.abs(t) > stats.t.ppf(1 - level / 2, seeds - 1)
    assert rejected.mean() == pytest.approx(0.8, abs=0.01)


def test_seeds_needed_is_the_fewest_seeds_whose_design_detects_the_effect():
    n = seeds_needed(0.02, 0.03, arms=15, comparisons=14)
    assert minimal_detectable_effect(0.02, n, arms=15, comparisons=14) <= 0.03
    assert minimal_detectable_effect(0.02, n - 1, arms=15, comparisons=14) > 0.03
    assert seeds_needed(0.02, 1e-6, max_seeds=20) is None


def test_a_factor_without_an_effect_is_not_significant_and_one_with_an_effect_is():
    rng = np.random.default_rng(0)
    rows = [{"h": h, "shape": shape, "seed": s, "value": 0.6 + (0.05 if h == 0.9 else 0.0) + 0.02 * s
             + rng.normal(0, 0.01)} for h in (0.1, 0.5, 0.9) for shape in ("fbm", "stationary") for s in range(4)]
    table = factor_tests(pd.DataFrame(rows), ["shape", "h"])
    assert table.loc["h", "p"] < 1e-6 and table.loc["shape", "p"] > 0.01 and table.loc["seed", "p"] < 1e-6
    assert set(table.index) == {"shape", "h", "shape:h", "seed"} and (table["df_resid"] == 15).all()


def test_the_stored_study_gives_the_numbers_of_the_independent_reanalysis():
    """bench/results/study-cpu.json re-analysed from its per-trial numbers: the independent
    re-analysis (numpy/scipy, the method-level issue) found a seed residual of 28 df, minimal
    detectable effects of 7.7 / 6.9 / 7.3 points and 0.18 AUROC, Holm p 1.0 for the SNR gain of
    stationary H 0.1 sigma 0.1 and 0.25 for the APGD gain of stationary H 0.5 sigma 0.1, and an
    H effect on clean accuracy (p 0.008) and SNR (p 0.0009) but not on the sweep (0.76) or APGD (0.90)."""
    rec = json.loads(RECORD.read_text())
    values = record_values(rec)
    metrics = [tuple(m) for m in rec["design"]["metrics"]]
    power = power_table(values, metrics)
    assert (power["df"] == 28).all() and (power["seeds"] == 3).all() and (power["cells"] == 14).all()
    for name, mde in (("clean_accuracy", 0.077), ("snr_accuracy", 0.069), ("apgd_accuracy", 0.073),
                      ("abc_auroc", 0.18)):
        assert power.loc[name, "mde"] == pytest.approx(mde, abs=0.005)
    method = method_table(values, metrics)
    assert method.loc[("stationary H=0.1 sigma=0.1", "snr_accuracy"), "method_p_holm"] == pytest.approx(1.0)
    assert method.loc[("stationary H=0.5 sigma=0.1", "apgd_accuracy"), "method_p_holm"] == pytest.approx(0.25, abs=0.01)
    # the clean cost of sigma 0.3 survives in every one of its 7 cells
    sigma3 = [c for c in method.index.get_level_values("cell").unique() if c.endswith("sigma=0.3")]
    assert len(sigma3) == 7 and all(method.loc[(c, "clean_accuracy"), "significant"] for c in sigma3)
    factors = factor_table(values, metrics).loc["H-shape cells"]
    for name, p in (("clean_accuracy", 0.008), ("snr_accuracy", 0.0009), ("sweep_area", 0.76),
                    ("apgd_accuracy", 0.90)):
        assert factors.loc[(name, "hurst"), "p"] == pytest.approx(p, rel=0.05, abs=1e-4)
    again = reanalysis(rec)  # what `python -m analysis.study --from-record` writes: the same numbers
    assert {(r["cell"], r["metric"]): r["method_p_holm"] for r in again["method"]} == pytest.approx(
        method["method_p_holm"].to_dict(), abs=1e-9) and BASELINE not in {r["cell"] for r in again["method"]}


def test_a_mean_over_few_seeds_covers_the_methods_mean_accuracy():
    """seed_mean (2-4 seeds): Student's t on the seeds' spread plus what the models share by
    being scored on the same examples; over simulated studies it covers the population mean."""
    rng = np.random.default_rng(11)
    covered = []
    for _ in range(300):
        correct = _study(rng, delta=0.0, seed_sd=0.02, n=150, seeds=3, arms=2)[0].astype(float)  # (seeds, n)
        est = seed_mean(list(correct), np.mean, resamples=200)
        covered.append(est.low <= 0.62 <= est.high)
    assert 0.92 <= np.mean(covered) <= 0.99
