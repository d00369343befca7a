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
