"""--warm-start: an earlier search's complete trials enter the new study as prior trials, and
a space that cannot hold them is a one-line error naming the parameter."""

from __future__ import annotations

import dataclasses

import optuna
import pytest

from analysis import Search
from record import Objective, TrialRecord
from search.searcher import SAMPLERS, make_searcher
from search.warmstart import prior_trials
from spaces import get_space

OBJECTIVES = (Objective("clean_accuracy", "max"), Objective("apgd_accuracy", "max"))


def _earlier() -> Search:
    """An earlier `default` search: three complete trials (one without noise, one with NaN
    APGD accuracy), one pruned."""
    space = get_space("default")
    base = {**space.constants, "model/backbone": "resnet18", "model/drop_path_rate": 0.1, "train/lr": 2e-3,
            "train/weight_decay": 0.05, "train/batch_size": 32, "train/seed": 7}
    fbm = {**base, "noise/shape": "fbm", "noise/hurst": 0.3, "noise/sigma": 0.2, "noise/depth": 3}
    white = {**base, "noise/shape": "white", "noise/sigma": 0.5, "noise/depth": 2, "model/backbone": "convnext_atto"}
    plain = {**base, "noise/shape": "none"}
    records = [TrialRecord("a", "complete", fbm, {"clean_accuracy": 0.8, "apgd_accuracy": 0.3}),
               TrialRecord("b", "complete", plain, {"clean_accuracy": 0.9, "apgd_accuracy": 0.1}),
               TrialRecord("c", "complete", white, {"clean_accuracy": 0.7, "apgd_accuracy": float("nan")}),
               TrialRecord("d", "pruned", white, {"val_accuracy": 0.2})]
    return Search.from_records("earlier", records, OBJECTIVES, space=space.to_dict())


def test_the_complete_trials_become_prior_trials_with_the_spaces_parameters():
    prior = prior_trials(_earlier(), get_space("default"), OBJECTIVES)
    assert [t.user_attrs["prior_trial_id"] for t in prior] == ["a", "b"]  # c has a NaN objective, d was pruned
    a, b = prior
    assert a.params == {"model/backbone": "resnet18", "noise/shape": "fbm", "noise/hurst": 0.3, "noise/sigma": 0.2,
                        "noise/depth[resnet]": 3, "model/drop_path_rate": 0.1, "train/lr": 2e-3,
                        "train/weight_decay": 0.05, "train/batch_size": 32}
    assert "noise/hurst" not in b.params and a.values == [0.8, 0.3] and a.user_attrs["prior_search"] == "earlier"


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_a_warm_started_study_holds_the_earlier_trials_and_every_sampler_goes_on(sampler, tmp_path):
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    prior = prior_trials(_earlier(), get_space("default"), OBJECTIVES)
    searcher = make_searcher(get_space("default"), OBJECTIVES, sampler=sampler, seed=0, num_samples=6,
                             storage=storage, study_name="s", prior=prior)
    for i in range(4):  # the sampler reads the prior trials when it suggests
        searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", {"clean_accuracy": 0.5, "apgd_accuracy": 0.2, "evaluated": True})
    study = optuna.load_study(study_name="s", storage=storage)
    held = [t for t in study.trials if "prior_trial_id" in t.user_attrs]
    assert [t.user_attrs["prior_trial_id"] for t in held] == ["a", "b"]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in held)
    assert [t.values for t in held] == [[0.8, 0.3], [0.9, 0.1]]
    assert len(study.trials) == 2 + 4


def test_a_space_that_cannot_hold_the_earlier_trials_names_the_parameter():
    space = get_space("default")
    narrow = dataclasses.replace(space, params={**space.params, "train/lr": dataclasses.replace(
        space.params["train/lr"], distribution=optuna.distributions.FloatDistribution(3e-3, 1e-2, log=True))})
    with pytest.raises(ValueError, match=r"trial a does not fit the new space: train/lr: 0.002 is outside"):
        prior_trials(_earlier(), narrow, OBJECTIVES)
    other_epochs = dataclasses.replace(space, constants={**space.constants, "train/epochs": 9})
    with pytest.raises(ValueError, match=r"train/epochs is 5 there but 9 in the new space"):
        prior_trials(_earlier(), other_epochs, OBJECTIVES)
    with pytest.raises(ValueError, match=r"no values of the objectives \['abc_auroc'\]"):
        prior_trials(_earlier(), space, (Objective("abc_auroc", "max"),))
