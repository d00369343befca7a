"""analysis.study on hand-made test reports whose comparisons are known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.load import Search
from analysis.study import (BASELINE, FARTHEST, METRICS, Study, cell_of, front_figure, hurst_figure, levels_markdown,
                            markdown, record)
from record import TEST_FILE, Objective, TrialRecord
from spaces import space_from_dict

N = 60  # test examples
KINDS = ("gaussian", "fbm:0.1", "fbm:0.5", "fbm:0.9")
LEVELS = (-10.0, 0.0, 10.0)


def _report(correct: np.ndarray, areas: dict[str, float]) -> dict:
    """A test report whose every per-example block is built from `correct` (and the sweep's
    per-kind areas from `areas`), on the same N examples."""
    idx = list(range(1000, 1000 + N))
    c = correct.astype(float).tolist()
    locations = [FARTHEST[i % 2] if i % 3 else "panel" for i in range(N)]
    sweep = {f"area_{k}": [areas[k]] * N for k in KINDS}
    accuracy = {"value": float(correct.mean())}
    chance = [1 / 16] * N
    return {
        "split": "test",
        "clean": accuracy,
        "settings": {"resamples": 400, "seed": 0, "sweep_kinds": list(KINDS)},
        # the summaries `Study.levels` reads: each kind's accuracy at 0.25 is its area here
        "sweep": {k: [[0.25, {"value": areas[k]}]] for k in KINDS},
        "snr": [[lv, accuracy] for lv in LEVELS],
        "apgd": {"0.05": accuracy},
        "abc": {"mean_correct": {"value": 0.7}},
        "per_example": {
            "clean": {"index": idx, "correct": c, "location": locations},
            "sweep": {"index": idx, "area": np.mean([sweep[f"area_{k}"] for k in KINDS], axis=0).tolist(),
                      "clean": c, "chance": chance, **sweep},
            "snr": {"index": idx, "area": c, "clean": c, "chance": chance, **{f"correct_{lv:g}": c for lv in LEVELS}},
            "apgd": {"index": idx, "robust_mean": c, "clean": c, "chance": chance},
            "abc": {"index": idx, "score": np.linspace(0, 1, N).tolist(), "correct": c},
            "stability": {"index": idx, "value": [0.5] * N},
        },
    }


HALF = np.arange(N) % 2 == 0
FLAT = {k: 0.5 for k in KINDS}
CELLS = {  # config -> (correctness, sweep areas) of both seeds
    "none": ({"noise/shape": "none"}, HALF, FLAT),
    "fbm": ({"noise/shape": "fbm", "noise/hurst": 0.5, "noise/sigma": 0.1}, np.ones(N, bool),
            {**FLAT, "fbm:0.5": 1.0}),
    "white": ({"noise/shape": "white", "noise/sigma": 0.1}, HALF, FLAT),
}


@pytest.fixture
def study(tmp_path):
    return _study(tmp_path, CELLS)


def _study(tmp_path, cells: dict) -> Study:
    records, files = [], {}
    for seed in (0, 1):
        for key, (config, correct, areas) in cells.items():
            tid = f"{key}{seed}"
            path = tmp_path / f"{tid}.json"
            path.write_text(json.dumps({"seeds": [seed], "reports": [_report(correct, areas)]}))
            files[tid] = path
            records.append(TrialRecord(tid, "complete", {**config, "train/seed": seed},
                                       metrics={"snr_accuracy": {"none": 0.4, "fbm": 0.9, "white": 0.5}.get(key, 0.6)},
                                       test={"test_clean_accuracy": float(correct.mean())}, started=float(seed)))
    space = space_from_dict({"name": "s", "params": {
        "noise/shape": {"choices": ["none", "fbm", "white"]},
        "noise/hurst": {"choices": [0.5], "when": {"noise/shape": "fbm"}},
        "noise/sigma": {"choices": [0.1], "when": {"noise/shape": ["fbm", "white"]}},
        "train/seed": {"choices": [0, 1]}}})
    search = Search.from_records("s", records, [Objective("snr_accuracy", "max")], space=space.to_dict(),
                                 fetch=lambda tid, name: files.get(tid) if name == TEST_FILE else None)
    return Study.of(search)


def test_cells_are_configurations_without_their_seed():
    assert cell_of({"noise/shape": "none", "train/seed": 3}) == BASELINE
    assert cell_of({"noise/shape": "fbm", "noise/hurst": 0.1, "noise/sigma": 0.3}) == "fbm H=0.1 sigma=0.3"
    assert cell_of({"noise/shape": "white", "noise/sigma": 0.1, "noise/hurst": 0.5}) == "white sigma=0.1"


def test_a_practitioners_arm_is_a_cell_of_its_own_named_by_every_setting(tmp_path):
    assert cell_of({"noise/shape": "none", "augment/kind": "signal"}) == "none augment=signal snr=0..20"
    assert cell_of({"noise/shape": "none", "augment/kind": "signal", "augment/snr_low": -5.0}) != cell_of(
        {"noise/shape": "none", "augment/kind": "signal"})  # another range, another arm
    assert cell_of({"noise/shape": "none", "augment/kind": "none", "adversarial/eps": 0.0}) == BASELINE
    assert (cell_of({"noise/shape": "fbm", "noise/hurst": 0.5, "noise/sigma": 0.1, "augment/kind": "fbm",
                     "augment/high": 0.2, "adversarial/eps": 0.15, "adversarial/ramp_epochs": 5})
            == "fbm H=0.5 sigma=0.1 augment=fbm s=0..0.2 aug_H=0.5 adv=0.15 steps=5 ramp=5")
    augmented = {"noise/shape": "white", "noise/sigma": 0.1, "augment/kind": "gaussian", "augment/high": 0.2}
    study = _study(tmp_path, {**CELLS, "aug": (augmented, np.ones(N, bool), FLAT)})
    cell = "white sigma=0.1 augment=gaussian s=0..0.2"
    assert study.cells() == [BASELINE, "fbm H=0.5 sigma=0.1", "white sigma=0.1", cell]
    assert study.paired().loc[(cell, "clean_accuracy")]["difference"] == pytest.approx(0.5)
    # it is an arm, not a level of shape or sigma: the factor tests see the same trials as without it
    (tmp_path / "plain").mkdir()
    plain = _study(tmp_path / "plain", CELLS)
    assert not plain.factor_tests().empty and study.factor_tests().equals(plain.factor_tests())


def test_each_cell_is_paired_with_the_baseline_seed_by_seed(study):
    assert study.cells() == [BASELINE, "fbm H=0.5 sigma=0.1", "white sigma=0.1"]
    member, base, seeds = study.pair("fbm H=0.5 sigma=0.1")
    assert seeds == [0, 1] and len(member["reports"]) == len(base["reports"]) == 2
    paired = study.paired()
    assert set(paired.index.get_level_values("metric")) == {m for m, _ in METRICS}
    # every fbm prediction is right, half the baseline's: +0.5, significant after Holm over 2 cells
    row = paired.loc[("fbm H=0.5 sigma=0.1", "clean_accuracy")]
    assert row["difference"] == pytest.approx(0.5) and row["low"] > 0.3 and row["seeds"] == 2
    assert row["significant_models"] and row["p_holm"] >= row["p"] and row["mcnemar_p"] < 1e-6
    assert row["p_bound"] and row["p"] == pytest.approx(1 / 400)  # no resample crossed 0: a bound, 1/B
    assert len(row["mcnemar_p_seeds"]) == 2 and max(row["mcnemar_p_seeds"]) < 1e-6
    # ... and at the method level: the seeds agree exactly, so the residual is 0 and the 0.5 certain
    assert row["method_difference"] == pytest.approx(0.5) and row["significant"] and row["family"] == "exploratory"
    assert row["method_low"] == pytest.approx(0.5) and row["sigma"] < 1e-12 and row["mde"] < 1e-9
    # the white cell is the baseline again: no difference, nothing significant at either level
    same = paired.loc["white sigma=0.1"]
    assert (same["difference"] == 0).all() and not same["significant"].any() and not same["significant_models"].any()
    assert not paired["checks_failed"].any()  # the hand-made reports ran no attack check
    # a location's accuracy is over that location's examples only
    loc = paired.loc[("fbm H=0.5 sigma=0.1", f"location_acc_{FARTHEST[0]}")]
    assert loc["n"] == sum(1 for i in range(N) if i % 3 and i % 2 == 0)
    # attribution stability is minimised: equal values give 0 in either direction
    assert paired.loc[("fbm H=0.5 sigma=0.1", "attribution_stability")]["difference"] == 0


def test_the_gain_at_the_matched_input_noise_is_measured_against_the_others(study):
    assert study.input_noises() == [f"sweep_area@{k}" for k in KINDS] + ["snr_accuracy"]
    crossing = study.crossing()
    gains = crossing.loc["fbm H=0.5 sigma=0.1"]["difference"]
    assert gains["sweep_area@fbm:0.5"] == pytest.approx(0.5) and gains["sweep_area@gaussian"] == 0
    match = study.shape_match()
    # fbm H 0.5 gains 0.5 at fbm:0.5 and 0 at the three others; white gains nothing anywhere
    assert match.loc["fbm H=0.5 sigma=0.1", "matched"] == "fbm:0.5"
    assert match.loc["fbm H=0.5 sigma=0.1", "contrast"] == pytest.approx(0.5)
    assert match.loc["white sigma=0.1", "matched"] == "gaussian"
    assert match.loc["white sigma=0.1", "contrast"] == 0 and not match.loc["white sigma=0.1", "significant"]


def test_cell_means_best_cells_record_tables_and_figures(study):
    means = study.cell_means()
    assert means.loc[BASELINE, "clean_accuracy"] == pytest.approx(0.5) and means.loc[BASELINE, "seeds"] == 2
    assert means.loc["fbm H=0.5 sigma=0.1", "clean_accuracy_low"] <= 1.0
    # chosen on the validation numbers (fbm 0.9 > white 0.5), the baseline never among them
    assert study.best_cells(k=1) == ["fbm H=0.5 sigma=0.1"]
    imp = study.importance()  # six trials: too few to rate parameters, and it says so
    assert set(imp) == {"all trials", "fbm and stationary trials"}
    assert imp["all trials"].reason.startswith("not computed: 6 complete trials")
    rec = record(study)
    assert len(rec["trials"]) == 6 and {r["cell"] for r in rec["trials"]} == set(study.cells())
    # what the figures chose by is kept, with its split; the method-level tables are in it
    assert rec["validation_ranking"]["cells"] == {"fbm H=0.5 sigma=0.1": 0.9, "white sigma=0.1": 0.5}
    assert rec["validation_ranking"]["split"] == "val" and rec["validation_ranking"]["chosen"][0] == "fbm H=0.5 sigma=0.1"
    assert {r["metric"] for r in rec["power"]} >= {"clean_accuracy"} and rec["trials"][0]["shape"] in ("none", "fbm", "white")
    assert json.loads(json.dumps(rec))["paired"][0]["cell"] == "fbm H=0.5 sigma=0.1"
    text = markdown(study.paired(), study.shape_match(), means)
    assert "| fbm H=0.5 sigma=0.1 | +0.500 [" in text and " *" in text
    assert hurst_figure(study, study.paired()).axes and front_figure(study, means).axes


def test_levels_reads_each_trials_accuracy_at_every_noise_level_and_eps(study):
    levels = study.levels()
    assert len(levels) == 6 and set(levels["cell"]) == set(study.cells())
    assert levels.loc["fbm0", "fbm:0.5@0.25"] == 1.0 and levels.loc["fbm0", "gaussian@0.25"] == 0.5
    assert levels.loc["none1", "apgd@0.05"] == pytest.approx(0.5) and levels.loc["fbm1", "snr@-10"] == 1.0
    assert (levels["abc_correct"] == 0.7).all()
    assert {r["trial_id"] for r in record(study)["levels"]} == set(levels.index)
    text = levels_markdown(levels)  # the cell means over seeds, with the seeds' range
    assert "| fbm H=0.5 sigma=0.1 | 2 | 1.000 (1.000-1.000) | 0.500 (0.500-0.500) | 1.000 (1.000-1.000) |" in text
