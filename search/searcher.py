"""Optuna as Ray Tune's searcher: samplers by name, the space as define-by-run, and the
early-stopping fix.

Ray's `OptunaSearch.on_trial_complete` tells Optuna whatever the trial's *last* result
holds. When a scheduler (ASHA) stops a trial early, that last result is a partial,
per-epoch one, and Optuna would record it as COMPLETE. `NSDEOptunaSearch` tells Optuna
such trials are PRUNED, so no partial values enter the multi-objective study.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from search.config import Objective
from search.trainable import EVALUATED
from spaces import SearchSpace

__all__ = ["SAMPLERS", "NSDEOptunaSearch", "define_by_run", "make_sampler", "make_searcher"]

logger = logging.getLogger(__name__)

SAMPLERS = ("tpe", "nsga2", "gp", "random", "seeded")


def make_sampler(name: str, *, seed: int, num_samples: int) -> optuna.samplers.BaseSampler:
    """An Optuna sampler by name.

    "seeded" is a scrambled Sobol (quasi-Monte-Carlo) sequence: space-filling and fixed by
    the seed, useful as a reproducible design to compare samplers against.
    """
    startup = max(2, min(10, num_samples // 3))  # Optuna's default of 10 random trials would be the whole of a small search
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, num_samples // 2)))
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "seeded":
        return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed, warn_independent_sampling=False)
    raise ValueError(f"unknown sampler {name!r}; known samplers: {list(SAMPLERS)}")


def define_by_run(space: SearchSpace) -> Callable[[Any], dict[str, Any]]:
    """The space as an Optuna define-by-run function: suggests each active parameter in order.

    It returns the constants and the config keys of parameters whose name differs from the
    key they set (e.g. "noise/depth[resnet]" -> "noise/depth"), so Tune hands the trainable
    a config in the platform's keys. It does no other work (Ray warns if this is slow).
    """
    return _DefineByRun(space)


class _DefineByRun:
    """A picklable define-by-run function (Tune pickles the searcher into its experiment state)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    def __call__(self, trial) -> dict[str, Any]:
        # Ray wraps the Optuna trial to capture suggested values under their parameter
        # names; suggest on the trial itself so that only the platform's keys reach Tune.
        trial = getattr(trial, "ot_trial", trial)
        values: dict[str, Any] = {}
        for name, param in self.space.params.items():
            if all(values.get(parent) in allowed for parent, allowed in param.when.items()):
                values[name] = _suggest(trial, name, param.distribution)
        return self.space.config(values)


def _suggest(trial: optuna.Trial, name: str, dist) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


class NSDEOptunaSearch(OptunaSearch):
    """`OptunaSearch` that records scheduler-stopped trials as PRUNED, not COMPLETE."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        if error or not result or not result.get(EVALUATED):
            return self._tell(trial_id, TrialState.FAIL if error else TrialState.PRUNED)
        values = [result.get(m) for m in self.metric]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            # e.g. ABC over correct predictions when none is correct. Optuna refuses NaN in a
            # COMPLETE trial (Ray would only log that and leave the trial RUNNING): FAIL it.
            logger.warning("trial %s has non-finite objectives %s; recorded as FAIL in Optuna", trial_id, values)
            return self._tell(trial_id, TrialState.FAIL)
        return super().on_trial_complete(trial_id, result, error)

    def fail_orphans(self) -> int:
        """After a driver crash: Optuna trials left RUNNING that no Tune trial owns (asked after
        the searcher's last snapshot) are told FAIL, so the study holds no phantom trials."""
        owned = {t.number for t in self._ot_trials.values()}
        orphans = [t for t in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                   if t.number not in owned]
        for t in orphans:
            self._ot_study.tell(t.number, None, state=TrialState.FAIL, skip_if_finished=True)
        return len(orphans)

    def _tell(self, trial_id: str, state: TrialState) -> None:
        # skip_if_finished: a trial replayed after a --resume may have been told already
        self._ot_study.tell(self._ot_trials[trial_id], None, state=state, skip_if_finished=True)
        self._completed_trials.add(trial_id)


def make_searcher(space: SearchSpace, objectives: Sequence[Objective], *, sampler: str, seed: int, num_samples: int,
                  storage: str | None, study_name: str) -> NSDEOptunaSearch:
    """The searcher of a search: the study lives in `storage` (an Optuna RDB URL) when given."""
    return NSDEOptunaSearch(
        space=define_by_run(space),
        metric=[o.name for o in objectives],
        mode=[o.mode for o in objectives],
        points_to_evaluate=[dict(p) for p in space.points] or None,
        sampler=make_sampler(sampler, seed=seed, num_samples=num_samples),
        study_name=study_name,
        storage=optuna.storages.RDBStorage(storage) if storage else None,
    )
