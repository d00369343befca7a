"""analysis.compare and Search's front / knee on a hand-made table whose answers are known, and
the paired held-out comparison on hand-made per-example records."""

import json

import numpy as np
import pandas as pd
import pytest

from analysis import Search, baseline_id, group_summary, paired_test, paired_versus_baseline, versus_baseline
from analysis.load import TEST_FILE

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


# ----------------------------------------------------------- flagged trials and the fronts


def test_a_flagged_trial_is_kept_off_the_front_unless_the_search_kept_it():
    s = _search(ROWS)
    s.trials["flagged"] = s.trials.index == "nsde_a"  # its attack failed a sanity check
    s.trials["final_flagged"] = False
    assert s.front() == ["det_a", "nsde_b"] and s.knee() in ("det_a", "nsde_b")
    assert np.isnan(s.values()[list(s.trials.index).index("nsde_a")]).all()
    table = group_summary(s)  # flagged trials count nowhere
    assert table.loc[("NSDE", "on front"), "trials"] == 1 and table.loc[("NSDE", "off front"), "trials"] == 1
    s.settings = {"keep_flagged": True}  # --keep-flagged
    assert s.front() == ["det_a", "nsde_a", "nsde_b"]
    s.settings = {"keep_flagged": "False"}  # as an MLflow param string
    assert "nsde_a" not in s.front()


# ----------------------------------------------------- held-out records, paired with the baseline

OBJ4 = (("clean_accuracy", "max"), ("sweep_area", "max"), ("apgd_accuracy", "max"), ("abc_auroc", "max"))


def _report(correct, *, index=None, area=None, robust=None, score=None, split="test") -> dict:
    """A test-split EvalReport dict with only what the paired comparison reads (per_example)."""
    correct = np.asarray(correct, dtype=bool)
    n = len(correct)
    index = np.arange(100, 100 + n) if index is None else np.asarray(index)
    area = correct * 0.8 if area is None else np.asarray(area, dtype=float)
    robust = correct * 0.5 if robust is None else np.asarray(robust, dtype=float)
    score = np.linspace(0.2, 0.9, n) if score is None else np.asarray(score, dtype=float)
    return {"split": split, "settings": {"resamples": 400, "seed": 0}, "per_example": {
        "clean": {"index": index.tolist(), "correct": correct.tolist()},
        "sweep": {"index": index.tolist(), "area": area.tolist(), "clean": correct.tolist()},
        "apgd": {"index": index.tolist(), "robust_mean": robust.tolist(), "clean": correct.tolist()},
        "abc": {"index": index.tolist(), "score": score.tolist(), "correct": correct.tolist()},
        "stability": {"index": index.tolist(), "value": (1.0 - score).tolist()},
    }}


def _record(*reports, seeds=None) -> dict:
    return {"seeds": seeds or list(range(3, 3 + 1000 * len(reports), 1000)), "reports": list(reports)}


CORRECT = np.array([True] * 28 + [False] * 12)  # 40 examples, 70 % correct


def test_identical_reports_differ_by_nothing():
    rec = _record(_report(CORRECT))
    table = paired_test(rec, rec, OBJ4, names=("m", "b"))
    assert list(table.index) == [n for n, _ in OBJ4]
    assert (table["difference"] == 0).all() and (table["low"] == 0).all() and (table["high"] == 0).all()
    assert (table["p"] == 1.0).all()
    assert table.loc["clean_accuracy", "mcnemar_p"] == 1.0
    assert np.isnan(table.loc["apgd_accuracy", "mcnemar_p"])  # McNemar: clean accuracy only
    assert (table["n"] == 40).all() and (table["seeds"] == 1).all()
    assert table.loc["clean_accuracy", "member"] == pytest.approx(0.7)


def test_a_baseline_right_on_ten_more_examples_is_exactly_mcnemar():
    base = CORRECT.copy()
    member = CORRECT.copy()
    member[:10] = False  # wrong where the baseline is right, on 10 examples; no example the other way
    table = paired_test(_record(_report(member)), _record(_report(base)), OBJ4, names=("m", "b"))
    row = table.loc["clean_accuracy"]
    assert row["mcnemar_p"] == pytest.approx(2 * 0.5 ** 10)
    assert row["difference"] == pytest.approx(-10 / 40)
    assert row["member"] == pytest.approx(18 / 40) and row["baseline"] == pytest.approx(28 / 40)
    assert row["low"] <= row["difference"] <= row["high"] < 0  # every resample sees the member worse or equal
    assert row["p"] < 0.01
    # the same examples move the other paired objectives too (area and robustness follow correctness)
    assert table.loc["sweep_area", "difference"] == pytest.approx(-10 * 0.8 / 40)
    assert table.loc["apgd_accuracy", "difference"] == pytest.approx(-10 * 0.5 / 40)


def test_a_minimised_objective_is_better_when_lower():
    base = _report(CORRECT, score=np.full(40, 0.5))  # stability value 1 - score = 0.5
    member = _report(CORRECT, score=np.full(40, 0.7))  # 0.3: stabler attributions
    table = paired_test(_record(member), _record(base), [("attribution_stability", "min")])
    row = table.loc["attribution_stability"]
    assert row["difference"] == pytest.approx(0.2) and row["low"] == pytest.approx(0.2)
    assert row["high"] == pytest.approx(0.2) and row["p_bound"]  # no resample crossed 0: p is the bound 1/B
    assert row["p"] == pytest.approx(1 / 400)
    assert row["member"] == pytest.approx(0.3) and row["baseline"] == pytest.approx(0.5)


def test_seed_k_pairs_with_seed_k():
    worse, worse_elsewhere = CORRECT.copy(), CORRECT.copy()
    worse[:4] = False
    worse_elsewhere[4:8] = False
    # seed 0: the member is right on 4 examples the baseline gets wrong, seed 1: wrong on 4
    # others the baseline gets right -> no difference on average, but not in every resample
    member = _record(_report(CORRECT), _report(worse_elsewhere))
    base = _record(_report(worse), _report(CORRECT))
    table = paired_test(member, base, [("clean_accuracy", "max")])
    row = table.loc["clean_accuracy"]
    assert row["seeds"] == 2 and row["n"] == 40
    assert row["difference"] == pytest.approx(0.0) and row["low"] < 0 < row["high"]
    # McNemar per seed: 4 discordant pairs, all one way (exact: 2 * 0.5^4); the seeds' differences
    # run in opposite directions, so their combination (Cochran-Mantel-Haenszel) finds nothing
    assert row["mcnemar_p_seeds"] == pytest.approx([2 * 0.5 ** 4, 2 * 0.5 ** 4]) and row["mcnemar_p"] > 0.5
    # a record with fewer seeds pairs only the seeds both have
    one = paired_test(_record(_report(CORRECT)), base, [("clean_accuracy", "max")]).loc["clean_accuracy"]
    assert one["seeds"] == 1 and one["difference"] == pytest.approx(4 / 40)


def test_unpaired_reports_are_an_error_naming_both_trials():
    shifted = _report(CORRECT, index=np.arange(200, 240))
    with pytest.raises(ValueError, match="trial nsde_a and trial det_a are not paired"):
        paired_test(_record(shifted), _record(_report(CORRECT)), OBJ4, names=("nsde_a", "det_a"))
    with pytest.raises(ValueError, match="different splits"):
        paired_test(_record(_report(CORRECT, split="val")), _record(_report(CORRECT)), OBJ4, names=("a", "b"))


def _tested_search(tmp_path, records: dict) -> Search:
    """The hand-made search, re-scored (final = search numbers) with test records in files."""
    s = _search(ROWS)
    for name, _ in OBJ:
        for suffix in ("", "_low", "_high"):
            s.trials[f"final_{name}{suffix}"] = s.trials[f"{name}{suffix}"].where(s.trials.index.isin(
                ["det_a", "nsde_a", "nsde_b"]))
    s.trials["rescored"] = s.trials["final_clean_accuracy"].notna()
    s.trials["tested"] = s.trials.index.isin(list(records))
    for tid, rec in records.items():
        (tmp_path / f"{tid}.json").write_text(json.dumps(rec))
    s.fetch = lambda tid, name: (tmp_path / f"{tid}.json") if name == TEST_FILE and tid in records else None
    return s


def test_paired_versus_baseline_compares_each_front_member_on_its_test_record(tmp_path):
    member = CORRECT.copy()
    member[:10] = False
    records = {"det_a": _record(_report(CORRECT)), "nsde_a": _record(_report(member)),
               "nsde_b": _record(_report(CORRECT))}
    s = _tested_search(tmp_path, records)
    assert s.has_final and s.has_test and s.test_report("nsde_a")["seeds"] == [3]
    assert s.test_report("det_b") is None
    table = paired_versus_baseline(s)
    # the baseline det_a is not compared with itself; every objective of the search, one row each
    assert list(table.index) == [(t, n) for t in ("nsde_a", "nsde_b") for n, _ in OBJ]
    assert table.loc[("nsde_a", "clean_accuracy"), "mcnemar_p"] == pytest.approx(2 * 0.5 ** 10)
    assert table.loc[("nsde_a", "clean_accuracy"), "knee"] and table.loc[("nsde_a", "clean_accuracy"), "kind"] == "NSDE"
    assert table.loc[("nsde_b", "clean_accuracy"), "difference"] == 0
    assert table.loc[("nsde_b", "apgd_accuracy"), "p"] == 1.0
    # a member scored on other examples: the error names it and the baseline
    records["nsde_b"] = _record(_report(CORRECT, index=np.arange(40)))
    with pytest.raises(ValueError, match="trial nsde_b and trial det_a are not paired"):
        paired_versus_baseline(_tested_search(tmp_path, records))


def test_with_several_seeds_the_front_is_also_compared_at_the_method_level(tmp_path):
    """Three training seeds a trial: beside the examples-level interval, each member against the
    baseline in the seed-blocked model over the three trials (residual pooled, df (3-1)(3-1) = 4),
    with the minimal detectable effect; one seed has no method level (NaN)."""
    def wrong(k: int) -> np.ndarray:
        c = CORRECT.copy()
        c[:k] = False
        return c

    records = {"det_a": _record(_report(wrong(10)), _report(wrong(12)), _report(wrong(8))),
               "nsde_a": _record(_report(wrong(4)), _report(wrong(7)), _report(wrong(4))),  # +0.125 on average
               "nsde_b": _record(_report(wrong(10)), _report(wrong(11)), _report(wrong(9)))}  # the baseline again
    table = paired_versus_baseline(_tested_search(tmp_path, records)).xs("clean_accuracy", level="objective")
    acc = {t: [(28 - k) / 40 for k in ks] for t, ks in (("det_a", (10, 12, 8)), ("nsde_a", (4, 7, 4)),
                                                     ("nsde_b", (10, 11, 9)))}
    y = np.array([acc["det_a"], acc["nsde_a"], acc["nsde_b"]])
    resid = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + y.mean()
    sigma = np.sqrt((resid ** 2).sum() / 4)
    assert table.loc["nsde_a", "method_difference"] == pytest.approx(np.mean(np.subtract(acc["nsde_a"], acc["det_a"])))
    assert table.loc["nsde_a", "method_df"] == 4 and table.loc["nsde_a", "sigma"] == pytest.approx(sigma)
    assert table.loc["nsde_a", "method_low"] > 0 and table.loc["nsde_b", "method_low"] < 0 < table.loc["nsde_b", "method_high"]
    assert table.loc["nsde_a", "mde"] > 0 and len(table.loc["nsde_a", "mcnemar_p_seeds"]) == 3
    one = {t: _record(_report(wrong(k))) for t, k in (("det_a", 10), ("nsde_a", 4), ("nsde_b", 10))}
    single = paired_versus_baseline(_tested_search(tmp_path, one)).xs("clean_accuracy", level="objective")
    assert single["method_p"].isna().all() and single.loc["nsde_a", "method_difference"] == pytest.approx(0.15)


def test_without_test_records_there_is_no_paired_comparison(tmp_path):
    assert paired_versus_baseline(_search(ROWS)).empty  # nothing re-scored
    assert paired_versus_baseline(_tested_search(tmp_path, {})).empty  # re-scored, never tested


def test_the_report_names_splits_and_marks_flagged_trials(tmp_path):
    from analysis.report import check_table, front_table, held_out_table, render_report

    member = CORRECT.copy()
    member[:10] = False
    records = {"det_a": _record(_report(CORRECT)), "nsde_a": _record(_report(member)),
               "nsde_b": _record(_report(CORRECT))}
    s = _tested_search(tmp_path, records)
    t = s.trials
    t["started"], t["ended"] = np.arange(len(t)) * 10.0, np.arange(len(t)) * 10.0 + 5
    t["failure"] = np.where(t["status"] == "failed", "NonFiniteLossError: loss nan", None)
    t["check_eps_zero"], t["check_large_eps"], t["checks_passed"] = 1.0, 1.0, 1.0
    t.loc["nsde_c", ["check_large_eps", "checks_passed"]] = 0.0  # its attack failed: flagged, off the fronts
    t["flagged"], t["final_flagged"] = t["checks_passed"] == 0, False
    for col in ("check_eps_zero", "check_large_eps", "checks_passed"):
        t[f"final_{col}"] = t[col].where(t["rescored"])
        t[f"test_{col}"] = t[col].where(t["tested"])
    t.loc["nsde_b", "test_check_eps_zero"], t.loc["nsde_b", "test_checks_passed"] = 0.0, 0.0
    for name, _ in OBJ:
        t[f"test_{name}"] = t[name].where(t["tested"])
        t[f"test_{name}_low"], t[f"test_{name}_high"] = t[f"test_{name}"] - 0.05, t[f"test_{name}"] + 0.05
        t[f"test_{name}_n"] = 40.0
    t["test_seeds"] = np.where(t["tested"], 1.0, np.nan)

    checks = check_table(s)
    assert list(checks.index) == ["det_a", "nsde_a", "nsde_b", "nsde_c"]  # the front, then the flagged trial
    assert checks.loc["nsde_c", "role"] == "flagged" and checks.loc["nsde_c", "profile"] == "search"
    assert checks.loc["nsde_c", ["eps_zero", "large_eps", "all", "test"]].tolist() == ["pass", "FAIL", "FAIL", "-"]
    assert checks.loc["nsde_b", "test"] == "FAIL" and checks.loc["det_a", "all"] == "pass"
    held = held_out_table(s)
    assert list(held.index) == ["det_a", "nsde_a", "nsde_b"]
    assert held.loc["det_a", "role"] == "front, baseline" and held.loc["nsde_a", "role"] == "front, knee"
    assert held.loc["nsde_a", "clean_accuracy (max)"] == "0.92 [0.87, 0.97]" and held.loc["nsde_a", "seeds"] == 1
    assert held.loc["nsde_b", "attack checks (test)"] == "FAILED: eps_zero (flagged)"
    kept = _search(ROWS)  # with --keep-flagged a flagged trial may stay on the front, and is marked
    kept.trials["check_large_eps"], kept.trials["checks_passed"] = 1.0, 1.0
    kept.trials.loc["nsde_b", ["check_large_eps", "checks_passed"]] = 0.0
    kept.trials["flagged"] = kept.trials["checks_passed"] == 0
    assert "nsde_b" not in kept.front()
    kept.settings = {"keep_flagged": True}
    assert front_table(kept, final=False).loc["nsde_b", "attack checks"] == "FAILED: large_eps (flagged)"
    assert front_table(kept, final=False).loc["nsde_a", "attack checks"] == "pass"

    html = render_report(s)
    assert ">Held-out test estimates<" in html and ">Paired comparison with the baseline (test split)<" in html
    assert ">Sanity checks of the attack<" in html
    assert "Split: <b>test</b>" in html and "Split: <b>validation</b>" in html
    assert "FAILED: large_eps (flagged)" in html  # the All trials table marks it
    assert "0.001953" in html  # McNemar p = 2 * 0.5 ** 10 of nsde_a against the baseline
