"""analysis.importance: fANOVA per objective on searches whose answer is known."""

from __future__ import annotations

import re

import numpy as np
import optuna
import pytest

from analysis import Search
from analysis.importance import as_study, param_importances
from record import Objective, TrialRecord
from spaces import get_space

OBJECTIVES = (Objective("clean_accuracy", "max"), Objective("apgd_accuracy", "max"))


def _search(n: int, *, seed: int = 0) -> Search:
    """n trials of the `default` space drawn at random; clean accuracy reads only the learning
    rate and APGD accuracy only the noise intensity (0 without noise), as if each objective
    listened to one parameter."""
    space = get_space("default")
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        values = {}
        for name, p in space.params.items():
            if all(values.get(parent) in allowed for parent, allowed in p.when.items()):
                values[name] = _draw(p.distribution, rng)
        config = space.config(values)
        clean = 0.5 + 0.4 * np.log10(config["train/lr"] / 1e-3) + 0.01 * rng.standard_normal()
        apgd = 0.8 * config.get("noise/sigma", 0.0) + 0.01 * rng.standard_normal()
        records.append(TrialRecord(f"t{i}", "complete", config, {"clean_accuracy": clean, "apgd_accuracy": apgd,
                                                                 "evaluated": 1.0}))
    records.append(TrialRecord("pruned", "pruned", records[0].config, {"evaluated": 0.0}))
    return Search.from_records("known", records, OBJECTIVES, space=space.to_dict())


def _draw(dist, rng):
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return dist.choices[rng.integers(len(dist.choices))]
    if isinstance(dist, optuna.distributions.IntDistribution):
        return int(rng.integers(dist.low, dist.high + 1))
    if dist.log:
        return float(np.exp(rng.uniform(np.log(dist.low), np.log(dist.high))))
    return float(rng.uniform(dist.low, dist.high))


def test_each_objective_names_the_parameter_it_reads():
    imp = param_importances(_search(40))
    assert imp.reason is None and imp.trials == 40
    assert imp.table["clean_accuracy"].idxmax() == "train/lr"
    assert imp.table["apgd_accuracy"].idxmax() == "noise/shape"  # sigma is conditional: its parent carries it
    assert imp.table["clean_accuracy"]["train/lr"] > 0.5
    assert imp.table.sum().to_numpy() == pytest.approx([1.0, 1.0])
    # conditional parameters (not in every trial) are not rated
    assert "noise/hurst" not in imp.table.index and "noise/sigma" not in imp.table.index


def test_too_few_trials_is_said_not_plotted():
    imp = param_importances(_search(6))
    assert imp.table.empty and imp.trials == 6
    rated = int(re.search(r"over (\d+) parameters", imp.reason).group(1))
    assert imp.reason.startswith("not computed: 6 complete trials") and f"at least {max(10, 2 * rated)}" in imp.reason


def test_the_study_holds_the_complete_trials_in_the_space():
    study, skipped = as_study(_search(8))
    assert len(study.trials) == 8 and skipped == 0  # the pruned trial is not in it
    t = study.trials[0]
    assert t.values[0] == pytest.approx(_search(8).trials.loc["t0", "clean_accuracy"])
    assert set(t.distributions) == set(t.params)


def test_a_search_without_a_space_says_so():
    search = _search(12)
    search.space = {}
    assert "records no search space" in param_importances(search).reason
