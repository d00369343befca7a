"""An objective registered in this test alone, with no other file edited, flows through the
whole platform: `evaluate`, `EvalReport.objectives` and their intervals, the replicate
summary over seeds, a paired comparison, the CLI's tables, the search's `--objectives` (the
direction Optuna is given), a trial's reported metrics and the HTML report with its held-out
comparison (docs/extending.md walks through the same two registrations).

Two objectives: `first_half_accuracy`, a new statistic of the clean stage's per-example
values (accuracy on the first half of the split's examples), and `mean_confidence`, which
needs values no stage writes, so it comes with a stage of its own.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from analysis import Search
from analysis.compare import paired_test
from analysis.report import render_report
from nsde.data import PRESETS, prepare
from nsde.metrics import (
    OBJECTIVE_METRICS,
    EvalConfig,
    ObjectiveSpec,
    Stage,
    evaluate,
    objective,
    register_objective,
    register_stage,
    seed_estimates,
    unregister_objective,
    unregister_stage,
)
from nsde.metrics.__main__ import comparison_tables
from nsde.models import ModelConfig, NoiseConfig, build_model
from record import METRICS, TEST_FILE, TEST_PREFIX, TrialRecord, parse_objectives
from search.searcher import make_searcher
from search.trainable import epoch_result, evaluation_metrics
from spaces import get_space


def first_half(values: np.ndarray) -> float:
    """Accuracy on the first half of the rows (the split's first examples)."""
    return float(values[: len(values) // 2, 0].mean())


def confidence_stage(ev, idx: np.ndarray) -> dict[str, list]:
    """The softmax probability of each example's predicted class."""
    device = next(ev.model.parameters()).device
    with torch.no_grad():
        p = torch.softmax(ev.model(ev.x[idx].to(device)), dim=-1).amax(dim=-1)
    return {"confidence": p.cpu().tolist()}


@pytest.fixture
def new_objectives():
    register_stage(Stage("confidence", confidence_stage, subset="abc_subset", salt=4))
    specs = [register_objective(ObjectiveSpec("first_half_accuracy", "max", "clean", ("correct",), first_half,
                                              bounds=(0.0, 1.0), doc="clean accuracy on the first half of the split")),
             register_objective(ObjectiveSpec("mean_confidence", "max", "confidence", ("confidence",),
                                              bounds=(0.0, 1.0), doc="mean softmax probability of the prediction"))]
    yield specs
    for spec in specs:
        unregister_objective(spec.name)
    unregister_stage("confidence")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return prepare(dataclasses.replace(PRESETS["tiny"], examples_per_class=6,
                                       cache_dir=str(tmp_path_factory.mktemp("cache"))), progress=False)


CFG = EvalConfig(apgd_steps=1, eot_iter=1, attack_subset=4, abc_subset=8, abc_samples=2, ig_steps=2,
                 stability_subset=2, stability_draws=1, sweep_intensities=(0.1,), snr_levels=(), checks=False,
                 resamples=200)
NAMES = ("first_half_accuracy", "mean_confidence")


def _models():
    torch.manual_seed(0)
    plain = build_model(ModelConfig(backbone="resnet18", num_classes=16))
    torch.manual_seed(1)
    noisy = build_model(ModelConfig(backbone="resnet18", num_classes=16, noise=NoiseConfig(sigma=0.2, depth=2)))
    return plain, noisy


def test_a_registered_objective_is_scored_with_its_interval_and_paired(new_objectives, tiny):
    plain, noisy = _models()
    report = evaluate(plain, tiny, CFG)
    # evaluate ran the new stage, timed it and filed its values; the report holds both objectives
    assert len(report.per_example["confidence"]["index"]) == 8 and "confidence" in report.seconds
    assert set(NAMES) <= set(report.objectives) and set(report.objectives) == set(OBJECTIVE_METRICS)
    correct = np.asarray(report.per_example["clean"]["correct"], dtype=float)
    assert report.objectives["first_half_accuracy"] == pytest.approx(correct[: len(correct) // 2].mean())
    confidence = np.asarray(report.per_example["confidence"]["confidence"])
    assert report.objectives["mean_confidence"] == pytest.approx(confidence.mean())
    for name in NAMES:  # a bootstrap interval over the examples, inside the objective's bounds
        est = report.objective_estimates()[name]
        assert 0.0 <= est.low <= est.high <= 1.0
        assert est.n == len(report.per_example[objective(name).stage]["index"])
    # the seeds' summary (two-level bootstrap): one report a seed
    other = evaluate(noisy, tiny, CFG)
    over = seed_estimates([report, other], list(NAMES), resamples=100)
    assert over["mean_confidence"].n == 2
    assert over["mean_confidence"].value == pytest.approx(np.mean([report.objectives["mean_confidence"],
                                                                   other.objectives["mean_confidence"]]))
    # paired with another model on the same examples: the difference of the statistics
    table = paired_test(other.to_dict(), report.to_dict(), [(n, "max") for n in NAMES], resamples=200)
    for name in NAMES:
        assert table.loc[name, "difference"] == pytest.approx(other.objectives[name] - report.objectives[name])
        assert -1.0 <= table.loc[name, "low"] <= table.loc[name, "high"] <= 1.0 and table.loc[name, "n"] > 0
    assert math.isnan(table.loc["mean_confidence", "mcnemar_p"])  # not binary: no McNemar
    # the CLI's tables: the clean stage's table and Table 4 (a stage with no table of its own)
    text = comparison_tables({"plain": report, "noisy": other})
    assert "| first_half_accuracy" in text and "| mean_confidence" in text
    assert "mean_confidence (max): mean softmax probability of the prediction" in text


def test_a_registered_objective_is_searched_reported_and_compared_on_test(new_objectives, tiny, tmp_path):
    # train_seconds (lower for the NSDE below) keeps the NSDE on the front, so that it is compared
    objectives = parse_objectives("first_half_accuracy,mean_confidence:max,clean_accuracy,train_seconds")
    assert [(o.name, o.mode) for o in objectives] == [("first_half_accuracy", "max"), ("mean_confidence", "max"),
                                                      ("clean_accuracy", "max"), ("train_seconds", "min")]
    assert "mean_confidence" in METRICS  # and so a valid --constraint metric
    # Optuna is told each objective's direction
    searcher = make_searcher(get_space("default"), objectives, sampler="random", seed=0, num_samples=2,
                             storage=None, study_name="new-objective")
    assert searcher.metric == [o.name for o in objectives] and searcher.mode == ["max", "max", "max", "min"]
    # a trial's per-epoch results carry the new keys (NaN); its last result their values and intervals
    from nsde.train import EpochMetrics
    assert math.isnan(epoch_result(EpochMetrics(1, 1.0, 0.1, 1e-3, 1.0, 10.0))["mean_confidence"])
    plain, noisy = _models()
    val = {"base": evaluate(plain, tiny, CFG), "nsde": evaluate(noisy, tiny, CFG)}
    test = {"base": evaluate(plain, tiny, CFG, split="test"), "nsde": evaluate(noisy, tiny, CFG, split="test")}
    seconds = {"base": 2.0, "nsde": 1.0}
    metrics = {tid: {**evaluation_metrics(r), "val_accuracy": 0.1, "train_seconds": seconds[tid]}
               for tid, r in val.items()}
    assert {"first_half_accuracy_low", "first_half_accuracy_high", "mean_confidence_n"} <= set(metrics["nsde"])
    configs = {"base": {"model/backbone": "resnet18", "noise/shape": "none", "noise/sigma": 0.0},
               "nsde": {"model/backbone": "resnet18", "noise/shape": "fbm", "noise/hurst": 0.5, "noise/sigma": 0.2}}
    records = [TrialRecord(tid, "complete", configs[tid], metrics[tid], run_id=f"run-{tid}", final=metrics[tid],
                           test={TEST_PREFIX + k: v for k, v in evaluation_metrics(test[tid]).items()},
                           started=float(i), ended=float(i + 1))
               for i, tid in enumerate(("base", "nsde"))]
    for r in records:
        r.test[TEST_PREFIX + "seeds"] = 1.0

    def fetch(trial_id: str, name: str):
        if name != TEST_FILE:
            return None
        path = tmp_path / f"{trial_id}.json"
        path.write_text(json.dumps({"seeds": [0], "reports": [test[trial_id].to_dict()]}))
        return path

    search = Search.from_records("new-objective", records, objectives, baseline="base", fetch=fetch)
    assert search.reference_point()[:2].tolist() == [0.0, 0.0]  # the specs' bounds
    assert "nsde" in search.front(final=True)
    page = render_report(search)
    assert "first_half_accuracy (max)" in page and "mean_confidence (max)" in page  # fronts and held-out tables
    held = page[page.index("Paired comparison with the baseline"):]
    assert "first_half_accuracy" in held and "mean_confidence" in held  # paired on the test split


def test_an_objective_registers_once_and_an_unknown_one_lists_the_registered(new_objectives):
    with pytest.raises(ValueError, match="'first_half_accuracy' is already registered"):
        register_objective(new_objectives[0])
    with pytest.raises(ValueError, match=r"unknown objective 'speed'; known objectives: \[.*'mean_confidence'"):
        objective("speed")
    with pytest.raises(ValueError, match=r"unknown stage 'nowhere'; known stages: \[.*'confidence'\]"):
        ObjectiveSpec("x", "max", "nowhere", ("a",))
    with pytest.raises(ValueError, match=r"unknown direction 'up'"):
        ObjectiveSpec("x", "up", "clean", ("correct",))
