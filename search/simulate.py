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

`crossing` (2 objectives, 4 parameters) is the failure those two cannot show: its learning
curves are the measured ones (`CrossingProblem`), in which the regularised configurations learn
slower *and* end better, so a rung that ranks early ranks against them.
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
from search.moasha import MOASHAScheduler
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

    def true_final(self, x: np.ndarray) -> np.ndarray:
        """Configuration `x`'s objectives at the end, without noise (which configuration is best)."""
        return np.asarray(self.final(np.asarray(x, dtype=float)[:-1]), dtype=float)

    def at(self, x: np.ndarray, epoch: int, max_epochs: int | None = None) -> np.ndarray:
        """The objectives of configuration `x` (`dims` + 1 values, the last the speed) after
        `epoch` epochs (deterministic in x and epoch; the curve does not depend on the schedule's
        length `max_epochs`)."""
        x = np.asarray(x, dtype=float)
        tau = 0.5 + 5.5 * x[-1]
        value = self.final(x[:-1]) * (1.0 - math.exp(-epoch / tau)) + self.noise * _normal(x, epoch, self.objectives)
        return np.clip(value, 0.0, 1.0)


def _normal(x: np.ndarray, epoch: int, size: int) -> np.ndarray:
    """Standard normal draws that depend only on the configuration and the epoch."""
    digest = hashlib.sha256(np.asarray(x, dtype=float).round(12).tobytes() + int(epoch).to_bytes(4, "little")).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little")).standard_normal(size)


# The measured learning curves of the convergence benchmark (bench/results/convergence-cpu.json:
# validation accuracy after each epoch of a 30-epoch schedule, ResNet-18 on the `study` preset,
# seeds 0 and 1), per arm the isotonic regression of the mean over seeds (the noise is added
# back below, at its measured size): plain, the fBm NSDE at relative sigma 0.3, waveform-noise
# augmentation (SNR -5 to 20 dB) and the published absolute sigma 0.3.
# `tests/search/test_simulate.py` checks them against the record.
MEASURED_EPOCHS = 30
MEASURED_CURVES: dict[str, tuple[float, ...]] = {
    "plain": (0.1412, 0.2877, 0.4644, 0.5851, 0.6476, 0.6853, 0.7225, 0.7225, 0.7349, 0.7648, 0.7648, 0.7648, 0.7648,
              0.7877, 0.7913, 0.7913, 0.7913, 0.8130, 0.8130, 0.8246, 0.8246, 0.8246, 0.8246, 0.8246, 0.8269, 0.8269,
              0.8269, 0.8269, 0.8269, 0.8308),
    "nsde": (0.1034, 0.2381, 0.2759, 0.5226, 0.6444, 0.7037, 0.7112, 0.7274, 0.7403, 0.7759, 0.7931, 0.7931, 0.8184,
             0.8184, 0.8373, 0.8373, 0.8384, 0.8491, 0.8508, 0.8508, 0.8583, 0.8583, 0.8599, 0.8599, 0.8599, 0.8599,
             0.8599, 0.8599, 0.8599, 0.8599),
    "input_noise": (0.0916, 0.2608, 0.3944, 0.5312, 0.6250, 0.6746, 0.7324, 0.7324, 0.7324, 0.7694, 0.7694, 0.7716,
                    0.7769, 0.7769, 0.7920, 0.7963, 0.7963, 0.8060, 0.8163, 0.8163, 0.8190, 0.8190, 0.8203, 0.8203,
                    0.8203, 0.8203, 0.8203, 0.8203, 0.8203, 0.8203),
    "published": (0.1131, 0.2565, 0.3168, 0.5905, 0.6444, 0.6848, 0.6848, 0.7355, 0.7355, 0.7769, 0.7992, 0.7992,
                  0.7992, 0.8211, 0.8244, 0.8260, 0.8260, 0.8276, 0.8323, 0.8323, 0.8323, 0.8432, 0.8432, 0.8432,
                  0.8432, 0.8432, 0.8432, 0.8432, 0.8432, 0.8438),
}
# The noise between evaluations: the root mean square of each seed's curve about its arm's
# curve above, times sqrt 2 (a mean of two seeds leaves half the variance), in each third of the
# schedule: large early, small once the learning rate has decayed.
MEASURED_NOISE = (0.044, 0.019, 0.008)


@dataclass(frozen=True)
class CrossingProblem(Problem):
    """Measured learning curves whose final values cross (module docstring).

    Parameters, each in [0, 1]: `x0` the internal noise's strength (0 plain, 1 the NSDE at
    relative sigma 0.3), `x1` input augmentation's (1: the waveform-noise arm), `x2` the
    absolute-sigma noise's (1: the published setting), `x3` a recipe parameter whose optimum is
    0.5. Clean accuracy (o0) after a fraction u of the schedule is the plain curve plus each
    arm's difference from it at u, weighted by its strength (the effects add; the measured curves
    are read at u, so a schedule of any length keeps the measured shape), less the recipe's
    penalty. Robust accuracy (o1) is clean accuracy times a retention that grows with the
    strengths (`retention`: APGD at eps* over clean accuracy, from the confirmatory pilot). So
    the plain model leads early (by 19 points at a tenth of the schedule) and the NSDE ends 3
    points ahead on clean and further on robust accuracy, as measured.
    """

    # base, then per unit of x0, x1, x2: A 0.450, D 0.543, B' (-5 dB) 0.559, C 0.535 (noise on, EOT APGD)
    retention: tuple[float, float, float, float] = (0.450, 0.093, 0.109, 0.0847)
    recipe_penalty: float = 0.4  # accuracy lost at the worst recipe, as a fraction: (1 - 0.4 * (2 (x3 - 0.5))^2)

    def clean(self, x: np.ndarray, fraction: float) -> float:
        """Clean accuracy without noise after `fraction` of the schedule (linear between epochs)."""
        x = np.asarray(x, dtype=float)
        grid = np.arange(MEASURED_EPOCHS + 1) / MEASURED_EPOCHS
        curve = {k: np.interp(fraction, grid, (1 / 16, *v)) for k, v in MEASURED_CURVES.items()}
        base = curve["plain"] + sum(w * (curve[k] - curve["plain"])
                                    for w, k in zip(x[:3], ("nsde", "input_noise", "published")))
        return float(base * (1.0 - self.recipe_penalty * (2.0 * (x[3] - 0.5)) ** 2))

    def noiseless(self, x: np.ndarray, fraction: float) -> np.ndarray:
        """(clean, robust accuracy) without noise after `fraction` of the schedule."""
        clean = self.clean(x, fraction)
        r0, *slopes = self.retention
        return np.array([clean, clean * (r0 + float(np.dot(slopes, np.asarray(x, dtype=float)[:3])))])

    def true_final(self, x: np.ndarray) -> np.ndarray:
        return self.noiseless(x, 1.0)

    def at(self, x: np.ndarray, epoch: int, max_epochs: int | None = None) -> np.ndarray:
        fraction = epoch / float(max_epochs or MEASURED_EPOCHS)
        sd = MEASURED_NOISE[min(2, int(3 * min(fraction, 1.0 - 1e-9)))]
        return np.clip(self.noiseless(x, fraction) + sd * _normal(x, epoch, 2), 0.0, 1.0)


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
    # dims 3 + the usual last parameter, here the recipe's (the speed is the strengths' own);
    # its final values are `noiseless(x, 1.0)`, its noise MEASURED_NOISE
    "crossing": CrossingProblem("crossing", 3, 2, final=None, noise=MEASURED_NOISE[-1]),
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
    configs: dict[str, np.ndarray] = field(default_factory=dict)  # trial id -> its configuration
    grace: int | None = None  # audit_trials: the grace period the audit chose (None: FIFO after it)
    wall: float = 0.0  # the makespan: the simulated time at which the last trial ended

    def best_stopped(self, problem: Problem) -> list[bool]:
        """Per objective: was the configuration that ends best on it (of those the search
        tried; `Problem.true_final`) stopped early? (Its rung values said it was worse.)"""
        ids = list(self.configs)
        finals = np.array([problem.true_final(self.configs[t]) for t in ids])
        return [ids[int(np.argmax(finals[:, k]))] in self.stopped for k in range(finals.shape[1])]


def simulate(problem: Problem, *, sampler: str, scheduler: str, seed: int, budget: float, max_epochs: int,
             workers: int = 4, grace_period: int = 1, reduction_factor: float = 3.0, rung_cost: float = 0.7,
             num_samples_hint: int = 20, keep_front: bool = False, brackets: int = 1,
             extrapolate: bool = False, audit_trials: int = 0, min_tau: float = 0.6,
             max_trials: int | None = None) -> SimResult:
    """Run one search of `problem` until `budget` trial-epochs are spent (module docstring).

    Args:
        sampler: a `search.searcher.SAMPLERS` name; `scheduler`: "fifo" or "moasha".
        num_samples_hint: the `--num-samples` the sampler is sized for (startup trials,
            population), as a real search of that many full trials would be.
        keep_front: MOASHA keeps every member of a rung's first front (`--rung-keep-front`).
        brackets: MOASHA's Hyperband-style brackets (`--rung-brackets`). Every trial pays for
            a rung evaluation at every rung epoch, as a real trial does (the trainable does not
            know its bracket).
        extrapolate: MOASHA ranks on extrapolated final values (`--rung-extrapolate`).
        audit_trials: the grace period set from a rung audit: the first `audit_trials` trials
            to complete run MOASHA in audit mode (every rung evaluated, nothing stopped); then
            `analysis.rungs.grace_from_audit` (every objective's Kendall tau between rung and
            final values >= `min_tau`) sets the grace period of the MOASHA that decides from
            then on, its rung tables seeded with the audited trials' values (no rung reaches
            `min_tau`: FIFO from then on). `grace_period` is the audit's first rung.
            `SimResult.grace` holds the choice.
        max_trials: start no more trials once this many have started, and run those to their
            end (with `budget=math.inf`: a search of `max_trials` trials; `SimResult.wall` is
            its makespan). None: no such limit.
    """
    if scheduler not in ("fifo", "moasha"):
        raise ValueError(f"unknown scheduler {scheduler!r}; the simulator runs 'fifo' and 'moasha'")
    objectives = problem.objective_list
    searcher = NSDEOptunaSearch(space=_Space(problem.dims + 1), metric=[o.name for o in objectives],
                                mode=[o.mode for o in objectives],
                                sampler=make_sampler(sampler, seed=seed, num_samples=num_samples_hint))
    if audit_trials and scheduler != "moasha":
        raise ValueError(f"`audit_trials` audits MOASHA's rungs: it needs scheduler 'moasha', but got {scheduler!r}")

    def make_moasha(grace: int, audit: bool) -> MOASHAScheduler:
        return MOASHAScheduler(objectives, max_t=max_epochs, grace_period=grace, reduction_factor=reduction_factor,
                               keep_front=keep_front, brackets=brackets, extrapolate=extrapolate, audit=audit)

    moasha = make_moasha(grace_period, bool(audit_trials)) if scheduler == "moasha" else None
    rungs = set(moasha.rungs.epochs) if moasha else set()
    result = SimResult()
    finals: dict[str, np.ndarray] = {}  # complete trial id -> its final values, in completion order
    auditing = bool(audit_trials)
    events: list[tuple[float, int, str, int]] = []  # (time the epoch ends, tie-break, trial id, epoch)
    configs = result.configs
    counter = 0

    def start(now: float) -> None:
        nonlocal counter
        if max_trials is not None and counter >= max_trials:
            return
        tid = f"{counter:05d}"
        configs[tid] = _x(searcher.suggest(tid))
        heapq.heappush(events, (now + 1.0, counter, tid, 1))
        counter += 1

    for _ in range(workers):
        start(0.0)
    while events and result.spent < budget:
        now, order, tid, epoch = heapq.heappop(events)
        result.spent += 1.0
        values = problem.at(configs[tid], epoch, max_epochs)
        report = _report(objectives, values, epoch, max_epochs, rung=epoch in rungs)
        if epoch == max_epochs:
            searcher.on_trial_complete(tid, report)
            finals[tid] = values
            result.budget.append(result.spent)
            result.hypervolume.append(hypervolume(np.array(list(finals.values())), [o.mode for o in objectives],
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
        result.wall = now
        if auditing and len(finals) >= audit_trials:  # the audit is complete: decide from now on
            auditing = False
            moasha, rungs = _after_audit(moasha, finals, objectives, make_moasha, min_tau, result)
        start(now)
    return result


def _after_audit(audited: MOASHAScheduler, finals: dict[str, np.ndarray], objectives, make_moasha, min_tau: float,
                 result: SimResult):
    """The scheduler (and its rung epochs) that decides after the audit: MOASHA from the
    audit's grace period, its tables seeded with the audited values; (None, set()) for FIFO."""
    import pandas as pd

    from analysis.rungs import grace_from_audit, rung_audit

    names = [o.name for o in objectives]
    final = pd.DataFrame(finals, index=names).T
    grace = grace_from_audit(rung_audit(audited.rungs.to_dict(), final, names, front=()), min_tau=min_tau)
    result.grace = grace
    if grace is None:
        return None, set()
    moasha = make_moasha(grace, False)
    for epoch in moasha.rungs.epochs:
        for tid, values in audited.rungs.values_at(epoch).items():
            moasha.rungs.tables[epoch][tid] = list(values)
            moasha.rungs.bracket(tid)
    return moasha, set(moasha.rungs.epochs)


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
        tune.report(_report(objectives, p.at(x, epoch, max_epochs), epoch, max_epochs, rung=epoch in rungs))
