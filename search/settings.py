"""What a search is asked to do (`SearchSettings`, the CLI's options) and what it is doing
(`SearchContext`: the resolved space, data, profiles, folders and MLflow runs), passed whole
to each step of `search.run.run_search`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from record import SCHEDULER_METRICS, DEFAULT_OBJECTIVES, Objective
from search.searcher import SAMPLERS

__all__ = ["DEFAULT_TRIALS", "SCHEDULERS", "SearchContext", "SearchSettings"]

SCHEDULERS = ("fifo", "asha", "moasha")
DEFAULT_TRIALS = 6  # --num-samples of a sampled space


@dataclass(frozen=True)
class SearchSettings:
    """Everything a search needs; `None` means: the space's (or the machine's) default."""

    space: str = "default"
    num_samples: int | None = None  # None: DEFAULT_TRIALS, or every point of a designed space
    objectives: str = DEFAULT_OBJECTIVES
    sampler: str = "tpe"
    scheduler: str = "fifo"
    scheduler_metric: str = "val_accuracy"
    grace_period: int = 1
    reduction_factor: float = 3.0
    rung_profile: str = "rung"
    rung_keep_front: bool = False
    gpus_per_trial: float = 0.0
    cpus_per_trial: float = 1.0
    max_concurrent: int | None = None
    address: str | None = None
    storage_path: str = "runs"
    mlflow_uri: str = "sqlite:///mlflow.db"
    experiment: str = "nsde-search"
    name: str | None = None
    seed: int = 0
    preset: str | None = None
    search_profile: str | None = None
    final_profile: str | None = None
    final: bool = True
    max_failures: int = 2
    resume: bool = False
    ddp_workers: int = 1
    final_seeds: int | None = None
    keep_flagged: bool = False
    warm_start: str | None = None
    constraints: tuple[str, ...] = ()

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
        if self.num_samples is not None and self.num_samples < 1:
            raise ValueError(f"`--num-samples >= 1` must hold, but got {self.num_samples}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; known samplers: {list(SAMPLERS)}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {self.scheduler!r}; known schedulers: {list(SCHEDULERS)}")
        if self.scheduler_metric not in SCHEDULER_METRICS:
            raise ValueError(f"`--scheduler-metric` must be a per-epoch metric {list(SCHEDULER_METRICS)}, "
                             f"but got {self.scheduler_metric!r}")
        if self.resume and not self.name:
            raise ValueError("--resume needs --name: the name of the interrupted search (and the same --storage-path)")
        if self.max_failures < 0:
            raise ValueError(f"`--max-failures >= 0` must hold, but got {self.max_failures}")
        if self.grace_period < 1:
            raise ValueError(f"`--grace-period >= 1` must hold, but got {self.grace_period}")
        if not self.reduction_factor > 1:
            raise ValueError(f"`--reduction-factor > 1` must hold, but got {self.reduction_factor}")
        if self.scheduler == "moasha" and self.workers > 1:
            raise ValueError("--scheduler moasha runs its rung evaluations in plain trials only; DDP trials "
                             "(--ddp-workers or --gpus-per-trial above 1) support fifo and asha")
        if self.address is not None and self.address.startswith("ray://"):
            raise ValueError(f"--address {self.address}: Ray Client (ray://) is not supported, because the "
                             f"search's MLflow callback must run in this process; run the search on the head "
                             f"node (`ray job submit -- python -m search.run --address auto ...`)")
        if self.gpus_per_trial < 0 or self.cpus_per_trial <= 0:
            raise ValueError(f"`--gpus-per-trial >= 0` and `--cpus-per-trial > 0` must hold, but got "
                             f"{self.gpus_per_trial} and {self.cpus_per_trial}")
        if self.gpus_per_trial > 1 and not float(self.gpus_per_trial).is_integer():
            raise ValueError(f"`--gpus-per-trial` above 1 must be a whole number of GPUs (one DDP worker each), "
                             f"but got {self.gpus_per_trial}")
        if self.ddp_workers < 1 or (self.ddp_workers > 1 and self.gpus_per_trial > 0):
            raise ValueError(f"`--ddp-workers >= 1` must hold, and only for CPU trials (with GPUs, "
                             f"--gpus-per-trial N sets N workers), but got {self.ddp_workers}")
        if self.final_seeds is not None and self.final_seeds < 1:
            raise ValueError(f"`--final-seeds >= 1` must hold, but got {self.final_seeds}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError(f"`--max-concurrent >= 1` must hold, but got {self.max_concurrent}")


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
