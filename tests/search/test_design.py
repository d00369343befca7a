"""search.final for a designed space: a resumed study keeps the test scores it already wrote."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from types import SimpleNamespace

import pytest
import torch

from nsde.data import PRESETS, prepare
from nsde.metrics import EvalConfig, evaluate
from nsde.models import ModelConfig, build_model
from record import TEST_PREFIX, TEST_REPORTS, TrialRecord
from search.final import _score_design
from search.trainable import evaluation_metrics


def test_trials_scored_before_an_interruption_keep_their_test_records(tmp_path, monkeypatch):
    data = prepare(dataclasses.replace(PRESETS["tiny"], examples_per_class=4, cache_dir=str(tmp_path / "c")),
                   progress=False)
    torch.manual_seed(0)
    cfg = EvalConfig(apgd_steps=1, eot_iter=1, attack_subset=4, abc_subset=4, abc_samples=2, ig_steps=2,
                     stability_subset=2, stability_draws=1, sweep_intensities=(0.1,), snr_levels=(), checks=False,
                     resamples=20)
    report = evaluate(build_model(ModelConfig(backbone="resnet18", num_classes=len(data.class_names))), data, cfg,
                      split="test")
    (tmp_path / TEST_REPORTS).mkdir()
    (tmp_path / TEST_REPORTS / "t1.json").write_text(json.dumps({"seeds": [0], "reports": [report.to_dict()]}))
    scored = []
    monkeypatch.setattr("search.final._write_held_out", lambda ctx, held, seeds: scored.extend(r.trial_id for r in held))
    ctx = SimpleNamespace(exp_dir=tmp_path, timed=lambda key: contextlib.nullcontext())
    done, todo = (TrialRecord(t, "complete", {"train/seed": 0}, {}) for t in ("t1", "t2"))
    _score_design(ctx, [done, todo])
    assert scored == ["t2"]  # only the trial without a record is scored again
    expected = {f"{TEST_PREFIX}{k}": v for k, v in evaluation_metrics(report).items()}
    assert done.test[f"{TEST_PREFIX}clean_accuracy"] == pytest.approx(expected[f"{TEST_PREFIX}clean_accuracy"])
    assert done.test[f"{TEST_PREFIX}seeds"] == 1.0 and set(expected) <= set(done.test)


def test_points_runs_one_block_of_a_designed_space_and_names_a_bad_block(tmp_path):
    """--points START:STOP: the block's points in the design's order, counted as the trials to run;
    a bad block, or a sampled space, is an error that names the value and the rule."""
    from search.run import _prepare
    from search.settings import SearchSettings
    from spaces import get_space

    space = get_space("confirm-pilot")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ctx = _prepare(SearchSettings(space="confirm-pilot", points="4:8", mlflow_uri=uri, storage_path=str(tmp_path)))
    assert ctx.space.points == space.points[4:8] and ctx.settings.num_samples == 4
    assert SearchSettings(points=":2").point_indices(space) == [0, 1]
    assert SearchSettings(points="12:").point_indices(space) == [12, 13]
    assert SearchSettings().point_indices(space) is None
    # several blocks, in the design's order whatever order they are named in
    assert SearchSettings(points="7:9,0:2").point_indices(space) == [0, 1, 7, 8]
    ctx = _prepare(SearchSettings(space="confirm-pilot", points="0:3,4:6", mlflow_uri=uri,
                                  storage_path=str(tmp_path)))
    assert ctx.space.points == space.points[0:3] + space.points[4:6] and ctx.settings.num_samples == 5
    for bad, rule in (("3", "START:STOP"), ("a:b", "START:STOP"), ("8:4", "0 <= START < STOP <= 14"),
                      ("0:15", "0 <= START < STOP <= 14"), ("0:3,", "START:STOP"), ("0:4,3:6", "overlaps")):
        with pytest.raises(ValueError, match=rule):
            SearchSettings(points=bad).point_indices(space)
    with pytest.raises(ValueError, match="only a designed space"):
        SearchSettings(points="0:2").point_indices(get_space("default"))
    with pytest.raises(ValueError, match="needs the design's first point"):
        _prepare(SearchSettings(space="confirm-pilot", points="4:8", mlflow_uri=uri, storage_path=str(tmp_path),
                                constraints=("clean_accuracy>=baseline-0.02",)))


def test_resuming_a_block_needs_the_block_it_ran(tmp_path):
    """A block's parent run records its --points (a real MLflow store); --resume with another
    block, or without one, is refused with both named."""
    from mlflow.tracking import MlflowClient

    from search.tracking import check_resumed_block, start_parent_run

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    _, block = start_parent_run(client, "e", "b", {"space": "confirm-pilot", "points": "4:6"}, {})
    _, whole = start_parent_run(client, "e", "w", {"space": "confirm-pilot"}, {})
    check_resumed_block(client, block, "b", "4:6")
    check_resumed_block(client, whole, "w", None)
    with pytest.raises(ValueError, match=r"ran --points 4:6, but this call has --points 6:8; resume it with the same"):
        check_resumed_block(client, block, "b", "6:8")
    with pytest.raises(ValueError, match=r"ran no --points \(every point\), but this call has --points 0:4"):
        check_resumed_block(client, whole, "w", "0:4")
