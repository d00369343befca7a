"""analysis.pareto: fronts of hand-made sets whose answer is known."""

import moocore
import numpy as np
import pandas as pd
import pytest

from analysis import crowding_distance, knee_index, pareto_front, pareto_mask, pareto_ranks


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
    with pytest.warns(RuntimeWarning):
        assert pareto_mask(v, ["max"] * 4).tolist() == [True, True, False, False]


def test_bad_shapes_and_directions_are_rejected():
    with pytest.raises(ValueError, match="directions must be 'max' or 'min'"):
        pareto_mask(np.zeros((2, 1)), ["up"])
    with pytest.raises(ValueError, match=r"must be \(N, 2\)"):
        pareto_mask(np.zeros((2, 3)), ["max", "max"])


def test_nan_rows_are_dropped_with_a_warning():
    v = np.array([[1.0, 0.0], [np.nan, 5.0], [0.0, 1.0]])
    with pytest.warns(RuntimeWarning, match="1 of 3 rows hold NaN"):
        assert pareto_mask(v, ["max", "max"]).tolist() == [True, False, True]
    with pytest.warns(RuntimeWarning):
        assert pareto_ranks(v, ["max", "max"]).tolist() == [0, -1, 0]


def test_ranks_peel_fronts_and_duplicates_share_a_rank():
    # front 0: (3, 1), (1, 3), (3, 1) again; front 1: (2, 1) and (1, 2); front 2: (1, 1); (0, 0) last
    v = np.array([[3, 1], [1, 3], [2, 1], [1, 2], [1, 1], [0, 0], [3, 1]], dtype=float)
    assert pareto_ranks(v, ["max", "max"]).tolist() == [0, 0, 1, 1, 2, 3, 0]
    # minimising both reverses the order of the chain (1,1) < (2,1) ...
    ranks = pareto_ranks(v, ["min", "min"])
    assert ranks[5] == 0 and ranks[4] == 1 and ranks[0] == ranks[6]


def test_rank_zero_is_the_front():
    rng = np.random.default_rng(0)
    for m in (2, 3, 4):
        v = rng.random((60, m)).round(1)  # rounding makes ties and duplicates
        dirs = ["max", "min", "max", "min"][:m]
        assert ((pareto_ranks(v, dirs) == 0) == pareto_mask(v, dirs)).all()


def test_front_agrees_with_moocore_on_random_sets():
    rng = np.random.default_rng(1)
    for m in (2, 3, 5):
        v = rng.random((80, m)).round(1)
        expected = moocore.is_nondominated(v, maximise=True, keep_weakly=True)
        assert (pareto_mask(v, ["max"] * m) == expected).all()


def test_knee_is_the_balanced_point_not_an_extreme():
    v = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.6], [0.5, 0.5]])
    assert knee_index(v, ["max", "max"]) == 2
    # with the second objective minimised, (1, 0) is ideal on both: the front is that point alone
    assert knee_index(v, ["max", "min"]) == 0


def test_knee_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="no front"), pytest.warns(RuntimeWarning):
        knee_index(np.full((2, 2), np.nan), ["max", "max"])


def test_pareto_front_of_a_table_keeps_its_rows():
    df = pd.DataFrame({"acc": [0.9, 0.8, 0.7, np.nan], "robust": [0.1, 0.5, 0.4, 0.9], "name": list("abcd")})
    with pytest.warns(RuntimeWarning, match="1 of 4 rows"):
        front = pareto_front(df, ["acc", "robust"], ["max", "max"])
    assert front["name"].tolist() == ["a", "b"]
    with pytest.raises(ValueError, match=r"objectives \['speed'\] are not columns"):
        pareto_front(df, ["speed"], ["max"])


def test_crowding_distance_of_a_known_front():
    # NSGA-II's definition worked out by hand: ends inf; (0.4, 0.6): (0.45 - 0.1) / 0.8 +
    # (0.9 - 0.55) / 0.8; (0.45, 0.55): (0.9 - 0.4) / 0.8 + (0.6 - 0.1) / 0.8
    front = np.array([[0.1, 0.9], [0.4, 0.6], [0.45, 0.55], [0.9, 0.1]])
    assert crowding_distance(front) == pytest.approx([np.inf, 0.875, 1.25, np.inf])
    # scale-free: rescaling an objective changes nothing; a flat objective adds nothing and has no ends
    assert crowding_distance(front * [10.0, 1.0]) == pytest.approx(crowding_distance(front))
    flat = np.array([[0.1, 0.5], [0.4, 0.5], [0.9, 0.5]])
    assert crowding_distance(flat) == pytest.approx([np.inf, 1.0, np.inf])
    assert crowding_distance(front[:2]).tolist() == [np.inf, np.inf]  # two points: both are ends
