"""Constraints in the analysis: an infeasible trial is on no front and adds no hypervolume."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import Search, hypervolume
from record import Objective, TrialRecord
from spaces import get_space

OBJECTIVES = (Objective("clean_accuracy", "max"), Objective("apgd_accuracy", "max"))


def _search(constraints) -> Search:
    """The baseline (the space's first point) and two NSDE trials; `robust` has the best APGD
    accuracy but loses 10 points of clean accuracy against the baseline, `mild` loses 1."""
    space = get_space("default")
    point = space.config(space.points[0])
    noisy = {**point, "noise/shape": "white", "noise/sigma": 0.2, "noise/depth": 2}
    records = [TrialRecord("base", "complete", {**point, "train/seed": 5}, {"clean_accuracy": 0.90, "apgd_accuracy": 0.10}),
               TrialRecord("robust", "complete", noisy, {"clean_accuracy": 0.80, "apgd_accuracy": 0.40}),
               TrialRecord("mild", "complete", {**noisy, "noise/sigma": 0.05},
                           {"clean_accuracy": 0.89, "apgd_accuracy": 0.20})]
    return Search.from_records("s", records, OBJECTIVES, space=space.to_dict(), settings={"constraints": constraints})


def test_a_constraint_relative_to_the_baseline_takes_a_trial_off_the_front():
    free = _search([])
    assert set(free.front()) == {"base", "robust", "mild"}
    bound = _search(["clean_accuracy>=baseline-0.02"])
    assert bound.constraint_baseline() == "base"
    assert bound.feasible().to_dict() == {"base": True, "robust": False, "mild": True}
    assert set(bound.front()) == {"base", "mild"}
    # the hypervolume counts the feasible trials only
    ref = np.zeros(2)
    assert hypervolume(bound.values(), bound.directions, ref) == pytest.approx(0.90 * 0.10 + 0.89 * (0.20 - 0.10))
    assert hypervolume(free.values(), free.directions, ref) > hypervolume(bound.values(), bound.directions, ref)


def test_an_absolute_constraint_and_one_that_cannot_be_checked():
    assert set(_search(["apgd_accuracy>=0.15"]).front()) == {"robust", "mild"}
    no_baseline = _search(["clean_accuracy>=baseline-0.02"])
    no_baseline.trials = no_baseline.trials.drop(index="base")
    assert no_baseline.feasible().tolist() == [None, None]  # unknown: kept
    assert set(no_baseline.front()) == {"robust", "mild"}


def test_the_report_shows_the_constraints_and_which_trials_keep_them():
    from analysis.report import render_report

    html = render_report(_search(["clean_accuracy>=baseline-0.02"]))
    assert "clean_accuracy&gt;=baseline-0.02: 2 of 3 complete trials feasible" in html
    assert "(baseline: trial base)" in html and ">NO<" in html
