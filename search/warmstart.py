"""`--warm-start NAME_OR_RUN_ID`: an earlier search's complete trials as prior trials of a new study.

The earlier search is read back with `analysis.load_search` (by its parent run id, or by its
name in the same MLflow experiment). Each complete trial whose objectives are all finite
becomes an Optuna `FrozenTrial` (`optuna.trial.create_trial`) with the new space's
distributions and the new search's objectives, and is added to the new study with
`Study.add_trial` before the first trial is asked, so that the sampler starts informed. The
prior trials live only in the Optuna study: they run no Tune trial, do not count toward
`--num-samples` and are on none of the new search's fronts. Each carries the user
attributes `prior_search` and `prior_trial_id`.

An earlier trial fits the new space when the new space, given the parameter values recovered
from the trial's config (`SearchSpace.values`), would produce the same config (the training
seed aside) and every value lies in its new distribution. Anything else is a one-line error
that names the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import optuna

from record import Objective, config_differences

__all__ = ["load_prior_search", "prior_trials"]

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def load_prior_search(source: str, *, experiment: str, tracking_uri: str):
    """The earlier search `source`: an MLflow run id (its parent run, or one of its trials), or
    a search name in `experiment`."""
    from urllib.parse import urlparse

    from analysis import load_search

    parsed = urlparse(tracking_uri)
    if parsed.scheme == "sqlite" and not Path(parsed.path[1:]).exists():  # opening it would create an empty store
        raise ValueError(f"--warm-start {source}: no MLflow store at {tracking_uri} to read the earlier search from")
    if _RUN_ID.match(source):
        return load_search(run_id=source, tracking_uri=tracking_uri)
    return load_search(experiment, search=source, tracking_uri=tracking_uri)


def prior_trials(search, space, objectives: Sequence[Objective]) -> list[optuna.trial.FrozenTrial]:
    """The complete trials of the earlier `search` (an `analysis.Search`) as trials of a study
    over `space` (a `spaces.SearchSpace`) with `objectives`.

    Raises:
        ValueError: an objective the earlier search did not record, or a trial that the new
            space cannot produce (naming the parameter or config key and the values).
    """
    missing = [o.name for o in objectives if o.name not in search.trials]
    if missing:
        raise ValueError(f"--warm-start {search.name}: the earlier search has no values of the objectives {missing}")
    out = []
    for tid, config, values in search.complete_points([o.name for o in objectives]):
        params = space.values(config)
        where = f"--warm-start {search.name}: trial {tid} does not fit the new space"
        try:
            out.append(space.finished_trial(params, values, {"prior_search": search.name, "prior_trial_id": tid}))
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        rebuilt = space.config(params)
        for key in config_differences(config, rebuilt)[:1]:
            raise ValueError(f"{where}: {key} is {config.get(key)!r} there but {rebuilt.get(key)!r} in the new "
                             f"space (a constant, or a parameter the new space does not search)")
    return out
