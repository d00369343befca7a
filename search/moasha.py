"""Multi-objective asynchronous successive halving (MOASHA) as a Ray Tune scheduler.

A trial runs a cheap *rung evaluation* (the `rung` evaluation profile, validation split) at
each rung epoch r, r*eta, r*eta^2, ... below its budget, and reports every objective as
`rung_<objective>` with `rung_epoch` (`search.trainable`). At a rung the scheduler ranks the
trial among all trials that have reached that rung so far, on the search's objectives:

1. non-dominated sorting (front 0 = the rung's Pareto front; a trial with a NaN objective
   ranks behind every front);
2. inside a front, by NSGA-II's crowding distance, larger first (`analysis.crowding_distance`):
   it needs no reference point, which a rung has no good choice of (its values are early and
   their range unknown), and it keeps the front's ends and sparse regions, which is what
   the search wants to explore further; hypervolume contribution would need one and, with
   the few trials a rung holds, depends on it strongly;
3. then by arrival at the rung (earlier first), so that equal trials are ordered the same
   way every time.

The trial continues if its position is in the top 1/eta of the n trials at the rung
(position < n / eta; a trial alone at its rung always continues), else it stops. With
`keep_front` (`--rung-keep-front`) a trial on the rung's first non-dominated front also
continues: with three or more objectives most trials at a rung are non-dominated, the 1/eta
cut then falls inside the front and crowding distance and arrival order decide who stops,
which the benchmarks measured as costly (docs/benchmarks.md). With `extrapolate`
(`--rung-extrapolate`) the rung ranks each trial on its *extrapolated final* values instead of
its rung values: per objective, the line through its values at its previous and present rung in
log-epochs, read at the budget (y_e + (y_e - y_p) log(T / e) / log(e / p); the log-linear member
of Domhan et al.'s 2015 learning-curve family, the only one two points fix), so a trial that is
behind but climbing faster (a regularised one, which learns slower and ends better) can rank
ahead; at a trial's first rung there is nothing to extrapolate from and it continues. The
deterministic baseline (the space's first point) is ranked like the others but never
stopped: the held-out comparisons and `--constraint`s relative to it need its final numbers. Like
ASHA, no trial waits for others: a decision uses only the trials that reached the rung
before it, and compares trials at the same rung only. The first rung is the grace period.

`RungTables` holds the rule and the tables and imports nothing of Ray, so hand-made rung
tables test it directly; `MOASHAScheduler` feeds it from Tune and keeps its tables in
`<search folder>/rungs.json`, so a `--resume` continues with them (Tune does not save a
scheduler's state) and the driver can say at which rung and why each stopped trial stopped.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from analysis.pareto import crowding_distance, pareto_ranks
from record import EVALUATED, RUNG_EPOCH, RUNG_PREFIX, Objective, baseline_trial, flatten

__all__ = ["Decision", "MOASHAScheduler", "RungTables", "rank_at_rung", "read_decisions", "rung_epochs"]

logger = logging.getLogger(__name__)


def rung_epochs(grace_period: int, reduction_factor: float, max_t: int) -> tuple[int, ...]:
    """The rung epochs r, r*eta, r*eta^2, ... (rounded down) strictly below `max_t`.

    Raises:
        ValueError: grace_period < 1, reduction_factor <= 1 or max_t < 1.
    """
    if grace_period < 1:
        raise ValueError(f"`grace_period >= 1` must hold, but got {grace_period}")
    if not reduction_factor > 1:
        raise ValueError(f"`reduction_factor > 1` must hold, but got {reduction_factor}")
    if max_t < 1:
        raise ValueError(f"`max_t >= 1` must hold, but got {max_t}")
    epochs: list[int] = []
    r = float(grace_period)
    while int(r) < max_t:
        if not epochs or int(r) > epochs[-1]:
            epochs.append(int(r))
        r *= reduction_factor
    return tuple(epochs)


def rank_at_rung(values: np.ndarray, directions: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Positions (0 = best) and non-dominated fronts (-1: a NaN objective) of the rows of
    `values` (N, M), rows in the order the trials reached the rung (module docstring)."""
    values = np.asarray(values, dtype=float).reshape(len(values), len(directions))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN rows: ranked last, on purpose
        fronts = pareto_ranks(values, directions)
    crowding = np.zeros(len(values))
    for front in set(fronts.tolist()) - {-1}:
        members = np.flatnonzero(fronts == front)
        crowding[members] = crowding_distance(values[members])
    order = sorted(range(len(values)),
                   key=lambda i: (fronts[i] if fronts[i] >= 0 else math.inf, -crowding[i], i))
    positions = np.empty(len(values), dtype=int)
    positions[order] = np.arange(len(values))
    return positions, fronts


@dataclass(frozen=True)
class Decision:
    """What the scheduler decided for one trial at one rung, and why."""

    trial_id: str
    epoch: int  # the rung
    position: int  # 0 = the best at the rung when the trial reached it
    trials: int  # at the rung then, this one included
    continuing: int  # how many of those rank in the top 1/eta: ceil(trials / eta)
    front: int  # its non-dominated front at the rung (0 = Pareto-optimal; -1: a NaN objective)
    stop: bool
    protected: bool = False  # the baseline: it runs to the end whatever its rank
    kept_front: bool = False  # below the cut, kept as a member of the rung's first front (keep_front)
    first_rung: bool = False  # extrapolate: the trial's first rung, nothing to extrapolate from: it continues

    def reason(self) -> str:
        front = "a NaN objective" if self.front < 0 else f"non-dominated front {self.front}"
        verdict = "stopped" if self.stop else "continued"
        kept = ("; kept running as the baseline" if self.protected else
                "; kept running on the rung's non-dominated front" if self.kept_front else
                "; kept running: its first rung, nothing to extrapolate from" if self.first_rung else "")
        return (f"{verdict} at the epoch-{self.epoch} rung: ranked {self.position + 1} of {self.trials} "
                f"({front}); the top {self.continuing} continue{kept}")


class RungTables:
    """The rung tables of a MOASHA search and its decision rule (no Ray).

    Args:
        directions: "max" | "min" per objective, in the order of the values recorded.
        epochs: the rung epochs (`rung_epochs`).
        reduction_factor: eta: the top 1/eta of a rung continue.
        keep_front: a trial on its rung's first non-dominated front continues whatever its rank.
        audit: the rung audit (`--rung-audit`): the rule decides as it would, but nothing stops. A
            trial the rule would have stopped keeps running and reporting; its later rung values
            go to `shadow` (what the audit correlates with the final values), not into the tables
            the rule ranks, so every decision is the one the rule would have made.
        brackets: Hyperband-style brackets (`bracket`; 1 = plain MOASHA).
        extrapolate: rank on the values extrapolated to `horizon` epochs from the trial's
            previous and present rung (module docstring); needs `horizon`.
        horizon: the trials' budget in epochs (`max_t`), where `extrapolate` reads its lines.
    """

    def __init__(self, directions: Sequence[str], epochs: Sequence[int], reduction_factor: float, *,
                 keep_front: bool = False, audit: bool = False, brackets: int = 1, extrapolate: bool = False,
                 horizon: int | None = None) -> None:
        self.directions = list(directions)
        self.epochs = tuple(int(e) for e in epochs)
        self.reduction_factor = float(reduction_factor)
        self.keep_front = bool(keep_front)
        self.audit = bool(audit)
        if not 1 <= int(brackets) <= len(self.epochs) + 1:
            raise ValueError(f"`1 <= brackets <= {len(self.epochs) + 1}` (the rungs + 1) must hold, but got {brackets}")
        self.brackets = int(brackets)
        if extrapolate and (horizon is None or horizon <= max(self.epochs, default=0)):
            raise ValueError(f"`extrapolate` reads its lines at the budget: `horizon > {max(self.epochs, default=0)}` "
                             f"(the last rung) must hold, but got {horizon}")
        self.extrapolate, self.horizon = bool(extrapolate), (int(horizon) if horizon is not None else None)
        self.tables: dict[int, dict[str, list[float]]] = {e: {} for e in self.epochs}  # in arrival order
        self.shadow: dict[int, dict[str, list[float]]] = {e: {} for e in self.epochs}  # audit: after a would-stop
        self.decisions: dict[str, list[Decision]] = {}  # trial id -> its decisions, rung by rung
        self.bracket_of: dict[str, int] = {}  # trial id -> its bracket, in the order trials first reported

    def bracket(self, trial_id: str) -> int:
        """The trial's bracket (Hyperband-style, Li et al. 2017): trials take brackets 0, 1, ...,
        brackets - 1 in turn, in the order they first report; bracket b's grace period is the
        b-th rung (b = 0: every rung), so with brackets = rungs + 1 the last bracket never stops.
        Trials are ranked only against their own bracket's trials at a rung."""
        return self.bracket_of.setdefault(trial_id, len(self.bracket_of) % self.brackets)

    def record(self, trial_id: str, epoch: int, values: Sequence[float], *, protected: bool = False
               ) -> Decision | None:
        """Record the trial's values at the rung `epoch` and decide; None when `epoch` is no rung.
        A trial that reports a rung again (a retry) keeps its first values and decision; a
        `protected` trial (the baseline) is ranked like any other but never stopped."""
        if epoch not in self.tables:
            return None
        if len(values) != len(self.directions):
            raise ValueError(f"a rung result needs {len(self.directions)} objective values, but got {list(values)}")
        bracket = self.bracket(trial_id)
        if self.epochs.index(epoch) < bracket:  # below the bracket's grace period: not a rung of this trial's
            return None
        table = self.tables[epoch]
        earlier = next((d for d in self.decisions.get(trial_id, []) if d.epoch == epoch), None)
        if earlier is not None:
            return earlier
        if self.audit and trial_id in self.stopped():  # the rule stopped it before: not ranked again
            self.shadow[epoch].setdefault(trial_id, [float(v) for v in values])
            return None
        table[trial_id] = [float(v) for v in values]
        ids = [t for t in table if self.bracket_of.get(t) == bracket]  # the trial's bracket only
        ranked = [self.extrapolated(t, epoch) for t in ids] if self.extrapolate else [table[t] for t in ids]
        positions, fronts = rank_at_rung(np.array(ranked), self.directions)
        i = ids.index(trial_id)
        continuing = math.ceil(len(ids) / self.reduction_factor)
        first = self.extrapolate and self._previous(trial_id, epoch) is None
        behind = bool(positions[i] >= continuing)
        below = behind and not first
        kept_front = below and self.keep_front and int(fronts[i]) == 0
        cut = below and not kept_front
        decision = Decision(trial_id, epoch, int(positions[i]), len(ids), continuing, int(fronts[i]),
                            stop=cut and not protected, protected=protected and cut, kept_front=kept_front,
                            first_rung=first and behind)
        self.decisions.setdefault(trial_id, []).append(decision)
        return decision

    def _previous(self, trial_id: str, epoch: int) -> tuple[int, list[float]] | None:
        """(epoch, values) of the trial's latest rung before `epoch`; None at its first."""
        for e in reversed(self.epochs[:self.epochs.index(epoch)]):
            if trial_id in self.tables[e]:
                return e, self.tables[e][trial_id]
        return None

    def extrapolated(self, trial_id: str, epoch: int) -> list[float]:
        """The trial's values at the rung `epoch` carried to the budget (`horizon`) along the
        line through its previous rung's values in log-epochs; its rung values at its first rung."""
        now = self.tables[epoch][trial_id]
        previous = self._previous(trial_id, epoch)
        if previous is None:
            return list(now)
        e0, before = previous
        reach = math.log(self.horizon / epoch) / math.log(epoch / e0)
        return [y + (y - y0) * reach for y, y0 in zip(now, before)]

    def stopped(self) -> dict[str, Decision]:
        """trial id -> the decision that stopped it."""
        return {t: ds[-1] for t, ds in self.decisions.items() if ds and ds[-1].stop}

    def values_at(self, epoch: int) -> dict[str, list[float]]:
        """Every trial's values at the rung `epoch`: ranked ones and (audit) those after a would-stop."""
        return {**self.tables.get(epoch, {}), **self.shadow.get(epoch, {})}

    def to_dict(self) -> dict[str, Any]:
        return {"directions": self.directions, "epochs": list(self.epochs), "reduction_factor": self.reduction_factor,
                "keep_front": self.keep_front, "audit": self.audit, "brackets": self.brackets,
                "extrapolate": self.extrapolate, "horizon": self.horizon,
                "bracket_of": dict(self.bracket_of),
                "tables": {str(e): t for e, t in self.tables.items()},
                "shadow": {str(e): t for e, t in self.shadow.items()},
                "decisions": {t: [asdict(d) for d in ds] for t, ds in self.decisions.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RungTables:
        tables = cls(d["directions"], d["epochs"], d["reduction_factor"], keep_front=d.get("keep_front", False),
                     audit=d.get("audit", False), brackets=d.get("brackets", 1),
                     extrapolate=d.get("extrapolate", False), horizon=d.get("horizon"))
        tables.bracket_of = {t: int(b) for t, b in d.get("bracket_of", {}).items()}
        for t in d["decisions"]:  # a file written before brackets: every trial in bracket 0
            tables.bracket_of.setdefault(t, 0)
        tables.tables = {int(e): dict(t) for e, t in d["tables"].items()}
        tables.shadow = {**tables.shadow, **{int(e): dict(t) for e, t in d.get("shadow", {}).items()}}
        tables.decisions = {t: [Decision(**x) for x in ds] for t, ds in d["decisions"].items()}
        return tables


def read_decisions(path: str | Path) -> dict[str, Decision]:
    """The stopping decisions in a search's rungs file (trial id -> decision); {} without one."""
    path = Path(path)
    return RungTables.from_dict(json.loads(path.read_text())).stopped() if path.exists() else {}


class MOASHAScheduler(FIFOScheduler):
    """MOASHA (module docstring) as a Tune scheduler; trials start in submission order.

    Args:
        objectives: the search's objectives (names and directions); a rung result carries
            each as `rung_<name>`.
        max_t: the largest trial budget in epochs (rungs lie below it).
        grace_period: the first rung's epoch.
        reduction_factor: eta.
        state_file: where the rung tables live (JSON); read back on a resumed search.
        baseline_config: the flat config of the space's first point, the deterministic
            baseline: it is never stopped, because the held-out comparisons and the bounds
            relative to the baseline (`--constraint`) need its final numbers.
        keep_front: members of a rung's first non-dominated front always continue (`RungTables`).
        audit: decide at every rung but stop nothing (`RungTables`; `analysis.rungs.rung_audit`
            reads what the rule would have done against how the trials ended).
        brackets: Hyperband-style brackets (`RungTables.bracket`; 1 = plain MOASHA).
        extrapolate: rank on the values extrapolated to `max_t` (`RungTables`).
    """

    _supports_buffered_results = False  # a buffered result would reach its rung late

    def __init__(self, objectives: Sequence[Objective], *, max_t: int, grace_period: int = 1,
                 reduction_factor: float = 3, state_file: str | Path | None = None,
                 baseline_config: dict[str, Any] | None = None, keep_front: bool = False,
                 audit: bool = False, brackets: int = 1, extrapolate: bool = False) -> None:
        super().__init__()
        self.baseline_config = baseline_config
        self.objectives = tuple(objectives)
        self.rungs = RungTables([o.mode for o in self.objectives], rung_epochs(grace_period, reduction_factor, max_t),
                                reduction_factor, keep_front=keep_front, audit=audit, brackets=brackets,
                                extrapolate=extrapolate, horizon=max_t)
        self.state_file = Path(state_file) if state_file is not None else None
        self._read = False

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # the objectives are the scheduler's own (Tune's single metric does not apply)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        epoch = result.get(RUNG_EPOCH)
        if epoch is None or result.get(EVALUATED) or not math.isfinite(float(epoch)):
            return TrialScheduler.CONTINUE
        self._read_state()
        values = [result.get(RUNG_PREFIX + o.name, math.nan) for o in self.objectives]
        config = flatten(getattr(trial, "config", None) or {})
        protected = baseline_trial({trial.trial_id: config}, self.baseline_config) is not None
        decision = self.rungs.record(trial.trial_id, int(epoch), values, protected=protected)
        self._write_state()
        if decision is None:
            return TrialScheduler.CONTINUE
        if self.rungs.audit:
            logger.info("trial %s (audit: nothing stops) %s", trial.trial_id, decision.reason())
            return TrialScheduler.CONTINUE
        logger.info("trial %s %s", trial.trial_id, decision.reason())
        return TrialScheduler.STOP if decision.stop else TrialScheduler.CONTINUE

    def debug_string(self) -> str:
        sizes = ", ".join(f"epoch {e}: {len(t)}" for e, t in self.rungs.tables.items())
        return f"Using MOASHA: {len(self.rungs.stopped())} stopped; trials per rung: {sizes}"

    def _read_state(self) -> None:
        """On the first result after a --resume, continue with the tables written before it."""
        if not self._read and self.state_file is not None and self.state_file.exists():
            self.rungs = RungTables.from_dict(json.loads(self.state_file.read_text()))
        self._read = True

    def _write_state(self) -> None:
        if self.state_file is not None:
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.rungs.to_dict()))
            tmp.replace(self.state_file)
