"""analysis.pareto: fronts of hand-made sets whose answer is known."""

import numpy as np
import pytest

from analysis import pareto_mask


def test_two_objective_front_with_a_dominated_point():
    v = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.4, 0.4]])
    assert pareto_mask(v, ["max", "max"]).tolist() == [True, True, True, False]


def test_mixed_directions_flip_the_answer():
    v = np.array([[1.0, 1.0], [2.0, 2.0]])
    assert pareto_mask(v, ["max", "max"]).tolist() == [False, True]
    assert pareto_mask(v, ["max", "min"]).tolist() == [True, True]
    assert pareto_mask(v, ["min", "min"]).tolist() == [True, False]


def test_duplicates_and_ties_stay_on_the_front_together():
    v = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 0.5]])
    assert pareto_mask(v, ["max", "max"]).tolist() == [True, True, False]


def test_four_objectives_and_nan_rows():
    v = np.array([[0.9, 0.5, 0.1, 0.2], [0.8, 0.6, 0.1, 0.2], [0.8, 0.5, 0.1, 0.2], [np.nan, 1, 1, 1]])
    assert pareto_mask(v, ["max"] * 4).tolist() == [True, True, False, False]


def test_bad_shapes_and_directions_are_rejected():
    with pytest.raises(ValueError, match="directions must be 'max' or 'min'"):
        pareto_mask(np.zeros((2, 1)), ["up"])
    with pytest.raises(ValueError, match=r"must be \(N, 2\)"):
        pareto_mask(np.zeros((2, 3)), ["max", "max"])
