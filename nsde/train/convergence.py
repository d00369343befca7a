"""Has a run converged? The rule the convergence benchmark applies, and each run's diagnostics.

Two checks, one per run and one across budgets (docs/benchmarks.md, "Convergence"):

- **flat tail** (`diagnose`, per run): the least-squares slope of validation accuracy over
  the last `tail` fraction of the epochs (at least `min_tail_epochs`) is within
  `max_slope` per epoch (0.005 = 0.5 point). Under a schedule that decays the learning rate
  to zero the tail flattens by construction, so this is necessary, not sufficient;
- **doubling** (`budget_rule`, across runs): training twice as long raises an arm's mean
  final validation accuracy by less than `max_doubling_gain` (1 point). An arm's budget is
  the smallest at which both hold; the budget the rule picks is the largest arm's budget, at
  which every arm has stopped learning (an arm that has stopped gaining at B is taken as
  converged at any longer budget: its tail is flat and twice B did not gain).

Why one-sided: a longer cosine schedule can *lower* the final accuracy (the convergence
benchmark's plain ResNet-18 loses 2.2 points from 30 to 60 epochs: it over-fits, its training
loss near zero). That says the shorter budget is past the arm's peak, not short of it; a
two-sided rule would demand ever longer budgets from the arm that over-fits. A loss of at
least `max_doubling_gain` is reported (`past_peak`), so a study at a longer budget says which
arm it charges for over-training.

Why 0.5 point and at least 5 epochs, not the 0.1 point over 3 a first draft used: late in a
cosine schedule the `study` preset's validation accuracy (about 460 examples) still moves
0.4-1.6 points from epoch to epoch around its trend (the convergence benchmark's 15-epoch runs),
so a slope over 3 epochs has a standard error of up to a point per epoch and one over 5 of
0.1-0.5: a 0.1-point threshold could not be met by a run that has converged. The doubling
check, on means over seeds, is where the 1-point resolution comes from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from nsde.rules import Rule, check_fields, ruled

__all__ = ["ConvergenceRule", "diagnose", "convergence_metrics", "budget_rule", "CONVERGENCE_KEYS"]

# the diagnostics every trial records (MLflow metrics, the record's columns)
CONVERGENCE_KEYS = ("val_slope", "best_epoch", "best_val_accuracy", "converged")


@dataclass(frozen=True)
class ConvergenceRule:
    """The two checks' thresholds (module docstring)."""

    tail: float = ruled(0.2, Rule(float, 0.0, 1.0, open_low=True, doc="share of the last epochs the slope is fit on"))
    min_tail_epochs: int = ruled(5, Rule(int, 2, doc="the fewest epochs a slope is fit on"))
    max_slope: float = ruled(0.005, Rule(float, 0.0, doc="flat: |slope| per epoch at most this (0.005 = 0.5 point)"))
    max_doubling_gain: float = ruled(0.01, Rule(float, 0.0, doc="doubling the budget raises the mean by less"))

    def __post_init__(self) -> None:
        check_fields(self)

    def describe(self) -> str:
        """The flat-tail rule in words, for messages and reports."""
        return (f"validation accuracy flat within {100 * self.max_slope:g} point/epoch over the last "
                f"{100 * self.tail:g} % of epochs (at least {self.min_tail_epochs})")

    def tail_epochs(self, epochs: int) -> int:
        return max(self.min_tail_epochs, math.ceil(self.tail * epochs))


def diagnose(val_accuracy: Sequence[float], rule: ConvergenceRule = ConvergenceRule()) -> dict:
    """A run's convergence diagnostics from its per-epoch validation accuracy (epoch 1 first).

    Returns `val_slope` (accuracy per epoch over the tail; NaN when the run has fewer epochs
    than `min_tail_epochs`), `best_epoch` (1-based, the first at the maximum), its
    `best_val_accuracy`, `tail_epochs` and `converged` (the slope is within `max_slope`;
    False for a run too short to tell).
    """
    acc = np.asarray(val_accuracy, dtype=np.float64)
    if acc.ndim != 1 or not len(acc):
        raise ValueError(f"diagnose needs a non-empty sequence of per-epoch accuracies, but got {val_accuracy!r}")
    k = rule.tail_epochs(len(acc))
    slope = float("nan")
    if len(acc) >= k and np.isfinite(acc[-k:]).all():
        slope = float(np.polyfit(np.arange(k, dtype=np.float64), acc[-k:], 1)[0])
    best = int(np.nanargmax(acc)) if np.isfinite(acc).any() else 0
    return {"val_slope": slope, "best_epoch": best + 1, "best_val_accuracy": float(acc[best]), "tail_epochs": k,
            "converged": bool(math.isfinite(slope) and abs(slope) <= rule.max_slope)}


def convergence_metrics(val_accuracy: Sequence[float], rule: ConvergenceRule = ConvergenceRule()) -> dict[str, float]:
    """`diagnose` as the scalars a trial reports (MLflow metrics, the record): CONVERGENCE_KEYS,
    `converged` 1.0 / 0.0."""
    d = diagnose(val_accuracy, rule)
    return {k: float(d[k]) for k in CONVERGENCE_KEYS}


def budget_rule(curves: Mapping[str, Mapping[int, Sequence[Sequence[float]]]],
                rule: ConvergenceRule = ConvergenceRule()) -> dict:
    """Apply both checks to learning curves `{arm: {budget: [curve of each seed]}}`.

    Returns `{"arms": {arm: {budget: {...}}}, "arm_budgets": {arm: B or None}, "budget": B or
    None}`. Per arm and budget: the mean final accuracy, its change at twice the budget
    (`doubled_change`, None where that budget was not run), how many seeds' tails are flat,
    `passes` (every tail flat and doubled_change < max_doubling_gain) and `past_peak`
    (doubled_change <= -max_doubling_gain: the longer budget over-trains). An arm's budget is
    its smallest passing one; `budget`, the largest arm's budget when every arm has one (None:
    some arm has not been shown to stop learning yet).
    """
    out: dict = {}
    for arm, by_budget in curves.items():
        rows = {}
        for budget, seeds in sorted((int(b), c) for b, c in by_budget.items()):
            finals = [float(c[-1]) for c in seeds]
            flat = [diagnose(c, rule)["converged"] for c in seeds]
            rows[budget] = {"mean_final": float(np.mean(finals)), "seeds": len(finals), "flat": int(sum(flat))}
        for budget, row in rows.items():
            twice = rows.get(2 * budget)
            change = None if twice is None else twice["mean_final"] - row["mean_final"]
            row["doubled_change"] = change
            row["passes"] = bool(row["flat"] == row["seeds"] and change is not None
                                 and change < rule.max_doubling_gain)
            row["past_peak"] = bool(change is not None and change <= -rule.max_doubling_gain)
        out[arm] = rows
    arm_budgets = {arm: next((b for b, row in rows.items() if row["passes"]), None) for arm, rows in out.items()}
    chosen = max(arm_budgets.values()) if arm_budgets and None not in arm_budgets.values() else None
    return {"arms": out, "arm_budgets": arm_budgets, "budget": chosen}
