"""Two models' test reports compared example by example and seed by seed (no pandas, so that
a GPU machine with only the training stack can run it: bench/study_pairs.py).

`paired_comparison(member, baseline, name, mode)` pairs seed k of one with seed k of the
other (both trained with the k-th seed and scored on the same examples), and bootstraps the
difference of the metric's statistic, averaged over the paired seeds, on jointly resampled
examples (the same resample in every seed). `analysis.compare.paired_test` builds its table
from it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nsde.metrics.objectives import objective, objective_samples
from nsde.metrics.stats import mcnemar, paired_difference

__all__ = ["paired_comparison", "paired_samples"]


def paired_samples(a_reports: list[dict], b_reports: list[dict], name: str, names: tuple[str, str]):
    """Metric `name`'s per-example values of two models' paired seeds, side by side.

    Returns (a, b, stat, width, n): `a` and `b` hold the seeds' value columns stacked
    horizontally (`width` columns a seed, rows = the `n` examples, the same in every seed),
    `stat` is the metric's statistic of one seed's columns. Raises ValueError when the two
    models' examples differ, or one seed's examples differ from seed 0's.
    """
    a_cols, b_cols, stat, reference = [], [], None, None
    for k, (a_report, b_report) in enumerate(zip(a_reports, b_reports)):
        ia, va, stat = objective_samples(a_report["per_example"], name)
        ib, vb, _ = objective_samples(b_report["per_example"], name)
        if not np.array_equal(ia, ib):
            raise ValueError(f"the test reports of trial {names[0]} and trial {names[1]} are not paired: "
                             f"{name} of seed {k} covers different examples ({len(ia)} vs {len(ib)}, "
                             f"{int(np.sum(~np.isin(ia, ib)))} of {names[0]}'s not in {names[1]}'s); were they "
                             f"scored with the same evaluation settings?")
        if reference is None:
            reference = ia
        elif not np.array_equal(ia, reference):
            raise ValueError(f"the test reports of trial {names[0]} and trial {names[1]} cover other examples "
                             f"in seed {k} than in seed 0 ({name}): the seeds were scored with other settings")
        a_cols.append(va)
        b_cols.append(vb)
    return np.hstack(a_cols), np.hstack(b_cols), stat, a_cols[0].shape[1], len(reference)


def paired_comparison(a_reports: list[dict], b_reports: list[dict], name: str, mode: str, *,
                      names: tuple[str, str] = ("member", "baseline"), resamples: int = 2000,
                      seed: int = 0) -> dict[str, Any]:
    """Metric `name` (direction `mode`) of `a_reports` against `b_reports` (one report a seed,
    seed k against seed k, as many seeds as both have), example by example: what it says is
    about *these trained models* (the examples resampled, the seeds as they are); the seeds'
    own spread is `analysis.method`'s.

    Returns {"member", "baseline" (the metric, mean over the paired seeds), "member_seeds",
    "baseline_seeds" (the metric of each seed), "difference" (member - baseline, negated for a
    minimised metric: positive = the member is better), "low", "high" (paired-bootstrap 95 %
    interval), "p" (two-sided bootstrap; when no resample crossed 0 it is the bound 1 /
    resamples and "p_bound" is True), "mcnemar_p_seeds" (a binary objective, clean and
    per-location accuracy: the exact McNemar test of each seed's pair; [] otherwise),
    "mcnemar_p" (that test for one seed; NaN for several, whose combination is
    `analysis.compare`'s), "n" (paired examples), "seeds"}.
    """
    seeds = min(len(a_reports), len(b_reports))
    a_all, b_all, stat, width, n = paired_samples(a_reports[:seeds], b_reports[:seeds], name, names)

    def per_seed(values: np.ndarray) -> list[float]:
        return [float(stat(values[:, k * width:(k + 1) * width])) for k in range(seeds)]

    def over_seeds(values: np.ndarray) -> float:
        return float(np.mean(per_seed(values)))

    member_seeds, baseline_seeds = per_seed(a_all), per_seed(b_all)
    est, p = paired_difference(a_all, b_all, over_seeds, resamples=resamples, seed=seed)
    sign = 1.0 if mode == "max" else -1.0
    low, high = (est.low, est.high) if sign > 0 else (-est.high, -est.low)
    mcnemar_seeds = []
    if objective(name).binary:
        mcnemar_seeds = [mcnemar(a_all[:, k * width] > 0.5, b_all[:, k * width] > 0.5) for k in range(seeds)]
    bound = p == 0.0  # no resample crossed 0: the p-value is below what `resamples` resolve
    return {"member": float(np.mean(member_seeds)), "baseline": float(np.mean(baseline_seeds)),
            "member_seeds": member_seeds, "baseline_seeds": baseline_seeds, "difference": sign * est.value, "low": low, "high": high,
            "p": 1.0 / resamples if bound else p, "p_bound": bound, "mcnemar_p_seeds": mcnemar_seeds,
            "mcnemar_p": mcnemar_seeds[0] if len(mcnemar_seeds) == 1 else math.nan, "n": n, "seeds": seeds}
