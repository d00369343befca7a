"""Which parameter matters for which objective: Optuna's fANOVA over a search's complete trials.

    from analysis import load_search
    from analysis.importance import param_importances
    imp = param_importances(load_search(experiment="nsde-search"))
    imp.table          # rows: parameters, columns: objectives; each column sums to 1
    imp.reason         # why there is no table (too few trials, no space recorded), else None

The complete trials become an in-memory Optuna study (`as_study`: parameters with the
space's distributions, values = the objectives), and `optuna.importance.get_param_importances`
runs once per objective with that objective as its target. fANOVA (Hutter et al. 2014, Optuna's
default evaluator) fits a random forest of the objective on the parameters and splits its
variance among them; importance does not depend on the objective's direction. Optuna only
rates parameters every trial has, so a conditional parameter (the Hurst exponent, set only
for fBm noise) is left out; its parent (the noise shape) carries its effect.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import optuna
import pandas as pd

from analysis.load import Search
from record import profile_prefix

__all__ = ["MIN_TRIALS", "Importance", "as_study", "param_importances"]

logger = logging.getLogger(__name__)

# Below this many complete trials (and two per rated parameter) a random forest over the
# trials describes noise: the report says so instead of plotting it.
MIN_TRIALS = 10


@dataclass
class Importance:
    """Normalised importances: `table` rows are parameters, columns objectives (empty with a
    `reason` when they could not be computed); `trials`: the complete trials behind them."""

    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    trials: int = 0
    reason: str | None = None

    def to_dict(self) -> dict:
        return {"trials": self.trials, "reason": self.reason, "evaluator": "fanova",
                "importance": {o: self.table[o].to_dict() for o in self.table.columns}}


def as_study(search: Search, *, final: bool = False) -> tuple[optuna.Study, int]:
    """The search's complete trials with finite objectives as an in-memory Optuna study, and
    how many complete trials could not be placed in the space (values outside it).

    Raises:
        ValueError: the search holds no space description (`search.space`).
    """
    from spaces import space_from_dict

    if not search.space or not search.space.get("params"):
        raise ValueError(f"search {search.name!r} records no search space, so its trials have no distributions")
    space = space_from_dict(search.space)
    study = optuna.create_study(directions=["maximize" if m == "max" else "minimize" for m in search.directions])
    skipped = 0
    columns = [profile_prefix(final) + n for n in search.objective_names]
    for tid, config, values in search.complete_points(columns):
        try:
            study.add_trial(space.finished_trial(space.values(config), values, {"trial_id": tid}))
        except ValueError as err:  # a value the recorded space cannot hold (an edited space file)
            logger.warning("trial %s left out of the importance: %s", tid, err)
            skipped += 1
    return study, skipped


def param_importances(search: Search, *, final: bool = False, min_trials: int = MIN_TRIALS,
                      seed: int = 0) -> Importance:
    """fANOVA importance of each parameter for each objective (module docstring); with fewer
    than max(`min_trials`, 2 x rated parameters) complete trials, no table and the reason."""
    try:
        study, skipped = as_study(search, final=final)
    except ValueError as err:
        return Importance(reason=str(err))
    trials = study.get_trials(deepcopy=False)
    rated = sorted(optuna.search_space.intersection_search_space(trials)) if trials else []
    rated = [p for p in rated if _varies(trials, p)]
    needed = max(min_trials, 2 * len(rated))
    if len(trials) < needed or not rated:
        what = f"{len(rated)} parameters every trial has" if rated else "no parameter that every trial has and varies"
        return Importance(trials=len(trials), reason=(
            f"not computed: {len(trials)} complete trials{f' ({skipped} outside the space)' if skipped else ''}; "
            f"a random forest over {what} needs at least {needed} (max({min_trials}, 2 per parameter)), "
            f"and fewer would show noise"))
    columns = {}
    for i, name in enumerate(search.objective_names):
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        columns[name] = optuna.importance.get_param_importances(
            study, evaluator=evaluator, params=rated, target=lambda t, i=i: t.values[i])
    table = pd.DataFrame(columns).reindex(rated).fillna(0.0)
    return Importance(table=table.loc[table.max(axis=1).sort_values(ascending=False).index], trials=len(trials))


def _varies(trials, param: str) -> bool:
    return len({repr(t.params[param]) for t in trials}) > 1
