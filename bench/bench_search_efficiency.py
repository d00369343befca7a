"""Search efficiency: hypervolume against trial-epochs for random, TPE and NSGA-II, each with
FIFO and MOASHA (or other stopping rules, `--rules`), on multi-objective test problems with
learning curves (search.simulate).

    python bench/bench_search_efficiency.py --problems zdt1 dtlz2   # 20 seeds
    python bench/bench_search_efficiency.py --problems crossing --rules moasha moasha-brackets \\
        moasha-grace3 moasha-grace9 --name search_efficiency-crossing

Every arm spends the same budget of trial-epochs: what `--fifo-trials` full trials of
`--max-epochs` epochs cost (a rung evaluation costs `--rung-cost` epochs, measured at 0.66-0.75
of an epoch for the default space: bench_eval.py --profiles rung). The target of a seed is the
hypervolume random sampling with FIFO reaches with its whole budget; each arm's figure is the
budget it needed to reach that target, as a ratio to random-FIFO's (1 = as costly; below 1 =
cheaper). Reported per arm: the median ratio over seeds with a bootstrap 95 % interval of the
median (seeds resampled), how many seeds reached the target at all (a seed that never does
counts as an infinite ratio), the mean final hypervolume, and in how many seeds the
configuration that ends best on each objective (of those the search tried) was kept running
("best kept", one count per objective). Writes
bench/results/search_efficiency-sim.json (or `--name`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, table  # noqa: E402

from search.moasha import rung_epochs  # noqa: E402
from search.simulate import PROBLEMS, budget_to_reach, simulate  # noqa: E402

SAMPLERS = ("random", "tpe", "nsga2")
# the stopping rules compared (issue: early stopping that does not stop the regularised
# configurations): name -> simulate()'s scheduler arguments; `rule_kwargs` resolves "brackets":
# "all" to the rungs + 1 brackets (the last never stops) and "grace_period": "third" to a third of
# the trials' epochs (the rule the crossing benchmark chose, docs/benchmarks.md)
RULES: dict[str, dict] = {
    "fifo": {"scheduler": "fifo"},
    "moasha": {"scheduler": "moasha"},
    "moasha-grace3": {"scheduler": "moasha", "grace_period": 3},
    "moasha-grace9": {"scheduler": "moasha", "grace_period": 9},
    "moasha-third": {"scheduler": "moasha", "grace_period": "third"},
    "moasha-brackets": {"scheduler": "moasha", "brackets": "all"},
    "moasha-keepfront": {"scheduler": "moasha", "keep_front": True},
    "moasha-extrapolate": {"scheduler": "moasha", "extrapolate": True},
    "moasha-extrapolate-keepfront": {"scheduler": "moasha", "extrapolate": True, "keep_front": True},
    # the grace period from a rung audit of the first 10 complete trials (a quarter of the budget)
    "moasha-auditgrace": {"scheduler": "moasha", "audit_trials": 10},
}
DEFAULT_RULES = ("fifo", "moasha")


def rule_kwargs(name: str, *, grace_period: int, reduction_factor: float, max_epochs: int) -> dict:
    """`simulate()`'s scheduler arguments of the rule `name` (`RULES`) for trials of `max_epochs`."""
    kw = {"grace_period": grace_period, **RULES[name]}
    if kw["grace_period"] == "third":
        kw["grace_period"] = max(1, max_epochs // 3)
    if kw.get("brackets") == "all":
        kw["brackets"] = len(rung_epochs(kw["grace_period"], reduction_factor, max_epochs)) + 1
    return kw


def median_interval(ratios: list[float], *, resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Median of `ratios` (inf allowed) and the 2.5 / 97.5 percentiles of its bootstrap over seeds.
    (Not `nsde.metrics.stats.bootstrap`: it leaves non-finite resamples out, and here an
    infinite median, a target most seeds never reached, must count.)"""
    rng = np.random.default_rng(seed)
    a = np.array(ratios, dtype=float)
    medians = np.median(a[rng.integers(0, len(a), size=(resamples, len(a)))], axis=1)
    # order statistics, no interpolation: an infinite ratio (a seed that never reached the target) stays inf
    return (float(np.median(a)), float(np.quantile(medians, 0.025, method="lower")),
            float(np.quantile(medians, 0.975, method="higher")))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problems", nargs="+", default=["zdt1", "dtlz2"], choices=list(PROBLEMS))
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--fifo-trials", type=int, default=40, help="the budget: this many full trials")
    p.add_argument("--max-epochs", type=int, default=27)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--grace-period", type=int, default=1)
    p.add_argument("--reduction-factor", type=float, default=3.0)
    p.add_argument("--rung-cost", type=float, default=0.7)
    p.add_argument("--rung-keep-front", action="store_true", help="MOASHA keeps every rung's non-dominated front")
    p.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=list(SAMPLERS))
    p.add_argument("--rules", nargs="+", default=list(DEFAULT_RULES), choices=list(RULES),
                   help="stopping rules (fifo is the baseline and always runs)")
    p.add_argument("--name", default="search_efficiency-sim", help="results file name (bench/results/NAME.json)")
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    budget = args.fifo_trials * args.max_epochs
    rows, runs = [], []
    start = time.perf_counter()
    rules = list(dict.fromkeys(["fifo", *args.rules]))
    samplers = list(dict.fromkeys(["random", *args.samplers]))  # random + FIFO is every seed's target

    def kwargs_of(name: str) -> dict:
        return {"keep_front": args.rung_keep_front, **rule_kwargs(
            name, grace_period=args.grace_period, reduction_factor=args.reduction_factor, max_epochs=args.max_epochs)}

    for problem in args.problems:
        results = {}
        for seed, sampler, rule in itertools.product(range(args.seeds), samplers, rules):
            results[seed, sampler, rule] = simulate(
                PROBLEMS[problem], sampler=sampler, seed=seed, budget=budget, max_epochs=args.max_epochs,
                workers=args.workers, reduction_factor=args.reduction_factor, rung_cost=args.rung_cost,
                num_samples_hint=args.fifo_trials, **kwargs_of(rule))
        for sampler, rule in itertools.product(samplers, rules):
            ratios, finals, trials, best_stopped = [], [], [], []
            for seed in range(args.seeds):
                base = results[seed, "random", "fifo"]
                target = base.hypervolume[-1]
                r = results[seed, sampler, rule]
                ratios.append(budget_to_reach(r, target) / budget_to_reach(base, target))
                finals.append(r.hypervolume[-1] if r.hypervolume else 0.0)
                trials.append(r.trials)
                best_stopped.append(r.best_stopped(PROBLEMS[problem]))
                runs.append({"problem": problem, "seed": seed, "sampler": sampler, "scheduler": rule,
                             "trials": r.trials, "complete": len(r.budget), "stopped": len(r.stopped),
                             "final_hypervolume": finals[-1], "budget_ratio": ratios[-1],
                             "best_stopped": best_stopped[-1], "grace_from_audit": r.grace})
            med, low, high = median_interval(ratios)
            kept = [sum(not b[k] for b in best_stopped) for k in range(len(best_stopped[0]))]
            rows.append({"problem": problem, "sampler": sampler, "scheduler": rule,
                         "median budget ratio": med, "95% low": low, "95% high": high,
                         "seeds reached": f"{sum(math.isfinite(x) for x in ratios)}/{args.seeds}",
                         "mean final HV": statistics.mean(finals), "mean trials": statistics.mean(trials),
                         "best kept": "/".join(f"{k}" for k in kept) + f" of {args.seeds}"})
            print(rows[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{args.name}.json"
    record = {"machine": "simulated clock (search.simulate); wall time on the 2-core CPU below",
              "args": vars(args), "budget_trial_epochs": budget, "wall_seconds": time.perf_counter() - start,
              "rows": rows, "runs": runs, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(table(rows, ["problem", "sampler", "scheduler", "median budget ratio", "95% low", "95% high",
                       "seeds reached", "mean final HV", "mean trials", "best kept"]))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
