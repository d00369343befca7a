"""Trials per hour of a search and the platform's overhead against the trials' own work.

    .venv/bin/python bench/bench_search.py                         # runs the default search (~22 min)
    .venv/bin/python bench/bench_search.py --from runs/default-...  # analyses a finished search

Overhead per trial = the trial's wall time as the driver sees it (start to end) minus its
own training and evaluation time: worker start-up, imports, loading the data set by
reference, building the model, Tune reports and checkpoint copies. Search-level overhead
= Ray start + data hand-off (the driver's `prepare`, a cache hit once built) + logging the
front's MLflow models; the MLflow callback (driver-side, concurrent with trials) is listed
on its own. Run it with nothing else running: two torch processes slow each other here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402


def slot_gaps(timing: dict) -> tuple[float, float]:
    """(start-up gaps, tail) in slot-seconds: time a slot waited between one trial's end and the
    next trial's start (actor start-up, imports, scheduling), and at the end of the search for
    the other slots' last trials. Trials are assigned greedily to the slot that freed first."""
    trials = sorted((t for t in timing["trials"] if t.get("started_at")), key=lambda t: t["started_at"])
    free = [timing["tune_started_at"]] * timing["slots"]
    gaps = 0.0
    for t in trials:
        i = min(range(len(free)), key=lambda k: free[k])
        gaps += max(0.0, t["started_at"] - free[i])
        free[i] = t["started_at"] + t["wall_s"]
    tail = sum(timing["tune_ended_at"] - f for f in free)
    return gaps, tail


def summarise(timing: dict) -> list[dict]:
    trials = [t for t in timing["trials"] if t["status"] == "complete"]
    work = sum(t["train_s"] + t["eval_s"] for t in trials)
    per_trial = sum(t["overhead_s"] for t in trials)
    search_level = timing["ray_init_s"] + timing["data_s"] + timing.get("models_s", 0.0)
    rows = [{
        "trials": len(timing["trials"]),
        "complete": len(trials),
        "total_min": timing["total_s"] / 60,
        "tune_min": timing["tune_s"] / 60,
        "final_eval_min": timing.get("final_eval_s", 0.0) / 60,
        "test_eval_min": timing.get("test_eval_s", 0.0) / 60,
        "trials_per_hour": 3600 * len(trials) / timing["tune_s"],
        "mean_train_s": sum(t["train_s"] for t in trials) / len(trials),
        "mean_eval_s": sum(t["eval_s"] for t in trials) / len(trials),
        "mean_trial_overhead_s": per_trial / len(trials),
        "search_overhead_s": search_level,
        "mlflow_callback_s": timing.get("mlflow_callback_s"),
        "overhead_pct_of_trial_work": 100 * (per_trial + search_level) / work,
    }]
    if "tune_started_at" in timing:
        gaps, tail = slot_gaps(timing)
        rows[0].update({
            "slots": timing["slots"],
            "slot_utilisation_pct": 100 * work / (timing["slots"] * timing["tune_s"]),
            "startup_gaps_slot_s": gaps,
            "tail_idle_slot_s": tail,
            "overhead_incl_startup_pct": 100 * (per_trial + search_level + gaps) / work,
        })
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="folder", type=Path, default=None, help="a finished search's Tune folder")
    p.add_argument("--num-samples", type=int, default=None)
    args = p.parse_args()
    folder = args.folder
    if folder is None:
        from search.run import SearchSettings, run_search

        settings = SearchSettings(**({"num_samples": args.num_samples} if args.num_samples else {}))
        folder = run_search(settings).experiment_dir
    timing = json.loads((folder / "timing.json").read_text())
    rows = summarise(timing)
    for k, v in rows[0].items():
        print(f"{k:>28}: {v:.3f}" if isinstance(v, float) else f"{k:>28}: {v}")
    device = torch.device("cpu")
    print("written:", write_results("search", device, {"folder": str(folder)}, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
