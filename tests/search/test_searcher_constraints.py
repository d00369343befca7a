"""--constraint in the searcher: violations reach Optuna's samplers, and a bound relative to the
baseline waits for the baseline's numbers."""

from __future__ import annotations

import optuna
import pytest

from record import Objective, parse_constraints
from search.searcher import SAMPLERS, make_searcher
from spaces import get_space

OBJECTIVES = (Objective("clean_accuracy", "max"), Objective("apgd_accuracy", "max"))
KEY, REL = "clean_accuracy>=0.7", "clean_accuracy>=baseline-0.02"  # the constraints' keys on the Optuna trials


def _result(clean: float, apgd: float) -> dict:
    return {"clean_accuracy": clean, "apgd_accuracy": apgd, "evaluated": True}


def _searcher(tmp_path, constraints, sampler="tpe"):
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    searcher = make_searcher(get_space("default"), OBJECTIVES, sampler=sampler, seed=0, num_samples=8,
                             storage=storage, study_name="s", constraints=parse_constraints(constraints))
    return searcher, lambda: {t.number: t for t in optuna.load_study(study_name="s", storage=storage).trials}


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_each_trial_carries_its_violations_and_every_sampler_goes_on(tmp_path, sampler):
    searcher, trials = _searcher(tmp_path, ["clean_accuracy>=0.7"], sampler)
    for i, clean in enumerate([0.8, 0.6, 0.75, 0.5, 0.9]):
        searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", _result(clean, 0.2))
    study = trials()
    assert [study[i].constraints[KEY] for i in range(5)] == pytest.approx([-0.1, 0.1, -0.05, 0.2, -0.2])
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.values())


def test_a_relative_bound_waits_for_the_baseline_then_compares_with_it(tmp_path):
    searcher, trials = _searcher(tmp_path, ["clean_accuracy>=baseline-0.02"])
    searcher.suggest("base")  # the space's first point: the deterministic baseline
    searcher.suggest("early")
    searcher.suggest("late")
    assert searcher.baseline == "base"
    searcher.on_trial_complete("early", _result(0.80, 0.4))  # ends before the baseline: held
    assert trials()[1].state == optuna.trial.TrialState.RUNNING
    searcher.on_trial_complete("base", _result(0.90, 0.1))
    searcher.on_trial_complete("late", _result(0.89, 0.2))
    study = trials()
    assert study[0].constraints[REL] == pytest.approx(-0.02)  # its own reference
    assert study[1].state == optuna.trial.TrialState.COMPLETE
    assert study[1].constraints[REL] == pytest.approx(0.08)  # 0.80 < 0.90 - 0.02: violated
    assert study[2].constraints[REL] == pytest.approx(-0.01)


def test_a_failed_baseline_releases_the_waiting_trials_unchecked(tmp_path):
    searcher, trials = _searcher(tmp_path, ["clean_accuracy>=baseline-0.02"])
    searcher.suggest("base")
    searcher.suggest("early")
    searcher.on_trial_complete("early", _result(0.5, 0.4))
    searcher.on_trial_complete("base", error=True)
    study = trials()
    assert study[0].state == optuna.trial.TrialState.FAIL
    assert study[1].state == optuna.trial.TrialState.COMPLETE and study[1].constraints[REL] == 0.0


def test_the_held_trials_survive_tunes_save_and_restore(tmp_path):
    searcher, trials = _searcher(tmp_path, ["clean_accuracy>=baseline-0.02"])
    searcher.suggest("base")
    searcher.suggest("early")
    searcher.on_trial_complete("early", _result(0.80, 0.4))
    searcher.save(str(tmp_path / "searcher.pkl"))
    (tmp_path / "other").mkdir()
    restored, _ = _searcher(tmp_path / "other", [])  # Tune builds it anew, then restores the snapshot
    restored.restore(str(tmp_path / "searcher.pkl"))
    restored.on_trial_complete("base", _result(0.90, 0.1))
    assert trials()[1].constraints[REL] == pytest.approx(0.08)
