"""Cluster-scale estimate (issue 28): the wall time and GPU-hours of a paper-scale search, 200
trials of the `paper` space at 30 epochs on 8 H200s, for FIFO and MOASHA stopping rules, with 1,
2 or 4 trials packed on a GPU; and whether the final front stays FIFO's.

    python bench/bench_cluster_scale.py --rules fifo moasha moasha-grace3 moasha-grace9 --seeds 5

Simulated, not run: `search.simulate.simulate` drives the search's sampler and MOASHA scheduler
on the `crossing` problem (the measured learning curves) on a simulated clock, and
`search.cluster` turns its epochs into H200 seconds: measured training and evaluation
throughputs, counted evaluation passes, and assumptions (its docstring lists which is which).
Packing's throughput gain (`--efficiency`) is an ASSUMPTION: no GPU measurement of packing
exists (bench/results/packing-cpu.json and docs/benchmarks.md "Packing trials" are the CPU
analogue only).

Per rule and packing, the median over seeds of: wall hours, GPU-hours (busy: the GPUs' work;
held: GPUs x wall), complete trials, and the final front (the non-dominated set of the complete
trials' true final values, `Problem.true_final`) against FIFO's with one trial a GPU, same seed:
in how many seeds it is the same set, and the median fraction of FIFO's hypervolume it reaches.
The goal the issue states is "within 1 hour on 8 H200s with the final front unchanged".
Writes bench/results/cluster_scale-sim.json (or `--name`).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, table  # noqa: E402
from bench_search_efficiency import RULES, rule_kwargs  # noqa: E402

from search.cluster import COSTS, DEFAULT_EFFICIENCY, cluster_search, front, front_fraction, paper_costs  # noqa: E402
from search.searcher import SAMPLERS  # noqa: E402
from search.simulate import PROBLEMS  # noqa: E402

GOAL_HOURS = 1.0  # the goal: the search within 1 hour on 8 H200s, the final front unchanged


def parse_efficiency(items: list[str]) -> dict[int, float]:
    """K=E pairs (the GPU's throughput with K trials over one trial's) over the defaults."""
    out = dict(DEFAULT_EFFICIENCY)
    for item in items:
        k, _, e = item.partition("=")
        out[int(k)] = float(e)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rules", nargs="+", default=["fifo", "moasha", "moasha-grace3", "moasha-grace9"],
                   choices=list(RULES), help="stopping rules (bench_search_efficiency.RULES; fifo always runs)")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--epochs", type=int, default=30, help="the paper space's train/epochs")
    p.add_argument("--gpus", type=int, default=8)
    p.add_argument("--pack", nargs="+", type=int, default=[1, 2, 4], help="trials sharing a GPU")
    p.add_argument("--efficiency", nargs="*", default=[], metavar="K=E",
                   help=f"ASSUMED GPU throughput with K trials over one trial's (default {DEFAULT_EFFICIENCY})")
    p.add_argument("--sampler", default="tpe", choices=list(SAMPLERS), help="the search's sampler (its default: tpe)")
    p.add_argument("--grace-period", type=int, default=1)
    p.add_argument("--reduction-factor", type=float, default=3.0)
    p.add_argument("--name", default="cluster_scale-sim", help="results file name (bench/results/NAME.json)")
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    efficiency = parse_efficiency(args.efficiency)
    args.pack = list(dict.fromkeys([1, *args.pack]))  # FIFO with one trial a GPU is every seed's reference
    missing = [k for k in args.pack if k not in efficiency]
    if missing:
        p.error(f"--efficiency gives no factor for --pack {missing}")
    start = time.perf_counter()
    problem = PROBLEMS["crossing"]
    costs, arms = paper_costs()
    rules = list(dict.fromkeys(["fifo", *args.rules]))

    def kwargs_of(name: str) -> dict:
        return {"reduction_factor": args.reduction_factor, **rule_kwargs(
            name, grace_period=args.grace_period, reduction_factor=args.reduction_factor, max_epochs=args.epochs)}

    runs, fronts = [], {}
    for seed, rule, pack in itertools.product(range(args.seeds), rules, args.pack):
        figures, result = cluster_search(problem, costs=costs, trials=args.trials, max_epochs=args.epochs,
                                         gpus=args.gpus, pack=pack, efficiency=efficiency[pack],
                                         sampler=args.sampler, seed=seed, **kwargs_of(rule))
        fronts[seed, rule, pack] = front(problem, result)
        runs.append({"seed": seed, "rule": rule, "pack": pack, **figures})
    for run in runs:
        mine, fifo = fronts[run["seed"], run["rule"], run["pack"]], fronts[run["seed"], "fifo", 1]
        run["front_unchanged"] = bool(mine.shape == fifo.shape and np.allclose(mine, fifo))
        run["front_hv_fraction"] = front_fraction(problem, mine, fifo)

    rows = []
    for rule, pack in itertools.product(rules, args.pack):
        mine = [r for r in runs if r["rule"] == rule and r["pack"] == pack]

        def med(key: str, mine: list = mine) -> float:
            return statistics.median(r[key] for r in mine)

        unchanged = sum(r["front_unchanged"] for r in mine)
        rows.append({"rule": rule, "pack": pack, "efficiency": efficiency[pack], "wall h": med("wall_h"),
                     "GPU-h busy": med("gpu_h_busy"), "GPU-h held": med("gpu_h_held"), "complete": med("complete"),
                     "front unchanged": f"{unchanged}/{len(mine)}", "front HV / FIFO's": med("front_hv_fraction"),
                     "goal met": bool(med("wall_h") <= GOAL_HOURS and unchanged == len(mine))})
    wall_seconds = time.perf_counter() - start
    columns = ["rule", "pack", "efficiency", "wall h", "GPU-h busy", "GPU-h held", "complete", "front unchanged",
               "front HV / FIFO's", "goal met"]
    print(table(rows, columns))
    met = [f"{r['rule']} x{r['pack']}" for r in rows if r["goal met"]]
    fastest = min(rows, key=lambda r: r["wall h"])
    fifo = next(r for r in rows if r["rule"] == "fifo" and r["pack"] == 1)
    hv = fastest["front HV / FIFO's"]
    verdict = (f"goal: <= {GOAL_HOURS:g} h on {args.gpus} H200s with the final front unchanged. FIFO (1 a GPU): "
               f"{fifo['wall h']:.2f} h, {fifo['GPU-h busy']:.1f} GPU-h. Fastest: {fastest['rule']} x{fastest['pack']} "
               f"{fastest['wall h']:.2f} h, front unchanged in {fastest['front unchanged']} seeds, {hv:.3f} of "
               f"FIFO's hypervolume. Meeting the goal: {', '.join(met) or 'none'}.")
    print(verdict)
    print(f"wall seconds of this script: {wall_seconds:.1f}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{args.name}.json"
    record = {
        "machine": "simulated clock; costs from H200 measurements (search.cluster.COSTS); wall_seconds: 2-core CPU",
        "args": vars(args), "problem": "crossing", "goal": verdict,
        "costs": COSTS, "trial_costs_mean": dataclasses.asdict(costs),
        "trial_costs_per_arm": {k: dataclasses.asdict(v) for k, v in arms.items()},
        "efficiency": {str(k): v for k, v in efficiency.items()},
        "efficiency_note": "ASSUMED, not measured: no GPU measurement of packing exists; "
                           "bench/results/packing-cpu.json is the CPU analogue only",
        "rows": rows, "runs": runs, "wall_seconds": wall_seconds, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"written: {path}")


if __name__ == "__main__":
    main()
