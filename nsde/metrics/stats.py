"""Small statistics for the metrics: bounded intervals, paired comparisons, AUROC.

Every interval here stays inside the range of its quantity: Wilson for a single
proportion, the percentile bootstrap (resampling examples, seeded) for means of bounded
per-example values and for statistics such as the AUROC, and a two-level bootstrap
(seeds, then examples within each seed) for numbers replicated over training seeds.
Comparisons with a baseline are paired (the same examples): `paired_difference` bootstraps
the difference of a statistic on jointly resampled examples, `mcnemar` tests two
classifiers' per-example correctness exactly. All of these resample or count examples: about
several training seeds of a method they describe the trained models; `seed_mean` (a few seeds)
and `analysis.method` (comparisons of methods) count the seeds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest, rankdata
from scipy.stats import t as student_t

__all__ = [
    "Estimate",
    "auroc",
    "bootstrap",
    "bootstrap_mean",
    "bootstrap_seeds",
    "holm",
    "mcnemar",
    "mean_estimate",
    "paired_difference",
    "proportion",
    "seed_mean",
]

Z95 = 1.959963984540054
RESAMPLES = 2000  # bootstrap resamples: the 2.5 % / 97.5 % percentiles move by < 0.005 on n = 64 at this count


@dataclass(frozen=True)
class Estimate:
    """A number with its sample size and 95 % interval [low, high]."""

    value: float
    n: int
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}] (n={self.n})"


NAN_ESTIMATE = Estimate(float("nan"), 0, float("nan"), float("nan"))


def proportion(successes: np.ndarray | list[bool]) -> Estimate:
    """Fraction of successes with the Wilson score 95 % interval (sound at 0, 1 and small n)."""
    s = np.asarray(successes, dtype=bool)
    n = int(s.size)
    if n == 0:
        return NAN_ESTIMATE
    p = float(s.mean())
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return Estimate(p, n, max(0.0, centre - half), min(1.0, centre + half))


def mean_estimate(values: np.ndarray | list[float]) -> Estimate:
    """Mean with a Student-t 95 % interval (nan interval for n < 2), for unbounded quantities."""
    v = np.asarray(values, dtype=np.float64)
    n = int(v.size)
    if n == 0:
        return NAN_ESTIMATE
    m = float(v.mean())
    if n < 2:
        return Estimate(m, n, float("nan"), float("nan"))
    half = float(student_t.ppf(0.975, n - 1)) * float(v.std(ddof=1)) / math.sqrt(n)
    return Estimate(m, n, m - half, m + half)


def _percentiles(samples: np.ndarray, value: float, n: int) -> Estimate:
    samples = samples[np.isfinite(samples)]
    if not math.isfinite(value) or samples.size == 0:
        return Estimate(value, n, float("nan"), float("nan"))
    low, high = np.percentile(samples, [2.5, 97.5])
    return Estimate(value, n, float(low), float(high))


def bootstrap(statistic: Callable[[np.ndarray], float], n: int, *, resamples: int = RESAMPLES,
              seed: int = 0) -> Estimate:
    """Percentile bootstrap of `statistic(idx)` over n examples resampled with replacement.

    `statistic` takes an index array into the examples (so several arrays, e.g. two models'
    results on the same examples, are resampled jointly: a paired bootstrap). The value is
    `statistic(arange(n))`. Resamples where the statistic is undefined (nan, e.g. an AUROC of
    a resample without negatives) are left out of the percentiles. A statistic bounded in
    [a, b] gets an interval inside [a, b].
    """
    if n == 0:
        return NAN_ESTIMATE
    value = float(statistic(np.arange(n)))
    return _percentiles(_resampled(statistic, n, resamples, [seed, 101]), value, n)


def _resampled(statistic: Callable[[np.ndarray], float], n: int, resamples: int, seed: list[int]) -> np.ndarray:
    """`statistic(idx)` on `resamples` index arrays drawn with replacement from range(n)."""
    rng = np.random.default_rng(seed)
    return np.array([statistic(rng.integers(0, n, n)) for _ in range(resamples)], dtype=np.float64)


def bootstrap_mean(values: np.ndarray | Sequence[float], *, resamples: int = RESAMPLES, seed: int = 0) -> Estimate:
    """Mean of per-example values with a percentile-bootstrap 95 % interval (vectorised)."""
    v = np.asarray(values, dtype=np.float64)
    n = int(v.size)
    if n == 0:
        return NAN_ESTIMATE
    rng = np.random.default_rng([seed, 101])
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // n)  # bounded memory for large n
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        means[start:stop] = v[rng.integers(0, n, (stop - start, n))].mean(1)
    return _percentiles(means, float(v.mean()), n)


def bootstrap_seeds(per_seed: Sequence[np.ndarray], statistic: Callable[[np.ndarray], float] = np.mean, *,
                    resamples: int = RESAMPLES, seed: int = 0) -> Estimate:
    """Mean over training seeds of `statistic(per-example values)`, with a two-level bootstrap.

    Each resample draws seeds with replacement, then examples with replacement within each
    drawn seed, so the interval carries both the seed-to-seed and the example variation.
    With one seed it is the example bootstrap. Rows are examples (an (n, c) array per seed
    for a statistic of several columns). `n` of the result is the number of seeds.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in per_seed]
    if not arrays or any(a.size == 0 for a in arrays):
        return NAN_ESTIMATE
    value = float(np.mean([statistic(a) for a in arrays]))
    rng = np.random.default_rng([seed, 103])
    k = len(arrays)
    samples = np.empty(resamples)
    for r in range(resamples):
        picks = rng.integers(0, k, k)
        samples[r] = np.mean([statistic(arrays[i][rng.integers(0, len(arrays[i]), len(arrays[i]))]) for i in picks])
    return _percentiles(samples, value, k)


def seed_mean(per_seed: Sequence[np.ndarray], statistic: Callable[[np.ndarray], float] = np.mean, *,
              resamples: int = RESAMPLES, seed: int = 0) -> Estimate:
    """Mean over a few training seeds (2 to 4, where a bootstrap over seeds under-covers) of
    `statistic(per-example values)`, with a Student-t interval on k - 1 degrees of freedom.

    Its variance has two parts: the seeds' spread (the sample variance s^2 of the k statistics,
    which holds the seed effect and each model's own example noise), and what the k models
    share because they were scored on the same examples (the test set's own draw). The shared
    part is the covariance between seeds of the statistics when the examples are resampled
    jointly (the same resample in every seed): with v_joint the variance of their mean and v
    the mean of their variances, shared = (k v_joint - v) / (k - 1). The standard error is
    sqrt(s^2 / k + shared). Seeds scored on other examples (other lengths) share nothing.
    `n` of the result is k.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in per_seed]
    k = len(arrays)
    if k < 2 or any(a.size == 0 for a in arrays):
        raise ValueError(f"`seed_mean` needs at least 2 seeds, each with examples, but got {k}")
    values = np.array([statistic(a) for a in arrays])
    if not np.isfinite(values).all():
        return Estimate(float(np.mean(values)), k, math.nan, math.nan)
    shared = 0.0
    n = len(arrays[0])
    if all(len(a) == n for a in arrays):
        rng = np.random.default_rng([seed, 109])
        draws = np.empty((resamples, k))
        for r in range(resamples):
            idx = rng.integers(0, n, n)
            draws[r] = [statistic(a[idx]) for a in arrays]
        draws = draws[np.isfinite(draws).all(axis=1)]
        if len(draws) > 1:
            shared = max(0.0, (k * draws.mean(axis=1).var(ddof=1) - draws.var(axis=0, ddof=1).mean()) / (k - 1))
    se = math.sqrt(values.var(ddof=1) / k + shared)
    half = float(student_t.ppf(0.975, k - 1)) * se
    m = float(values.mean())
    return Estimate(m, k, m - half, m + half)


def paired_difference(a: np.ndarray, b: np.ndarray, statistic: Callable[[np.ndarray], float] = np.mean, *,
                      resamples: int = RESAMPLES, seed: int = 0) -> tuple[Estimate, float]:
    """statistic(a) - statistic(b) on the same examples, its paired-bootstrap 95 % interval and a
    two-sided bootstrap p-value for "no difference" (twice the smaller tail mass at 0).

    a and b hold per-example values (rows = examples, the same examples in the same order).
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"paired values need the same examples, but got {a.shape[0]} and {b.shape[0]} rows")
    n = a.shape[0]
    if n == 0:
        return NAN_ESTIMATE, float("nan")
    value = float(statistic(a) - statistic(b))
    diffs = _resampled(lambda idx: statistic(a[idx]) - statistic(b[idx]), n, resamples, [seed, 107])
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size == 0 or not math.isfinite(value):
        return Estimate(value, n, float("nan"), float("nan")), float("nan")
    p = min(1.0, 2 * min(float((diffs <= 0).mean()), float((diffs >= 0).mean())))
    return _percentiles(diffs, value, n), p


def mcnemar(a_correct: np.ndarray, b_correct: np.ndarray) -> float:
    """Exact McNemar p-value (two-sided binomial test on the discordant pairs) for two
    classifiers' correctness on the same examples; 1.0 when they never disagree."""
    a, b = np.asarray(a_correct, dtype=bool), np.asarray(b_correct, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired correctness needs the same examples, but got shapes {a.shape} and {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of p-values for m comparisons (Holm 1979): it controls the
    family-wise error rate (the chance of any false "significant") at the level the adjusted
    p-values are compared with, under any dependence between the tests. NaN stays NaN and
    does not count toward m.

    The k-th smallest p-value (k = 1..m) is multiplied by m - k + 1, made non-decreasing in k
    and capped at 1. Kept here rather than statsmodels' `multipletests(method="holm")`, which it
    equals (tests/nsde/metrics/test_stats.py): nsde runs on machines without statsmodels (the GPU
    image, bench/study_pairs.py).
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        out[i] = running
    return out


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for the `positive` labels (Mann-Whitney, ties count 1/2).

    nan when either class is empty (the AUROC is undefined there).
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks over ties
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
