"""A simulated backend for the search's own sampler and scheduler objects: search efficiency on
cheap multi-objective problems with learning curves, in simulated time.

A Tune trial costs seconds of overhead on a small machine, so comparing samplers and
schedulers over hundreds of trials and ten seeds needs a simulated clock (as Syne Tune's
simulator does). `simulate` drives the very objects a search uses: `NSDEOptunaSearch`
(`suggest` / `on_trial_result` / `on_trial_complete`) with `make_sampler`'s sampler, and
`MOASHAScheduler.on_trial_result`, from an event queue of `workers` trials running at once,
each epoch taking one unit of time. It spends a budget of *trial-epochs* (what a GPU cluster
pays; a rung evaluation costs `rung_cost` epochs) and records the hypervolume of the complete
trials against the budget spent. `curve_trainable` runs the same problem as a real Tune trial,
so that a test can check that the simulated and the real Tune runs decide alike.

Problems (`PROBLEMS`) are maximised, with every objective in [0, 1] (reference point 0):
`zdt1` (2 objectives, 4 parameters), `dtlz2` (3 objectives, 5 parameters), each with one more
parameter, `speed`, that sets only how fast a configuration learns. Every objective rises with
the epochs towards its final value, `final * (1 - exp(-epoch / tau))`, with the time constant
`tau` from 0.5 to 6 epochs set by `speed` alone: some configurations learn slowly whatever
their final value, so early ranks can mislead, and they mislead without favouring good or
bad final values. A small noise depends only on the configuration and the epoch.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from analysis.hypervolume import hypervolume
from record import EVALUATED, RUNG_EPOCH, RUNG_PREFIX, Objective
from search.moasha import MOASHAScheduler, rung_epochs
from search.searcher import NSDEOptunaSearch, make_sampler

__all__ = ["PROBLEMS", "Problem", "SimResult", "budget_to_reach", "curve_trainable", "simulate"]


@dataclass(frozen=True)
class Problem:
    """A maximised multi-objective test problem over [0, 1]^dims with learning curves."""

    name: str
    dims: int  # the parameters of `final`; the configuration has one more, the speed
    objectives: int
    final: Callable[[np.ndarray], np.ndarray]
    noise: float = 0.01

    @property
    def objective_list(self) -> tuple[Objective, ...]:
        return tuple(Objective(f"o{i}", "max") for i in range(self.objectives))

    def at(self, x: np.ndarray, epoch: int) -> np.ndarray:
        """The objectives of configuration `x` (`dims` + 1 values, the last the speed) after
        `epoch` epochs (deterministic in x and epoch)."""
        x = np.asarray(x, dtype=float)
        tau = 0.5 + 5.5 * x[-1]
        digest = hashlib.sha256(x.round(12).tobytes() + int(epoch).to_bytes(4, "little")).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        value = self.final(x[:-1]) * (1.0 - math.exp(-epoch / tau)) + self.noise * rng.standard_normal(self.objectives)
        return np.clip(value, 0.0, 1.0)


def _zdt1(x: np.ndarray) -> np.ndarray:
    f1 = x[0]
    g = 1.0 + 9.0 * float(np.mean(x[1:]))
    f2 = g * (1.0 - math.sqrt(f1 / g))
    return np.array([1.0 - f1, 1.0 - f2 / 10.0])


def _dtlz2(x: np.ndarray, objectives: int = 3) -> np.ndarray:
    g = float(np.sum((x[objectives - 1:] - 0.5) ** 2))
    f = np.full(objectives, 1.0 + g)
    for i in range(objectives):
        f[i] *= np.prod(np.cos(x[:objectives - 1 - i] * np.pi / 2))
        if i > 0:
            f[i] *= np.sin(x[objectives - 1 - i] * np.pi / 2)
    return 1.0 - f / (1.0 + 0.25 * (len(x) - objectives + 1))


PROBLEMS = {
    "zdt1": Problem("zdt1", 4, 2, _zdt1),
    "dtlz2": Problem("dtlz2", 5, 3, _dtlz2),
}


class _Space:
    """The problem's parameters x0 ... x{d-1} in [0, 1] as a define-by-run function."""

    def __init__(self, dims: int) -> None:
        self.dims = dims

    def __call__(self, trial) -> dict[str, float]:
        return {f"x{i}": trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(self.dims)}


def _x(config: dict) -> np.ndarray:
    return np.array([config[f"x{i}"] for i in range(len(config))])


@dataclass
class SimResult:
    """One simulated search: per complete trial, the budget spent when it completed and the
    hypervolume of all complete trials then; per trial, how it ended."""

    budget: list[float] = field(default_factory=list)
    hypervolume: list[float] = field(default_factory=list)
    trials: int = 0
    stopped: dict[str, int] = field(default_factory=dict)  # trial id -> epoch it was stopped at
    spent: float = 0.0


def simulate(problem: Problem, *, sampler: str, scheduler: str, seed: int, budget: float, max_epochs: int,
             workers: int = 4, grace_period: int = 1, reduction_factor: float = 3.0, rung_cost: float = 0.7,
             num_samples_hint: int = 20, keep_front: bool = False) -> SimResult:
    """Run one search of `problem` until `budget` trial-epochs are spent (module docstring).

    Args:
        sampler: a `search.searcher.SAMPLERS` name; `scheduler`: "fifo" or "moasha".
        num_samples_hint: the `--num-samples` the sampler is sized for (startup trials,
            population), as a real search of that many full trials would be.
        keep_front: MOASHA keeps every member of a rung's first front (`--rung-keep-front`).
    """
    if scheduler not in ("fifo", "moasha"):
        raise ValueError(f"unknown scheduler {scheduler!r}; the simulator runs 'fifo' and 'moasha'")
    objectives = problem.objective_list
    searcher = NSDEOptunaSearch(space=_Space(problem.dims + 1), metric=[o.name for o in objectives],
                                mode=[o.mode for o in objectives],
                                sampler=make_sampler(sampler, seed=seed, num_samples=num_samples_hint))
    moasha = MOASHAScheduler(objectives, max_t=max_epochs, grace_period=grace_period,
                             reduction_factor=reduction_factor, keep_front=keep_front) if scheduler == "moasha" else None
    rungs = set(rung_epochs(grace_period, reduction_factor, max_epochs)) if moasha else set()
    result, complete = SimResult(), []
    events: list[tuple[float, int, str, int]] = []  # (time the epoch ends, tie-break, trial id, epoch)
    configs: dict[str, np.ndarray] = {}
    counter = 0

    def start(now: float) -> None:
        nonlocal counter
        tid = f"{counter:05d}"
        configs[tid] = _x(searcher.suggest(tid))
        heapq.heappush(events, (now + 1.0, counter, tid, 1))
        counter += 1

    for _ in range(workers):
        start(0.0)
    while events and result.spent < budget:
        now, order, tid, epoch = heapq.heappop(events)
        result.spent += 1.0
        values = problem.at(configs[tid], epoch)
        report = _report(objectives, values, epoch, max_epochs, rung=epoch in rungs)
        if epoch == max_epochs:
            searcher.on_trial_complete(tid, report)
            complete.append(values)
            result.budget.append(result.spent)
            result.hypervolume.append(hypervolume(np.array(complete), [o.mode for o in objectives],
                                                  np.zeros(len(objectives))))
        else:
            decision = "CONTINUE"
            if epoch in rungs:
                result.spent += rung_cost
                decision = moasha.on_trial_result(None, SimpleNamespace(trial_id=tid), report)
            if decision == "STOP":
                searcher.on_trial_complete(tid, report)
                result.stopped[tid] = epoch
            else:
                searcher.on_trial_result(tid, report)
                heapq.heappush(events, (now + 1.0 + (rung_cost if epoch in rungs else 0.0), order, tid, epoch + 1))
                continue
        result.trials += 1
        start(now)
    return result


def _report(objectives, values: np.ndarray, epoch: int, max_epochs: int, *, rung: bool) -> dict:
    """A trial's result after `epoch` epochs, as `search.trainable` reports it: the objectives
    NaN until the last epoch, which carries them with `evaluated`; a rung epoch adds
    `rung_epoch` and `rung_<objective>`."""
    last = epoch == max_epochs
    report = {"epoch": epoch, EVALUATED: last,
              **{o.name: float(v) if last else math.nan for o, v in zip(objectives, values)}}
    if rung:
        report.update({RUNG_EPOCH: float(epoch),
                       **{RUNG_PREFIX + o.name: float(v) for o, v in zip(objectives, values)}})
    return report


def budget_to_reach(result: SimResult, target: float) -> float:
    """The budget at which the search's hypervolume first reached `target` (inf: never)."""
    for spent, hv in zip(result.budget, result.hypervolume):
        if hv >= target - 1e-12:
            return spent
    return math.inf


def curve_trainable(config: dict, *, problem: str, max_epochs: int, rungs: tuple[int, ...] = ()) -> None:
    """`problem` as a real Tune trial: the same values per epoch as `simulate` sees, a rung
    result at `rungs`, the evaluation at `max_epochs`."""
    from ray import tune

    p = PROBLEMS[problem]
    objectives = p.objective_list
    x = _x(config)
    for epoch in range(1, max_epochs + 1):
        tune.report(_report(objectives, p.at(x, epoch), epoch, max_epochs, rung=epoch in rungs))
