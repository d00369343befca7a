"""Optuna as Ray Tune's searcher: samplers by name, the space as define-by-run, and a
searcher that keeps early-stopped trials out of the study's COMPLETE ones.

`NSDEOptunaSearch` is a `ray.tune.search.Searcher` over an Optuna study through Optuna's
public ask/tell API (Ray's own `OptunaSearch` would have to be reached into). It tells
Optuna COMPLETE only for a trial whose last result carries its evaluation
(`record.EVALUATED`): when a scheduler (ASHA) stops a trial early, its last result is a
partial, per-epoch one, and Ray's `OptunaSearch` would record those values as final. A
trial's MOASHA rung results (`rung_epoch`, `rung_<objective>`) become user attributes of its
Optuna trial (`rung_<epoch>`: {objective: value}), and a trial stopped at a rung also gets
`stopped_at_rung`: PRUNED, with what it showed kept, never COMPLETE with early values.
"""

from __future__ import annotations

import logging
import math
import pickle
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState
from ray.tune.search import Searcher

from record import EVALUATED, RUNG_EPOCH, RUNG_PREFIX, Constraint, Objective, baseline_trial, unflatten, violations
from spaces import SearchSpace

__all__ = ["SAMPLERS", "NSDEOptunaSearch", "define_by_run", "fail_orphans", "make_sampler", "make_searcher",
           "nsga2_population"]

logger = logging.getLogger(__name__)

SAMPLERS = ("tpe", "nsga2", "gp", "random", "seeded")


def nsga2_population(num_samples: int) -> int:
    """NSGA-II's population for a search of `num_samples` trials: half of them, 4 to 50, so that
    a small search still sees a second generation."""
    return max(4, min(50, num_samples // 2))


def make_sampler(name: str, *, seed: int, num_samples: int) -> optuna.samplers.BaseSampler:
    """An Optuna sampler by name. TPE, NSGA-II and GP read the constraint values the searcher
    sets on finished trials (`Trial.set_constraint`); random and seeded sampling ignore them
    (the fronts still honour them).

    "seeded" is a scrambled Sobol (quasi-Monte-Carlo) sequence: space-filling and fixed by
    the seed, useful as a reproducible design to compare samplers against.
    """
    startup = max(2, min(10, num_samples // 3))  # Optuna's default of 10 random trials would be the whole of a small search
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=nsga2_population(num_samples))
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


class NSDEOptunaSearch(Searcher):
    """A Tune searcher over an Optuna study (multi-objective), by ask/tell.

    Args:
        space: the define-by-run function (`define_by_run`); it suggests on the Optuna trial.
        metric, mode: the objectives' names and directions ("max" | "min"), in order.
        sampler: the Optuna sampler.
        study_name, storage: where the study lives (an Optuna storage; None = in memory).
        points_to_evaluate: starting points, asked first (Optuna `enqueue_trial`).
        prior: finished trials added to the study before the first ask (`--warm-start`,
            `search.warmstart.prior_trials`); they run no Tune trial.
        constraints, baseline_config: `--constraint`s (`record.Constraint`) and the flat config
            of the space's first point, the baseline relative constraints refer to. A complete
            trial's violations are set on its Optuna trial (`Trial.set_constraint`, one key per
            constraint, <= 0 satisfied; the samplers read them) when it is told; with a relative
            constraint, trials that end before the baseline are told once the baseline has
            ended (until then Optuna sees them running).
    """

    def __init__(self, *, space: Callable[[optuna.Trial], dict[str, Any]], metric: list[str], mode: list[str],
                 sampler: optuna.samplers.BaseSampler, study_name: str | None = None,
                 storage: optuna.storages.BaseStorage | str | None = None,
                 points_to_evaluate: list[dict[str, Any]] | None = None,
                 prior: Sequence[optuna.trial.FrozenTrial] = (), constraints: Sequence[Constraint] = (),
                 baseline_config: dict[str, Any] | None = None) -> None:
        super().__init__(metric=list(metric), mode=list(mode))
        self.space = space
        self.study = optuna.create_study(storage=storage, sampler=sampler, study_name=study_name, load_if_exists=True,
                                         directions=["maximize" if m == "max" else "minimize" for m in mode])
        self.study.add_trials(prior)
        for point in points_to_evaluate or ():
            self.study.enqueue_trial(point)
        self.trials: dict[str, int] = {}  # Tune trial id -> Optuna trial number
        self.asked: dict[str, optuna.Trial] = {}  # Tune trial id -> its Optuna trial, until told
        self.told: set[str] = set()  # Tune trial ids whose Optuna trial is finished
        self.constraints = tuple(constraints)
        self.baseline_config = baseline_config
        self.baseline: str | None = None  # the Tune trial of the space's first point
        self.baseline_numbers: dict[str, float] | None = None  # its numbers once it ended ({}: it failed)
        self.held: dict[str, tuple[list[float], dict[str, float]]] = {}  # complete, waiting for the baseline

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        trial = self.study.ask()
        self.trials[trial_id] = trial.number
        self.asked[trial_id] = trial
        config = self.space(trial)
        if self.baseline is None and baseline_trial({trial_id: config}, self.baseline_config):
            self.baseline = trial_id
        return unflatten(config)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._keep_rung(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self.told or trial_id not in self.trials:
            return  # a trial replayed after a --resume, told already
        if error or not result or not result.get(EVALUATED):
            # Tune hands a scheduler-stopped trial's last (rung) result only here
            epoch = self._keep_rung(trial_id, result)
            if epoch is not None and not error:
                self.asked[trial_id].set_user_attr("stopped_at_rung", epoch)
            self._tell(trial_id, None, TrialState.FAIL if error else TrialState.PRUNED)
            return self._baseline_ended(trial_id, {})
        values = [result.get(m) for m in self.metric]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            # e.g. ABC over correct predictions when none is correct. Optuna refuses NaN in a
            # COMPLETE trial: FAIL it.
            logger.warning("trial %s has non-finite objectives %s; recorded as FAIL in Optuna", trial_id, values)
            self._tell(trial_id, None, TrialState.FAIL)
            return self._baseline_ended(trial_id, {})
        numbers = {c.metric: float(result.get(c.metric, math.nan)) for c in self.constraints}
        values = [float(v) for v in values]
        if trial_id == self.baseline and self.baseline_numbers is None:
            self.baseline_numbers = numbers  # (the baseline keeps a relative bound: it is its own reference)
        if self._waits_for_baseline(trial_id):
            self.held[trial_id] = (values, numbers)
            return None
        self._tell_complete(trial_id, values, numbers)
        return self._baseline_ended(trial_id, numbers)

    def _waits_for_baseline(self, trial_id: str) -> bool:
        return (any(c.relative for c in self.constraints) and self.baseline_numbers is None
                and self.baseline is not None and trial_id != self.baseline)

    def _baseline_ended(self, trial_id: str, numbers: dict[str, float]) -> None:
        """When the baseline ends (with `numbers`, or {} when it failed or was stopped), tell
        the trials that waited for it."""
        if trial_id != self.baseline:
            return
        if self.baseline_numbers is None:
            self.baseline_numbers = numbers
        for tid, (values, held_numbers) in list(self.held.items()):
            self._tell_complete(tid, values, held_numbers)
            del self.held[tid]

    def _tell_complete(self, trial_id: str, values: list[float], numbers: dict[str, float]) -> None:
        if self.constraints:  # unknown (a relative bound without a baseline value) counts as satisfied
            found = violations(self.constraints, numbers, self.baseline_numbers)
            for c, v in zip(self.constraints, found):
                self.asked[trial_id].set_constraint(str(c), 0.0 if v is None else float(v))
        self._tell(trial_id, values, TrialState.COMPLETE)

    def _keep_rung(self, trial_id: str, result: dict | None) -> int | None:
        """A rung result's values as the Optuna trial's user attribute `rung_<epoch>`; its epoch."""
        epoch = (result or {}).get(RUNG_EPOCH)
        trial = self.asked.get(trial_id)
        if epoch is None or trial is None or not math.isfinite(float(epoch)):
            return None
        values = {k.removeprefix(RUNG_PREFIX): float(v) for k, v in result.items()
                  if k.startswith(RUNG_PREFIX) and k != RUNG_EPOCH and isinstance(v, (int, float))}
        trial.set_user_attr(f"rung_{int(epoch)}", values)
        return int(epoch)

    def _tell(self, trial_id: str, values: list[float] | None, state: TrialState) -> None:
        # skip_if_finished: a trial replayed after a --resume may have been told already
        self.study.tell(self.trials[trial_id], values, state=state, skip_if_finished=True)
        self.told.add(trial_id)
        self.asked.pop(trial_id, None)

    def save(self, checkpoint_path: str) -> None:
        # The study itself pickles (an RDB storage as its URL, an in-memory one with its trials).
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"space": self.space, "study": self.study, "trials": self.trials, "told": self.told,
                         "asked": self.asked, "constraints": self.constraints, "baseline_config": self.baseline_config,
                         "baseline": self.baseline, "baseline_numbers": self.baseline_numbers, "held": self.held}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        self.space, self.study, self.trials, self.told = state["space"], state["study"], state["trials"], state["told"]
        self.asked = state.get("asked", {})
        self.constraints, self.baseline_config = state.get("constraints", ()), state.get("baseline_config")
        self.baseline, self.baseline_numbers = state.get("baseline"), state.get("baseline_numbers")
        self.held = state.get("held", {})


def fail_orphans(study: optuna.Study) -> int:
    """After a search ends, every Tune trial has been told; an Optuna trial still RUNNING was asked
    after the searcher's last snapshot before a driver crash and no Tune trial owns it. Tell it
    FAIL, so that the study holds no phantom trials. Returns how many."""
    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in orphans:
        study.tell(t.number, None, state=TrialState.FAIL, skip_if_finished=True)
    return len(orphans)


def make_searcher(space: SearchSpace, objectives: Sequence[Objective], *, sampler: str, seed: int, num_samples: int,
                  storage: str | None, study_name: str, prior: Sequence[optuna.trial.FrozenTrial] = (),
                  constraints: Sequence[Constraint] = ()) -> NSDEOptunaSearch:
    """The searcher of a search: the study lives in `storage` (an Optuna RDB URL) when given."""
    return NSDEOptunaSearch(
        space=define_by_run(space),
        metric=[o.name for o in objectives],
        mode=[o.mode for o in objectives],
        points_to_evaluate=[dict(p) for p in space.points] or None,
        sampler=make_sampler(sampler, seed=seed, num_samples=num_samples),
        study_name=study_name,
        storage=storage,
        prior=prior,
        constraints=constraints,
        baseline_config=space.config(space.points[0]) if space.points else None,
    )
