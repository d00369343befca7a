"""Search efficiency on the real `default` space: random, TPE and NSGA-II, each with FIFO and
MOASHA, one seed per arm, each arm a real `python -m search.run` (Ray Tune, Optuna, training
and the search profile's evaluation; no final re-evaluation).

    python bench/bench_search_efficiency_real.py                       # 6 arms, ~1.5 h on 2 cores
    python bench/bench_search_efficiency_real.py --arms tpe-fifo tpe-moasha
    python bench/bench_search_efficiency_real.py --space default-long --arms random-fifo random-third \
        --seed 0 --work runs/bench-stopping-0 --name search_efficiency-long-seed0-cpu   # ~2 h a seed

A `-third` arm is MOASHA with its first rung at a third of the space's epochs (`--grace-period
epochs // 3`, the rule docs/search.md recommends); on the `default` space's 5 epochs that is
grace 1, so it is compared on `default-long` (15 epochs, first rung at 5).

Budget: a FIFO arm runs `--fifo-trials` trials of the space's epochs; a MOASHA arm starts
`--moasha-trials` trials, most of which stop at a rung. Every arm is read at the FIFO budget of
trial-epochs (`hv_at_budget`: the trials that had ended when the trial-epochs spent reached
it; later ones are reported but not counted) and at the budget every arm spent at least
(`hv_at_common`: a MOASHA arm may stop so many trials that it spends less than the FIFO
budget). Per arm: trials, complete / pruned, trial-epochs, wall seconds (the search's own
total, `timing.json`), the hypervolume of the complete trials (validation numbers of the
search profile, reference point 0 on every objective: all four default objectives lie in
[0, 1]) at those budgets and at the arm's end, and the curve of hypervolume against
trial-epochs, and for an early-stopping arm whether the configurations that ended best on each
objective in its sampler's FIFO arm completed in it (`best_kept`, `analysis.rungs.best_kept`:
with the random sampler and the same seed both arms draw the same first configurations; TPE's
later draws depend on what the scheduler let complete, so a TPE twin may never draw them). One
seed per arm: a single search's hypervolume at this size moves by the luck
of a few trials, so these figures show what the machinery does on the real space, not a
ranking of samplers (the simulated benchmark, bench_search_efficiency.py, has the seeds for
that).

Each arm's search lives in `--work` (MLflow in a SQLite file, Tune folders); an arm whose
search already finished there is read back, not rerun, so an interrupted benchmark resumes.
An NSGA-II arm whose random twin completed fewer trials than NSGA-II's population is not run:
it would replay the twin trial for trial (`replays_random`), and its row says so (`ran`).
Writes bench/results/search_efficiency-default-cpu.json (or `--name`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, table  # noqa: E402

from analysis.hypervolume import hypervolume  # noqa: E402
from analysis.load import Search, load_tune  # noqa: E402
from analysis.rungs import best_kept  # noqa: E402
from search.searcher import nsga2_population  # noqa: E402
from spaces import get_space  # noqa: E402

ARMS = ("random-fifo", "tpe-fifo", "nsga2-fifo", "random-moasha", "tpe-moasha", "nsga2-moasha", "random-third",
        "tpe-third")


def space_epochs(space: str) -> int:
    """The epochs every trial of `space` trains (a constant of the space; the budget is counted in them)."""
    epochs = get_space(space).constants.get("train/epochs")
    if not isinstance(epochs, int):
        raise SystemExit(f"--space {space}: its trials' epochs are searched or unset ({epochs!r}); this benchmark "
                         "counts its budget in the epochs every trial trains (a constant train/epochs)")
    return epochs


def scheduler_options(arm: str, epochs: int) -> list[str]:
    """search.run's scheduler options for an arm: `-third` is MOASHA with its first rung at a third of the epochs."""
    scheduler = arm.split("-")[1]
    if scheduler == "third":
        return ["--scheduler", "moasha", "--grace-period", str(max(1, epochs // 3))]
    return ["--scheduler", scheduler]


def run_arm(arm: str, *, work: Path, trials: int, seed: int, space: str) -> None:
    """Run one arm's search to its end (skipped when its search.json exists)."""
    folder = work / "ray" / arm
    if (folder / "search.json").exists():
        return
    sampler = arm.split("-")[0]
    cmd = [sys.executable, "-m", "search.run", "--space", space, "--sampler", sampler,
           *scheduler_options(arm, space_epochs(space)),
           "--num-samples", str(trials), "--seed", str(seed), "--no-final", "--name", arm,
           "--storage-path", str(work / "ray"), "--mlflow-uri", f"sqlite:///{work / 'mlflow.db'}",
           "--experiment", "search-efficiency"]
    if folder.exists():  # interrupted earlier: continue it
        cmd.append("--resume")
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def replays_random(work: Path, arm: str, trials: int) -> bool:
    """Whether NSGA-II's arm would run exactly the random arm's trials: its first generation is
    Optuna's RandomSampler with the same seed, drawing the same values in the same order, and a
    later generation starts only once `nsga2_population` (search.searcher) trials
    are complete. When the random arm (same scheduler) completed fewer than that, NSGA-II would
    never leave its first generation: the arm is the random arm again, and is not rerun."""
    if not arm.startswith("nsga2-"):
        return False
    twin = work / "ray" / arm.replace("nsga2-", "random-", 1)
    if not (twin / "search.json").exists():
        return False
    return int((load_tune(twin).trials["status"] == "complete").sum()) < nsga2_population(trials)


def budget_curve(search: Search) -> list[dict]:
    """Hypervolume of the complete trials against trial-epochs spent, trials taken in the order
    they ended (reference point 0: the default objectives are bounded in [0, 1])."""
    t = search.trials.sort_values("ended", kind="stable")
    values = search.values()[search.trials.index.get_indexer(t.index)]
    epochs = t["epoch"].fillna(0).to_numpy(dtype=float)
    ref = np.zeros(len(search.objectives))
    out = []
    for k in range(1, len(t) + 1):
        out.append({"trial_epochs": float(epochs[:k].sum()), "trial_id": str(t.index[k - 1]),
                    "status": str(t["status"].iloc[k - 1]),
                    "hypervolume": hypervolume(values[:k], search.directions, ref)})
    return out


def at_budget(curve: list[dict], budget: float) -> float:
    """The hypervolume once no more than `budget` trial-epochs were spent."""
    inside = [c["hypervolume"] for c in curve if c["trial_epochs"] <= budget + 1e-9]
    return inside[-1] if inside else 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--fifo-trials", type=int, default=6, help="FIFO arms: trials (the budget)")
    p.add_argument("--moasha-trials", type=int, default=12, help="MOASHA arms: trials started")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--space", default="default")
    p.add_argument("--work", default=str(ROOT / "runs" / "bench-search-efficiency"))
    p.add_argument("--name", default="search_efficiency-default-cpu", help="bench/results/NAME.json")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows, curves, searches = [], {}, {}
    for arm in args.arms:
        trials = args.fifo_trials if arm.endswith("fifo") else args.moasha_trials
        source = arm
        if replays_random(work, arm, trials) and not (work / "ray" / arm / "search.json").exists():
            source = arm.replace("nsga2-", "random-", 1)
            print(f"{arm}: NSGA-II would replay {source} trial for trial (its first generation never fills); "
                  f"{source}'s search stands for it", flush=True)
        run_arm(source, work=work, trials=trials, seed=args.seed, space=args.space)
        search = searches[arm] = load_tune(work / "ray" / source)
        curve = curves[arm] = budget_curve(search)
        status = search.trials["status"].value_counts()
        rows.append({"arm": arm, "ran": source, "trials": len(search.trials), "complete": int(status.get("complete", 0)),
                     "pruned": int(status.get("pruned", 0)), "failed": int(status.get("failed", 0)),
                     "trial_epochs": curve[-1]["trial_epochs"] if curve else 0.0,
                     "wall_seconds": round(float(search.timing.get("total_s", math.nan)), 1),
                     "hv_final": curve[-1]["hypervolume"] if curve else 0.0, "front": len(search.front())})
    budget = args.fifo_trials * float(space_epochs(args.space))
    common = min(row["trial_epochs"] for row in rows)  # what every arm spent at least
    for row in rows:
        row["hv_at_budget"] = at_budget(curves[row["arm"]], budget)
        row["hv_at_common"] = at_budget(curves[row["arm"]], common)
        twin = row["arm"].split("-")[0] + "-fifo"
        if not row["arm"].endswith("-fifo") and twin in searches:
            kept = best_kept(searches[twin], searches[row["arm"]])
            row["best_kept"] = {name: r["rule_status"] for name, r in kept.iterrows()}
    columns = ["arm", "ran", "trials", "complete", "pruned", "failed", "trial_epochs", "wall_seconds", "front",
               "hv_at_common", "hv_at_budget", "hv_final"]
    print(table(rows, columns))
    for row in rows:
        if "best_kept" in row:  # what the rule did with its FIFO twin's best configuration, per objective
            print(f"{row['arm']}: FIFO's best per objective -> " + ", ".join(f"{k} {v}" for k, v in row["best_kept"].items()))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{args.name}.json"
    record = {"machine": {"host_cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()},
              "command": "python bench/bench_search_efficiency_real.py " + " ".join(sys.argv[1:]),
              "args": vars(args) | {"budget_trial_epochs": budget, "common_trial_epochs": common},
              "rows": rows, "curves": curves,
              "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
