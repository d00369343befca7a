"""What a search is asked to do (`SearchSettings`, the CLI's options) and what it is doing
(`SearchContext`: the resolved space, data, profiles, folders and MLflow runs), passed whole
to each step of `search.run.run_search`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nsde.rules import Rule, check_fields, ruled
from record import DEFAULT_OBJECTIVES, SCHEDULER_METRICS, Objective
from search.searcher import SAMPLERS

__all__ = ["DEFAULT_TRIALS", "SCHEDULERS", "SearchContext", "SearchSettings"]

SCHEDULERS = ("fifo", "asha", "moasha")
DEFAULT_TRIALS = 6  # --num-samples of a sampled space


def _check_scheduler_metric(name: str) -> None:
    if name not in SCHEDULER_METRICS:
        raise ValueError(f"`--scheduler-metric` must be a per-epoch metric {list(SCHEDULER_METRICS)}, but got {name!r}")


def _check_address(address: str) -> None:
    if address.startswith("ray://"):
        raise ValueError(f"--address {address}: Ray Client (ray://) is not supported, because the search's MLflow "
                         f"callback must run in this process; run the search on the head node "
                         f"(`ray job submit -- python -m search.run --address auto ...`)")


def _at_least(low: int, option: str, *, optional: bool = False) -> Rule:
    return Rule(int, low, optional=optional, label=option)


@dataclass(frozen=True)
class SearchSettings:
    """Everything a search needs; `None` means: the space's (or the machine's) default. Each
    option's own rule is a `Rule` on its field; `__post_init__` adds the rules across options."""

    space: str = "default"
    # None: DEFAULT_TRIALS, or every point of a designed space
    num_samples: int | None = ruled(None, _at_least(1, "--num-samples", optional=True))
    # a designed space's points START:STOP (a block of a long design); None: every point
    points: str | None = None
    objectives: str = DEFAULT_OBJECTIVES
    sampler: str = ruled("tpe", Rule(str, choices=SAMPLERS, what="sampler"))
    scheduler: str = ruled("fifo", Rule(str, choices=SCHEDULERS, what="scheduler"))
    scheduler_metric: str = ruled("val_accuracy", Rule(object, validator=_check_scheduler_metric))
    grace_period: int = ruled(1, _at_least(1, "--grace-period"))
    reduction_factor: float = ruled(3.0, Rule(float, 1, open_low=True, label="--reduction-factor"))
    rung_profile: str = "rung"
    rung_keep_front: bool = False
    rung_audit: bool = False
    rung_brackets: int = ruled(1, _at_least(1, "--rung-brackets"))
    rung_extrapolate: bool = False
    gpus_per_trial: float = ruled(0.0, Rule(float, 0, label="--gpus-per-trial"))
    cpus_per_trial: float = ruled(1.0, Rule(float, 0, open_low=True, label="--cpus-per-trial"))
    max_concurrent: int | None = ruled(None, _at_least(1, "--max-concurrent", optional=True))
    address: str | None = ruled(None, Rule(object, validator=_check_address, optional=True))
    storage_path: str = "runs"
    mlflow_uri: str = "sqlite:///mlflow.db"
    experiment: str = "nsde-search"
    name: str | None = None
    seed: int = 0
    preset: str | None = None
    search_profile: str | None = None
    final_profile: str | None = None
    final: bool = True
    max_failures: int = ruled(2, _at_least(0, "--max-failures"))
    resume: bool = False
    ddp_workers: int = ruled(1, _at_least(1, "--ddp-workers"))
    final_seeds: int | None = ruled(None, _at_least(1, "--final-seeds", optional=True))
    keep_flagged: bool = False
    warm_start: str | None = None
    constraints: tuple[str, ...] = ()
    # seconds an MLflow server may stay down before the tracker drops writes (replayed at the end)
    tracking_outage_limit: float = ruled(600.0, Rule(float, 0, label="--tracking-outage-limit"))

    def point_indices(self, space) -> list[int] | None:
        """--points as the designed space's point indices, in the design's order; None (every
        point) when not given. The value is START:STOP (0-based, STOP excluded; either may be
        left out) or several such blocks joined by commas ("0:3,4:6": points 0-2 and 4-5).

        Raises:
            ValueError: not START:STOP[,START:STOP...], an empty, out-of-range or overlapping
                block, or a space that is not designed.
        """
        if self.points is None:
            return None
        if not space.designed:
            raise ValueError(f"--points {self.points}: only a designed space runs a block of its points; "
                             f"{space.name!r} samples its trials")
        n = len(space.points)
        picked: list[int] = []
        for part in self.points.split(","):
            try:
                start_text, stop_text = part.split(":")
                start = int(start_text) if start_text.strip() else 0
                stop = int(stop_text) if stop_text.strip() else n
            except ValueError:
                raise ValueError(f"--points must be START:STOP (0-based, STOP excluded, e.g. 0:18) or several joined "
                                 f"by commas (0:3,4:6), but got {self.points!r}") from None
            if not 0 <= start < stop <= n:
                raise ValueError(f"--points {self.points}: `0 <= START < STOP <= {n}` must hold for {part!r} (the "
                                 f"designed space {space.name!r} has {n} points)")
            if set(picked) & set(range(start, stop)):
                raise ValueError(f"--points {self.points}: the block {part!r} overlaps an earlier one")
            picked.extend(range(start, stop))
        return sorted(picked)

    def trials(self, space) -> int:
        """--num-samples, resolved: DEFAULT_TRIALS for a sampled space, every point of a designed
        one (`spaces.SearchSpace.designed`), which also cannot run more than its points nor
        stop trials early, nor take a warm start or extra seeds (its seeds are its points').

        Raises:
            ValueError: naming the option and the rule.
        """
        if not space.designed:
            return self.num_samples or DEFAULT_TRIALS
        n = len(space.points)
        if self.num_samples is not None and self.num_samples > n:
            raise ValueError(f"--num-samples {self.num_samples}: the designed space {space.name!r} has {n} points "
                             f"and runs each once (leave --num-samples out to run them all)")
        if self.scheduler != "fifo":
            raise ValueError(f"--scheduler {self.scheduler}: a designed space ({space.name!r}) runs every point to "
                             f"the end (fifo); stopping some early would break the design")
        if self.warm_start:
            raise ValueError(f"--warm-start: a designed space ({space.name!r}) samples nothing, so earlier trials "
                             f"cannot inform it")
        if self.final_seeds is not None:
            raise ValueError(f"--final-seeds: a designed space's ({space.name!r}) training seeds are its points' "
                             f"train/seed values; each trial is scored on the test split once")
        return self.num_samples or n

    @property
    def workers(self) -> int:
        """Data-parallel workers per trial (1 = a plain single-process trial)."""
        return int(self.gpus_per_trial) if self.gpus_per_trial > 1 else self.ddp_workers

    def __post_init__(self) -> None:
        check_fields(self)
        if self.resume and not self.name:
            raise ValueError("--resume needs --name: the name of the interrupted search (and the same --storage-path)")
        if self.scheduler == "moasha" and self.workers > 1:
            raise ValueError("--scheduler moasha runs its rung evaluations in plain trials only; DDP trials "
                             "(--ddp-workers or --gpus-per-trial above 1) support fifo and asha")
        if self.rung_audit and self.scheduler != "moasha":
            raise ValueError(f"--rung-audit audits MOASHA's rule: it needs --scheduler moasha, but got --scheduler "
                             f"{self.scheduler}")
        if self.rung_brackets > 1 and self.scheduler != "moasha":
            raise ValueError(f"--rung-brackets splits MOASHA's trials into brackets: it needs --scheduler moasha, "
                             f"but got --scheduler {self.scheduler}")
        if self.rung_extrapolate and self.scheduler != "moasha":
            raise ValueError(f"--rung-extrapolate changes MOASHA's ranking: it needs --scheduler moasha, but got "
                             f"--scheduler {self.scheduler}")
        if self.gpus_per_trial > 1 and not float(self.gpus_per_trial).is_integer():
            raise ValueError(f"`--gpus-per-trial` above 1 must be a whole number of GPUs (one DDP worker each), "
                             f"but got {self.gpus_per_trial}")
        if self.ddp_workers > 1 and self.gpus_per_trial > 0:
            raise ValueError(f"--ddp-workers is for CPU trials only (with GPUs, --gpus-per-trial N sets N "
                             f"workers), but got {self.ddp_workers}")


@dataclass
class SearchContext:
    """A running search: its settings resolved (space, objectives, data and evaluation
    profiles), where its files go, its MLflow runs, and the time each step took."""

    settings: SearchSettings
    space: Any  # spaces.SearchSpace
    objectives: tuple[Objective, ...]
    data_cfg: Any  # nsde.data.DataConfig
    search_cfg: Any  # nsde.metrics.EvalConfig of every trial
    final_cfg: Any  # nsde.metrics.EvalConfig of the final re-evaluation and the held-out scores
    name: str
    storage: str  # Tune's storage path (local folder or s3://...)
    exp_dir: Path  # the search's own local files (Optuna study, search.json, timing.json, reports)
    data_path: str = ""
    client: Any = None  # mlflow.tracking.MlflowClient
    experiment_id: str = ""
    parent_run_id: str = ""
    timing: dict[str, Any] = field(default_factory=dict)
    rung_cfg: Any = None  # nsde.metrics.EvalConfig of MOASHA's rung evaluations (--scheduler moasha)
    prior: list = field(default_factory=list)  # --warm-start: optuna FrozenTrials added to the new study

    def rules(self) -> dict[str, Any]:
        """What decides the fronts besides the numbers (`search.final.as_search`)."""
        return {"keep_flagged": self.settings.keep_flagged, "constraints": tuple(self.settings.constraints),
                "space": self.space.to_dict()}

    @property
    def tune_path(self) -> str:
        return f"{self.storage}/{self.name}"

    def timed(self, key: str):
        """`with ctx.timed("data_s"): ...` records the block's seconds in `timing[key]`."""
        return _Timer(self.timing, key)


class _Timer:
    def __init__(self, timing: dict[str, Any], key: str) -> None:
        self.timing, self.key = timing, key

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc) -> None:
        self.timing[self.key] = time.perf_counter() - self.start
