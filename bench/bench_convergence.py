"""Learning curves to convergence: which budget does the `study` preset need? (issue 26)

    python bench/bench_convergence.py                      # 15 and 30 epochs, 2 seeds, 4 arms, 2 at a time
    python bench/bench_convergence.py --resume             # continue: finished runs are kept, cut ones resume
    python bench/bench_convergence.py --budgets 15 30 60 --resume   # add the 60-epoch budget
    python bench/bench_convergence.py --report-only        # rebuild the JSON and the figure from what ran

Every run is `python -m nsde.train` on the `study` preset with the study's recipe (ResNet-18,
AdamW lr 4e-3, wd 0.05, batch 64, cosine over the budget, drop-path 0) and one of the arms:

    plain        sigma 0
    nsde         fBm H 0.5, relative sigma 0.3, every block, noise off at evaluation (the study's arm)
    published    fBm H 0.5, absolute sigma 0.3, every block, noise on at evaluation (mean softmax of 4 passes)
    input_noise  no NSDE; white noise on the waveform at an SNR drawn per example in [-5, 20] dB

Each run's clean validation accuracy every epoch is its learning curve (the only per-epoch
pass: nothing here reads the test split). The convergence rule (`nsde.train.convergence`)
is applied to the curves: a flat tail per run and a gain of < 1 point of the arm's mean when
the budget doubles; an arm's budget is the smallest where both hold, and the rule picks the
largest arm's budget. Each run lives in its own folder under --runs (a checkpoint after every epoch),
so a stopped benchmark loses at most the epochs in flight. Writes
bench/results/convergence-cpu.json and docs/img/convergence.png.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from nsde.train.convergence import ConvergenceRule, budget_rule, diagnose  # noqa: E402

RECIPE = ["--preset", "study", "--backbone", "resnet18", "--drop-path", "0", "--lr", "4e-3", "--weight-decay", "0.05",
          "--batch-size", "64", "--depth", "all", "--anchor", "mean", "--quiet"]
RESULTS_FILE = ROOT / "bench" / "results" / "convergence-cpu.json"
ARMS = {
    "plain": ["--sigma", "0"],
    "nsde": ["--shape", "fbm", "--hurst", "0.5", "--sigma", "0.3", "--sigma-mode", "relative", "--eval-mode", "off"],
    "published": ["--shape", "fbm", "--hurst", "0.5", "--sigma", "0.3", "--sigma-mode", "absolute",
                  "--eval-mode", "mc", "--mc-samples", "4"],
    "input_noise": ["--sigma", "0", "--augment", "signal", "--augment-snr", "-5", "20"],
}


def run_dir(runs: Path, arm: str, budget: int, seed: int) -> Path:
    return runs / f"{arm}-e{budget}-s{seed}"


def one_run(runs: Path, arm: str, budget: int, seed: int, threads: int) -> str:
    out = run_dir(runs, arm, budget, seed)
    if (out / "summary.json").exists():
        return f"{out.name}: done before"
    cmd = [sys.executable, "-m", "nsde.train", *RECIPE, *ARMS[arm], "--epochs", str(budget), "--seed", str(seed),
           "--out", str(out)]
    if (out / "checkpoint.pt").exists():
        cmd.append("--resume")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with (out / "log.txt").open("a") as log:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        return f"{out.name}: FAILED (rc {rc}, see {out / 'log.txt'})"
    return f"{out.name}: {time.perf_counter() - start:.0f} s"


def collect(runs: Path, budgets: list[int], seeds: list[int], rule: ConvergenceRule) -> dict:
    """What ran (finished runs only) as curves, diagnostics, costs and the rule's verdict. A run
    whose folder is gone (a fresh checkout: runs/ is not versioned) keeps the row the results
    file already holds, so a later block adds to the earlier ones instead of losing them."""
    rows, curves = [], {}
    kept = {(r["arm"], r["budget"], r["seed"]): r for r in _previous_rows()}
    for arm in ARMS:
        for budget in budgets:
            for seed in seeds:
                path = run_dir(runs, arm, budget, seed) / "summary.json"
                if not path.exists():
                    if (arm, budget, seed) in kept:
                        old = kept[(arm, budget, seed)]
                        row = {**old, **diagnose(old["val_accuracy"], rule)}
                        rows.append(row)
                        curves.setdefault(arm, {}).setdefault(budget, []).append(row["val_accuracy"])
                    continue
                s = json.loads(path.read_text())
                hist = s["history"]
                val = [h["val_accuracy"] for h in hist]
                n_train = s["data"]["counts"]["train"]
                # an epoch's seconds hold its training and its validation pass (and, last, the BatchNorm recalibration)
                val_pass = [h["seconds"] - n_train / h["examples_per_second"] for h in hist[:-1]] or [math.nan]
                curves.setdefault(arm, {}).setdefault(budget, []).append(val)
                rows.append({"arm": arm, "budget": budget, "seed": seed, "val_accuracy": val,
                             "train_loss": [h["train_loss"] for h in hist],
                             "seconds_per_epoch": float(np.median([h["seconds"] for h in hist])),
                             "train_examples_per_second": float(np.median([h["examples_per_second"] for h in hist])),
                             "run_seconds": float(sum(h["seconds"] for h in hist)),
                             "val_pass_seconds": float(np.median(val_pass)),
                             **diagnose(val, rule)})
    done = {(r["arm"], r["budget"], r["seed"]) for r in rows}
    for key, old in kept.items():  # a row of a budget, seed or arm this invocation does not name: kept too
        if key not in done and old["arm"] in ARMS:
            rows.append({**old, **diagnose(old["val_accuracy"], rule)})
            curves.setdefault(old["arm"], {}).setdefault(old["budget"], []).append(old["val_accuracy"])
    rows.sort(key=lambda r: (list(ARMS).index(r["arm"]), r["budget"], r["seed"]))
    return {"rows": rows, "rule": budget_rule(curves, rule) if curves else None}


def _previous_rows() -> list[dict]:
    try:
        return json.loads(RESULTS_FILE.read_text()).get("rows", [])
    except (OSError, ValueError):
        return []


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted({r["budget"] for r in rows})
    fig, axes = plt.subplots(1, len(budgets), figsize=(5 * len(budgets), 3.6), sharey=True, squeeze=False)
    colours = dict(zip(ARMS, ["black", "tab:blue", "tab:red", "tab:green"], strict=True))
    for ax, budget in zip(axes[0], budgets, strict=True):
        for arm in ARMS:
            curves = [r["val_accuracy"] for r in rows if r["arm"] == arm and r["budget"] == budget]
            for i, c in enumerate(curves):
                ax.plot(range(1, len(c) + 1), c, color=colours[arm], alpha=0.8, lw=1.2,
                        ls="-" if i == 0 else "--", label=arm if i == 0 else None)
        ax.set_title(f"cosine over {budget} epochs (one line per seed)")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("clean validation accuracy")
    axes[0][0].legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budgets", type=int, nargs="+", default=[15, 30])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    p.add_argument("--parallel", type=int, default=2, help="runs at once")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "convergence")
    p.add_argument("--resume", action="store_true", help="keep finished runs and continue cut ones")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args()
    if not args.resume and not args.report_only and args.runs.exists() and any(args.runs.iterdir()):
        sys.exit(f"error: {args.runs} holds runs already; pass --resume to continue them (or remove the folder)")
    rule = ConvergenceRule()
    if not args.report_only:
        recorded = {(r["arm"], r["budget"], r["seed"]) for r in _previous_rows()}
        jobs = [(arm, b, s) for b in sorted(args.budgets) for s in args.seeds for arm in args.arms
                if not (run_dir(args.runs, arm, b, s) / "summary.json").exists() and (arm, b, s) not in recorded]
        # a run the results file holds is not retrained, even when its folder is gone (runs/ is not versioned)
        print(f"{len(jobs)} runs, {args.parallel} at a time, {args.threads} thread(s) each -> {args.runs}", flush=True)
        with ThreadPoolExecutor(args.parallel) as pool:
            for i, line in enumerate(pool.map(lambda j: one_run(args.runs, *j, args.threads), jobs), start=1):
                print(f"[{i}/{len(jobs)}] {line}", flush=True)
                report(args, rule)  # after every run: a stop keeps what finished
    report(args, rule)


def report(args, rule: ConvergenceRule) -> None:
    import torch

    result = collect(args.runs, sorted(args.budgets), args.seeds, rule)
    if not result["rows"]:
        return
    record = {"machine": {"cpu_count": os.cpu_count(), "torch": torch.__version__, "device": "cpu",
                          "torch_threads_per_run": args.threads, "runs_at_once": args.parallel},
              "args": {"budgets": sorted(args.budgets), "seeds": args.seeds, "arms": {a: ARMS[a] for a in args.arms},
                       "recipe": RECIPE},
              "rule": vars(rule) if hasattr(rule, "__dict__") else {}, **result,
              "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    out = RESULTS_FILE
    out.write_text(json.dumps(record, indent=1) + "\n")
    figure(result["rows"], ROOT / "docs" / "img" / "convergence.png")
    verdict = result["rule"]
    for arm, rows in verdict["arms"].items():
        for budget, row in rows.items():
            change = "n/a" if row["doubled_change"] is None else f"{100 * row['doubled_change']:+.1f}"
            print(f"  {arm:12s} {budget:3d} epochs: mean final val {row['mean_final']:.3f} "
                  f"({row['seeds']} seeds, {row['flat']} flat), doubling {change} points, passes {row['passes']}"
                  f"{', past its peak' if row.get('past_peak') else ''}")
    print(f"each arm's budget: {verdict.get('arm_budgets')}; the budget the rule picks: {verdict['budget']}; "
          f"wrote {out}", flush=True)
    print(markdown(result), flush=True)


def markdown(result: dict) -> str:
    """The tables docs/benchmarks.md shows: the rule's verdict per arm and budget, and each run's cost."""
    lines = ["| arm | budget | seeds | mean final val | flat tails | change at twice the budget | passes |",
             "|---|---|---|---|---|---|---|"]
    for arm, rows in result["rule"]["arms"].items():
        for budget, row in rows.items():
            change = "not run" if row["doubled_change"] is None else f"{100 * row['doubled_change']:+.1f} points"
            if row.get("past_peak"):
                change += " (past its peak)"
            lines.append(f"| {arm} | {budget} | {row['seeds']} | {row['mean_final']:.3f} | {row['flat']} of "
                         f"{row['seeds']} | {change} | {'yes' if row['passes'] else 'no'} |")
    lines += ["", "| run | final val | best epoch | tail slope (points/epoch) | s/epoch | train ex/s | "
                  "val pass s | run min |", "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['arm']} {r['budget']} ep seed {r['seed']} | {r['val_accuracy'][-1]:.3f} | {r['best_epoch']} | "
                     f"{100 * r['val_slope']:+.2f} | {r['seconds_per_epoch']:.1f} | {r['train_examples_per_second']:.0f} | "
                     f"{r['val_pass_seconds']:.1f} | {r['run_seconds'] / 60:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
