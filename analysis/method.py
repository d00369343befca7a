"""Evidence about a training method: comparisons that count the training seed, not only the examples.

"Does training with this noise help?" is a claim about a training *method*. Its uncertainty has
two parts: which examples were scored, and which seed trained each model. The paired bootstrap
of `analysis.compare.paired_test` resamples the examples only, so its interval describes *these
trained models*. Here the unit of replication is the seed: each trained model's statistic on
the test split is one observation, and the configurations (arms) are compared in the
seed-blocked linear model

    value ~ arm + seed        (statsmodels OLS: a randomized complete block design)

with the residual variance pooled over every arm of the table. An arm's contrast with the
baseline is the mean over the shared seeds of (arm - baseline); its standard error comes from the
pooled residual, and its 95 % interval and p-value from Student's t on the residual's degrees
of freedom: exact under normal residuals at any number of seeds, where a bootstrap over 3-4
seeds under-covers. The seed is a fixed block rather than the random intercept of `metric ~ arm
+ (1 | seed)`: for the contrasts of a balanced design the two give the same estimate and
standard error (`tests/analysis/test_method.py` checks it against statsmodels' `mixedlm`), and a
block needs no seed variance estimated from a handful of seeds.

What the interval assumes: an arm's effect on the statistic is the same whatever the seed, up
to a seed-to-seed scatter that is the same for every arm (the pooled residual), and the arm's
effect is the same on every example up to each model's own noise, which the residual holds
too. It is tested against simulated studies whose seed and example variances are known.

`minimal_detectable_effect` and `seeds_needed` (power of that t-test, from the measured
residual) say how small a difference a design can detect; `factor_tests` tests each design
factor (shape, H, sigma, ...) in a seed-blocked factorial ANOVA.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["METHOD_COLUMNS", "METHOD_NOTE", "blocked_contrasts", "contrast_table", "factor_tests", "method_level",
           "minimal_detectable_effect", "seed_values", "seeds_needed", "statistic_of"]

METHOD_NOTE = ("the method: seed-blocked linear model value ~ arm + seed, residual pooled over the arms, "
               "Student's t on its degrees of freedom")
_COLUMNS = ["difference", "se", "df", "low", "high", "p", "seeds", "sigma"]
# `method_level`'s columns, beside the example-level ones of `analysis.compare.paired_test`
METHOD_COLUMNS = ["method_difference", "method_low", "method_high", "method_p", "method_df", "sigma", "mde"]


def statistic_of(report: Mapping[str, Any], name: str) -> float:
    """Objective `name`'s statistic (`nsde.metrics.objective`) on one report (`EvalReport.to_dict()`)."""
    from nsde.metrics import objective_samples

    _, values, stat = objective_samples(report["per_example"], name)
    return float(stat(values))


def seed_values(record: Mapping[str, Any], name: str) -> dict[Any, float]:
    """Seed -> objective `name`'s statistic on that seed's report, for a test record
    ({"seeds": [...], "reports": [EvalReport.to_dict(), ...]})."""
    return {seed: statistic_of(report, name) for seed, report in zip(record["seeds"], record["reports"])}


def _design(values: pd.DataFrame, baseline: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(y, X, arms): the intercept, one dummy per arm other than the baseline, one per seed but the first."""
    arms = [a for a in dict.fromkeys(values["arm"]) if a != baseline]
    seeds = list(dict.fromkeys(values["seed"]))
    columns = [np.ones(len(values))]
    columns += [(values["arm"] == a).to_numpy(float) for a in arms]
    columns += [(values["seed"] == s).to_numpy(float) for s in seeds[1:]]
    return values["value"].to_numpy(float), np.column_stack(columns), arms


def blocked_contrasts(values: pd.DataFrame, baseline: str, *, direction: str = "max",
                      alpha: float = 0.05) -> pd.DataFrame:
    """Every arm against `baseline` in the seed-blocked linear model (module docstring).

    Args:
        values: one row a trained model: columns `arm`, `seed`, `value` (NaN rows left out).
        baseline: the arm the others are compared with.
        direction: "max" or "min": the difference is signed so that positive is better.

    Returns:
        One row an arm (index `arm`, the baseline left out, and arms without a seed in common
        with it): `difference` (arm - baseline), `se`, `df` (the residual's), the (1 - alpha)
        t-interval `low` / `high`, the two-sided `p`, `seeds` (shared with the baseline) and
        `sigma` (the pooled residual's standard deviation). With no residual degrees of freedom
        (one seed) `se`, the interval and `p` are NaN.
    """
    import statsmodels.api as sm

    values = values.dropna(subset=["value"])
    base_seeds = set(values.loc[values["arm"] == baseline, "seed"])
    shared = {a: len(base_seeds & set(part["seed"])) for a, part in values.groupby("arm", sort=False)}
    values = values[values["arm"].map(shared) > 0].reset_index(drop=True)
    if values.empty or values["arm"].nunique() < 2:
        return pd.DataFrame(columns=_COLUMNS).rename_axis("arm")
    y, X, arms = _design(values, baseline)
    fit = sm.OLS(y, X).fit()
    sign = 1.0 if direction == "max" else -1.0
    df_resid = float(fit.df_resid)
    rows = []
    for j, arm in enumerate(arms, start=1):
        d = float(fit.params[j])
        if df_resid > 0:
            se = float(fit.bse[j])
            half = float(stats.t.ppf(1 - alpha / 2, df_resid)) * se
            p = float(2 * stats.t.sf(abs(d) / se, df_resid)) if se > 0 else (0.0 if d != 0 else math.nan)
        else:
            se = half = p = math.nan
        low, high = sorted((sign * (d - half), sign * (d + half)))
        rows.append({"arm": arm, "difference": sign * d, "se": se, "df": df_resid, "low": low, "high": high, "p": p,
                     "seeds": shared[arm], "sigma": math.sqrt(fit.scale) if df_resid > 0 else math.nan})
    return pd.DataFrame(rows, columns=["arm", *_COLUMNS]).set_index("arm")


def contrast_table(values: pd.DataFrame, baseline: str, *, direction: str = "max", alpha: float = 0.05,
                   comparisons: int | None = None) -> pd.DataFrame:
    """`blocked_contrasts` with the columns named for the method level (`method_difference`,
    `method_se`, `method_df`, `method_low`, `method_high`, `method_p`; `sigma`, `seeds`) and each
    arm's minimal detectable effect `mde` at level alpha / comparisons (default: the arms compared)."""
    table = blocked_contrasts(values, baseline, direction=direction, alpha=alpha)
    m = comparisons or len(table)
    table["mde"] = [minimal_detectable_effect(r.sigma, r.seeds, df=r.df, alpha=alpha, comparisons=m)
                    for r in table.itertuples()]
    return table.rename(columns={c: f"method_{c}" for c in ("difference", "se", "df", "low", "high", "p")})


def method_level(records: Mapping[str, Mapping[str, Any]], baseline: str, objectives: Sequence[tuple[str, str]], *,
                 alpha: float = 0.05, comparisons: int | None = None) -> pd.DataFrame:
    """Every arm against `baseline` at the method level, per objective (`blocked_contrasts` on
    each trained model's statistic, the residual pooled over all of `records`' arms), with the
    minimal detectable effect of the design at 80 % power.

    Args:
        records: arm -> its test record ({"seeds", "reports"}: one report a training seed).
        objectives: (name, direction) pairs; names without per-example values are left out.
        comparisons: the family size of the correction the p-values will get (the minimal
            detectable effect is at level alpha / comparisons); default: the arms compared.

    Returns:
        One row an (arm, objective): `METHOD_COLUMNS` and `seeds`.
    """
    from nsde.metrics import has_samples

    parts = []
    for name, mode in objectives:
        if not has_samples(name):
            continue
        values = pd.DataFrame([{"arm": arm, "seed": seed, "value": value} for arm, record in records.items()
                               for seed, value in seed_values(record, name).items()], columns=["arm", "seed", "value"])
        table = contrast_table(values, baseline, direction=mode, alpha=alpha, comparisons=comparisons)
        parts.append(table[[*METHOD_COLUMNS, "seeds"]].assign(objective=name).reset_index())
    if not parts:
        return pd.DataFrame(columns=["arm", "objective", *METHOD_COLUMNS, "seeds"]).set_index(["arm", "objective"])
    return pd.concat(parts, ignore_index=True).set_index(["arm", "objective"])


_QUANTILES = (np.arange(4096) + 0.5) / 4096  # the midpoint rule on the chi-square's quantile scale


def _power(effect: float, se: float, df: float, level: float) -> float:
    """Power of the two-sided t-test at `level` for a true difference `effect` with standard error
    `se`: scipy's noncentral t, or where it returns NaN (the large shifts of few seeds at strict
    levels) P(|Z + effect / se| > c sqrt(V / df)), Z normal, V chi-square on df, averaged over
    V's quantiles (a midpoint rule in probability: within 1e-5 of adaptive quadrature, 20x faster)."""
    critical = float(stats.t.ppf(1 - level / 2, df))
    shift = effect / se
    power = float(stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift))
    if math.isfinite(power):
        return power
    bar = critical * np.sqrt(stats.chi2.ppf(_QUANTILES, df) / df)
    return float(np.mean(stats.norm.sf(bar - shift) + stats.norm.cdf(-bar - shift)))


def minimal_detectable_effect(sigma: float, seeds: int, *, arms: int = 2, df: float | None = None,
                              alpha: float = 0.05, comparisons: int = 1, power: float = 0.8) -> float:
    """The smallest true difference between an arm and the baseline that the seed-blocked t-test
    (`blocked_contrasts`) detects with probability `power`, at level alpha / comparisons (Holm's
    first step over that many comparisons, which is Bonferroni's).

    Args:
        sigma: the residual standard deviation (`blocked_contrasts`' `sigma`, per seed).
        seeds: seeds per arm (the baseline's shared); the contrast's standard error is
            sigma * sqrt(2 / seeds).
        arms: arms in the design, the baseline included; df defaults to the residual's of a
            complete design, (arms - 1) * (seeds - 1).

    Returns NaN when the design has no residual degrees of freedom or sigma is not finite.
    """
    from scipy.optimize import brentq

    df = (arms - 1) * (seeds - 1) if df is None else df
    if not df > 0 or not math.isfinite(sigma) or sigma < 0:
        return math.nan
    if sigma == 0:
        return 0.0
    se = sigma * math.sqrt(2.0 / seeds)
    level = alpha / comparisons
    high = se
    while _power(high, se, df, level) < power:  # power rises with the effect: bracket the root
        high *= 2
    return float(brentq(lambda effect: _power(effect, se, df, level) - power, 0.0, high, xtol=1e-12 * high))


def seeds_needed(sigma: float, effect: float, *, arms: int = 2, alpha: float = 0.05, comparisons: int = 1,
                 power: float = 0.8, max_seeds: int = 1000) -> int | None:
    """The fewest seeds per arm at which `minimal_detectable_effect` is at most `effect` (it
    falls as seeds are added: a bisection); None if not even `max_seeds` do."""
    def detects(seeds: int) -> bool:
        mde = minimal_detectable_effect(sigma, seeds, arms=arms, alpha=alpha, comparisons=comparisons, power=power)
        return mde <= effect

    if not detects(max_seeds):
        return None
    low, high = 1, max_seeds  # detects(high); not detects(low): one seed has no degrees of freedom
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if detects(mid) else (mid, high)
    return high


def factor_tests(frame: pd.DataFrame, factors: Sequence[str], *, value: str = "value",
                 block: str = "seed") -> pd.DataFrame:
    """Each design factor (and their interactions) in the seed-blocked factorial ANOVA
    `value ~ f1 * f2 * ... + block` (type II sums of squares, statsmodels' `anova_lm`).

    Args:
        frame: one row a trained model, with the factor columns, `block` and `value` (rows with
            a NaN value left out); every factor is taken as categorical.

    Returns:
        One row a term (a factor, an interaction "f1:f2", the block): `F`, `df` (the term's),
        `df_resid`, `p`. Empty when the data hold no residual degrees of freedom.
    """
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    names = {f"f{i}": f for i, f in enumerate(factors)}
    data = frame[[*factors, block, value]].dropna(subset=[value]).copy()
    data.columns = [*names, "block", "value"]
    for column in (*names, "block"):
        data[column] = data[column].astype(str)
    formula = "value ~ " + " * ".join(f"C({n})" for n in names) + " + C(block)"
    fit = smf.ols(formula, data).fit()
    if not fit.df_resid > 0:
        return pd.DataFrame(columns=["F", "df", "df_resid", "p"]).rename_axis("term")
    table = anova_lm(fit, typ=2).drop(index="Residual")

    def term(label: str) -> str:
        parts = [p.removeprefix("C(").removesuffix(")") for p in label.split(":")]
        return ":".join(block if p == "block" else names[p] for p in parts)

    return pd.DataFrame({"F": table["F"].to_numpy(), "df": table["df"].to_numpy(), "df_resid": fit.df_resid,
                         "p": table["PR(>F)"].to_numpy()}, index=pd.Index([term(t) for t in table.index], name="term"))
