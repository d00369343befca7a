"""nsde.train.convergence: the flat-tail diagnostic and the doubling rule on curves whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nsde.train.convergence import ConvergenceRule, budget_rule, convergence_metrics, diagnose


def test_the_tail_slope_is_the_least_squares_slope_of_the_last_fifth():
    # 40 epochs: the tail is the last 8; rising 0.8 point an epoch there, flat before
    curve = [0.5] * 32 + [0.5 + 0.008 * k for k in range(1, 9)]
    d = diagnose(curve)
    assert d["tail_epochs"] == 8
    assert d["val_slope"] == pytest.approx(0.008)
    assert not d["converged"]
    assert d["best_epoch"] == 40 and d["best_val_accuracy"] == pytest.approx(0.564)
    # 15 epochs: a fifth is 3, but the slope is fit on at least 5
    assert diagnose([0.5] * 15)["tail_epochs"] == 5


def test_a_flat_or_slowly_moving_tail_converges_and_the_first_best_epoch_is_named():
    # noisy around a plateau, as late validation accuracy is (+-1 point)
    flat = [0.1, 0.4, 0.6, 0.7, 0.71, 0.72, 0.705, 0.715, 0.70, 0.72]
    d = diagnose(flat)
    assert d["tail_epochs"] == 5 and d["converged"] and abs(d["val_slope"]) <= 0.005
    assert d["best_epoch"] == 6  # the first epoch at the maximum
    # a falling tail (over-fitting) is not flat either: more training would change the number
    assert not diagnose([0.5, 0.6, 0.7, 0.69, 0.68, 0.67, 0.66])["converged"]


def test_a_run_shorter_than_the_tail_cannot_tell():
    d = diagnose([0.2, 0.3, 0.3, 0.3])
    assert math.isnan(d["val_slope"]) and not d["converged"]
    assert convergence_metrics([0.2, 0.3])["converged"] == 0.0
    assert ConvergenceRule(min_tail_epochs=2).tail_epochs(4) == 2 and diagnose([0.2, 0.3], ConvergenceRule(
        min_tail_epochs=2))["val_slope"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="non-empty"):
        diagnose([])


def test_the_budget_rule_picks_the_budget_from_which_no_arm_gains_by_doubling():
    def curve(final: float, epochs: int) -> list[float]:
        flat = max(5, epochs // 4)  # longer than the tail the slope is fit on (a fifth, at least 5)
        return list(np.linspace(0.1, final, epochs - flat)) + [final] * flat

    curves = {
        "plain": {10: [curve(0.70, 10), curve(0.72, 10)], 20: [curve(0.75, 20), curve(0.77, 20)],
                  40: [curve(0.735, 40), curve(0.745, 40)]},  # over-trains at 40: 2 points below 20
        "nsde": {10: [curve(0.60, 10), curve(0.62, 10)], 20: [curve(0.74, 20), curve(0.76, 20)],
                 40: [curve(0.80, 40), curve(0.82, 40)]},
    }
    verdict = budget_rule(curves)
    plain, nsde = verdict["arms"]["plain"], verdict["arms"]["nsde"]
    assert plain[10]["doubled_change"] == pytest.approx(0.05) and not plain[10]["passes"]
    # a loss with more training is past the peak, not short of it: 20 passes for plain
    assert plain[20]["doubled_change"] == pytest.approx(-0.02) and plain[20]["passes"] and plain[20]["past_peak"]
    assert nsde[20]["doubled_change"] == pytest.approx(0.06) and not nsde[20]["passes"]
    assert plain[40]["doubled_change"] is None and not plain[40]["passes"]  # nothing to double against
    assert verdict["arm_budgets"] == {"plain": 20, "nsde": None}
    assert verdict["budget"] is None  # the noise arm still gains from 20 to 40: no budget for every arm yet
    curves["nsde"][80] = [curve(0.805, 80), curve(0.815, 80)]  # +0.5 point: nsde stops gaining at 40
    verdict = budget_rule(curves)
    assert verdict["arm_budgets"] == {"plain": 20, "nsde": 40} and verdict["budget"] == 40
    assert not verdict["arms"]["nsde"][40]["past_peak"]
    curves["nsde"][80] = [curve(0.83, 80), curve(0.83, 80)]  # +2 points: still learning at 40
    assert budget_rule(curves)["budget"] is None


def test_a_tail_that_still_moves_fails_the_budget_even_when_the_means_agree():
    rising = list(np.linspace(0.1, 0.7, 10))
    verdict = budget_rule({"a": {10: [rising], 20: [list(np.linspace(0.1, 0.7, 20))]}})
    assert verdict["arms"]["a"][10]["flat"] == 0 and not verdict["arms"]["a"][10]["passes"]


def test_rule_settings_are_checked():
    with pytest.raises(ValueError, match="tail"):
        ConvergenceRule(tail=0.0)
    with pytest.raises(ValueError, match="max_slope"):
        ConvergenceRule(max_slope=-1.0)
