"""analysis.hypervolume: known volumes (2-D rectangles, a 3-D union), reference points, progress."""

import math

import numpy as np
import pandas as pd
import pytest

from analysis import hypervolume, hypervolume_progress, reference_point

MAX2 = ["max", "max"]


def test_one_point_is_its_rectangle():
    assert hypervolume(np.array([[0.5, 0.4]]), MAX2, [0.0, 0.0]) == pytest.approx(0.2)


def test_a_staircase_is_the_union_of_its_rectangles():
    # (1, 3), (2, 2), (3, 1) over (0, 0): 1*3 + 1*2 + 1*1 (no double counting)
    v = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    assert hypervolume(v, MAX2, [0.0, 0.0]) == pytest.approx(6.0)
    # a dominated point and a duplicate add nothing
    more = np.vstack([v, [[1.5, 1.5], [2.0, 2.0]]])
    assert hypervolume(more, MAX2, [0.0, 0.0]) == pytest.approx(6.0)


def test_minimised_objectives_measure_towards_smaller_values():
    # maximise x from 0, minimise y from 5: (1, 2) spans 1 * 3
    assert hypervolume(np.array([[1.0, 2.0]]), ["max", "min"], [0.0, 5.0]) == pytest.approx(3.0)
    assert hypervolume(np.array([[1.0, 2.0]]), ["min", "min"], [4.0, 5.0]) == pytest.approx(9.0)


def test_three_boxes_in_3d_by_inclusion_exclusion():
    # boxes [0,2]x[0,1]x[0,1], [0,1]x[0,2]x[0,1], [0,1]x[0,1]x[0,2]: 3 * 2 - 3 * 1 + 1 = 4
    v = np.array([[2.0, 1.0, 1.0], [1.0, 2.0, 1.0], [1.0, 1.0, 2.0]])
    assert hypervolume(v, ["max"] * 3, [0.0, 0.0, 0.0]) == pytest.approx(4.0)
    assert hypervolume(v, ["max"] * 3, [0.5, 0.5, 0.5]) == pytest.approx(3 * 0.375 - 3 * 0.125 + 0.125)


def test_points_behind_the_reference_or_nan_add_nothing():
    v = np.array([[0.5, 0.5], [-0.1, 0.9], [0.0, 0.9], [np.nan, 1.0]])
    assert hypervolume(v, MAX2, [0.0, 0.0]) == pytest.approx(0.25)
    assert hypervolume(np.zeros((0, 2)), MAX2, [0.0, 0.0]) == 0.0


def test_a_bad_reference_point_is_an_error():
    with pytest.raises(ValueError, match="ref must be 2 finite numbers"):
        hypervolume(np.ones((1, 2)), MAX2, [0.0])
    with pytest.raises(ValueError, match="ref must be 2 finite numbers"):
        hypervolume(np.ones((1, 2)), MAX2, [0.0, math.nan])


def test_reference_point_uses_bounds_then_the_observed_range():
    v = np.array([[0.9, 0.5, 3.0], [0.7, 0.6, 1.0], [np.nan, 0.1, 2.0]])
    objectives = [("clean_accuracy", "max"), ("apgd_accuracy", "min"), ("attribution_stability", "min")]
    ref = reference_point(v, objectives)
    # accuracies: their worst possible value; stability: the worst seen, 10 % of the range beyond
    assert ref.tolist() == pytest.approx([0.0, 1.0, 3.0 + 0.1 * 2.0])
    assert reference_point(v[:, 2:], [("attribution_stability", "max")]).tolist() == pytest.approx([1.0 - 0.2])


def test_progress_rises_as_trials_end_and_ends_at_the_total():
    trials = pd.DataFrame({
        "trial_id": ["a", "b", "c", "d"],
        "started": [0.0, 0.0, 10.0, 10.0],
        "ended": [30.0, 20.0, 50.0, np.nan],  # d is still running
        "x": [0.5, 0.2, 0.9, 1.0],
        "y": [0.5, 0.9, 0.1, 1.0],
    }).set_index("trial_id")
    progress = hypervolume_progress(trials, [("x", "max"), ("y", "max")], [0.0, 0.0])
    assert progress["trial_id"].tolist() == ["b", "a", "c"]  # the order they ended
    assert progress["seconds"].tolist() == [20.0, 30.0, 50.0]
    assert progress["hypervolume"].tolist() == pytest.approx([0.18, 0.18 + 0.3 * 0.5, 0.18 + 0.15 + 0.4 * 0.1])
    assert progress["hypervolume"].is_monotonic_increasing
    # with statuses, only complete trials add volume; every ended trial still counts
    trials["status"] = ["complete", "pruned", "complete", "complete"]
    progress = hypervolume_progress(trials, [("x", "max"), ("y", "max")], [0.0, 0.0])
    assert progress["trials"].tolist() == [1, 2, 3]
    assert progress["hypervolume"].tolist() == pytest.approx([0.0, 0.25, 0.25 + 0.4 * 0.1])
