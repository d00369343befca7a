"""analysis.compare and Search's front / knee on a hand-made table whose answers are known."""

import numpy as np
import pandas as pd
import pytest

from analysis import Search, baseline_id, group_summary, versus_baseline

OBJ = (("clean_accuracy", "max"), ("apgd_accuracy", "max"))


def _search(rows) -> Search:
    df = pd.DataFrame(rows, columns=["trial_id", "status", "deterministic", "baseline", "noise/shape",
                                     "clean_accuracy", "apgd_accuracy"]).set_index("trial_id")
    for name, _ in OBJ:  # intervals +- 0.02, final numbers absent
        df[f"{name}_low"], df[f"{name}_high"] = df[name] - 0.02, df[name] + 0.02
        df[f"final_{name}"] = np.nan
    df["run_id"] = None
    return Search(name="hand", trials=df, objectives=OBJ, params=["noise/shape"], status="FINISHED", source="test")


ROWS = [
    # id, status, deterministic, baseline, shape, clean, apgd
    ("det_a", "complete", True, False, "none", 0.95, 0.10),   # the baseline: best deterministic clean accuracy
    ("det_b", "complete", True, False, "none", 0.90, 0.05),   # dominated by det_a
    ("nsde_a", "complete", False, False, "fbm", 0.92, 0.40),  # on the front, the knee
    ("nsde_b", "complete", False, False, "fbm", 0.80, 0.45),  # on the front
    ("nsde_c", "complete", False, False, "white", 0.70, 0.30),  # dominated
    ("pruned", "pruned", False, False, "fbm", np.nan, np.nan),
    ("failed", "failed", False, False, "fbm", np.nan, np.nan),
]


def test_front_knee_and_baseline():
    s = _search(ROWS)
    assert s.front() == ["det_a", "nsde_a", "nsde_b"]
    assert s.knee() == "nsde_a"
    assert baseline_id(s) == "det_a"
    assert s.front(final=True) == [] and s.knee(final=True) is None and not s.has_final


def test_group_summary_counts_and_bests():
    table = group_summary(_search(ROWS))
    assert table.loc[("deterministic", "on front"), "trials"] == 1
    assert table.loc[("deterministic", "off front"), "trials"] == 1
    assert table.loc[("NSDE", "on front"), "trials"] == 2
    assert table.loc[("NSDE", "off front"), "trials"] == 1  # pruned and failed trials do not count
    assert table.loc[("NSDE", "on front"), "best apgd_accuracy"] == pytest.approx(0.45)
    assert table.loc[("NSDE", "on front"), "mean clean_accuracy"] == pytest.approx(0.86)


def test_versus_baseline_signs_and_separation():
    table = versus_baseline(_search(ROWS))
    assert list(table.index) == ["det_a", "nsde_a", "nsde_b"]
    assert table.loc["det_a", "kind"] == "baseline" and table.loc["nsde_a", "knee"]
    assert table.loc["nsde_a", "clean_accuracy vs baseline"] == pytest.approx(-0.03)
    assert table.loc["nsde_a", "apgd_accuracy vs baseline"] == pytest.approx(0.30)
    # intervals of +-0.02: 0.92 vs 0.95 overlap, 0.40 vs 0.10 do not
    assert not table.loc["nsde_a", "clean_accuracy separated"]
    assert table.loc["nsde_a", "apgd_accuracy separated"]


def test_a_minimised_objective_counts_a_decrease_as_better():
    s = _search(ROWS)
    s.objectives = (("clean_accuracy", "max"), ("apgd_accuracy", "min"))
    table = versus_baseline(s)
    assert table.loc["det_b", "apgd_accuracy vs baseline"] == pytest.approx(0.05)


def test_the_tagged_baseline_wins_over_the_best_clean_accuracy():
    rows = [r if r[0] != "det_b" else (*r[:3], True, *r[4:]) for r in ROWS]  # the search re-scored det_b
    s = _search(rows)
    assert baseline_id(s) == "det_b"
    assert versus_baseline(s).loc["nsde_a", "clean_accuracy vs baseline"] == pytest.approx(0.02)
    # with final numbers, a tagged baseline counts only when it was re-scored
    assert baseline_id(s, final=True) is None
    s.trials.loc["det_b", "final_clean_accuracy"] = 0.9
    s.trials.loc["det_b", "final_apgd_accuracy"] = 0.05
    assert baseline_id(s, final=True) == "det_b"


def test_a_minimised_first_objective_picks_the_lowest_baseline():
    s = _search(ROWS)
    s.trials = s.trials.drop(columns=["clean_accuracy"])
    s.objectives = (("apgd_accuracy", "min"),)
    assert baseline_id(s) == "det_b"


def test_colours_are_distinct_and_never_grey():
    from analysis.plots import GREY, PALETTE, colours

    rows = [(f"t{i:02d}", "complete", False, False, "fbm", i / 20, 1 - i / 20) for i in range(20)]  # all on the front
    s = _search(rows)
    colour = colours(s, list(s.trials.index))
    assert list(colour.values())[:len(PALETTE)] == PALETTE  # in trial order, each colour once
    assert GREY not in colour.values()
    # a trial's colour does not depend on which trials a figure asks for
    assert colours(s, ["t05"])["t05"] == colour["t05"]


def test_without_deterministic_trials_there_is_no_baseline():
    s = _search([r for r in ROWS if not r[2]])
    assert baseline_id(s) is None
    assert versus_baseline(s).empty
