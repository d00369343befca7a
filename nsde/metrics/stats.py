"""Small statistics for the metrics: binomial intervals, means with intervals, AUROC."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata
from scipy.stats import t as student_t

__all__ = ["Estimate", "proportion", "mean_estimate", "auroc"]

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    """A number with its sample size and 95 % interval [low, high]."""

    value: float
    n: int
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}] (n={self.n})"


def proportion(successes: np.ndarray | list[bool]) -> Estimate:
    """Fraction of successes with the Wilson score 95 % interval (sound at 0, 1 and small n)."""
    s = np.asarray(successes, dtype=bool)
    n = int(s.size)
    if n == 0:
        return Estimate(float("nan"), 0, float("nan"), float("nan"))
    p = float(s.mean())
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return Estimate(p, n, max(0.0, centre - half), min(1.0, centre + half))


def mean_estimate(values: np.ndarray | list[float]) -> Estimate:
    """Mean with a Student-t 95 % interval (nan interval for n < 2)."""
    v = np.asarray(values, dtype=np.float64)
    n = int(v.size)
    if n == 0:
        return Estimate(float("nan"), 0, float("nan"), float("nan"))
    m = float(v.mean())
    if n < 2:
        return Estimate(m, n, float("nan"), float("nan"))
    half = float(student_t.ppf(0.975, n - 1)) * float(v.std(ddof=1)) / math.sqrt(n)
    return Estimate(m, n, m - half, m + half)


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for the `positive` labels (Mann-Whitney, ties count 1/2).

    nan when either class is empty.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks over ties
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
