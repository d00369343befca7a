"""What scoring a trained model with a named evaluation profile costs, stage by stage, measured on
scaled-down subsets and projected to the profile's sizes.

    python bench/bench_scoring_cost.py runs/NAME/TRIAL/checkpoint_000029 --profile confirm --split test
    python bench/bench_scoring_cost.py RUN [RUN ...] --names A C --scale 0.03125 --name confirm_scoring

Each RUN is a folder holding `checkpoint.pt` (`python -m nsde.train`, or a search trial's
checkpoint). The profile's subsets (sweep, attack, ABC, stability, smoothing) are scaled by
`--scale` (at least `--min-n` examples each), `nsde.metrics.evaluate` runs on the split with them,
and each stage's seconds are multiplied by (the profile's examples / the measured examples): the
stages are loops over examples in batches, so their cost is linear in the examples, and the small
batches of the scaled run make the projection a little high, not low. The clean stage always runs
on the whole split. Run one process per model, two at once on 2 cores, as a search scores trials.
Writes bench/results/<--name>-<device>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pick_device, table, write_results  # noqa: E402

from nsde.data import load, prepare  # noqa: E402
from nsde.data.dataset import data_config_from_dict  # noqa: E402
from nsde.metrics import evaluate  # noqa: E402
from nsde.metrics.evaluate import EVAL_PROFILES, eval_config  # noqa: E402
from nsde.train import load_checkpoint, read_checkpoint  # noqa: E402

# the report's timer of each stage -> the config field that sizes it (None: the whole split)
TIMER_SUBSET = {"clean": None, "sweep": "sweep_subset", "snr": "sweep_subset", "apgd": "attack_subset",
                "checks": "checks_subset", "abc": "abc_subset", "attribution_stability": "stability_subset",
                "smoothing": "smoothing_subset"}


def scaled_config(cfg, split_n: int, scale: float, min_n: int):
    """`cfg` with every subset scaled by `scale` (0 = the whole split, scaled too), and the
    examples of each subset field at the profile's and at the scaled size."""
    fields = sorted({f for f in TIMER_SUBSET.values() if f and f != "checks_subset"})
    full = {f: min(getattr(cfg, f) or split_n, split_n) for f in fields}
    small = {f: min(n, max(min_n, round(n * scale))) for f, n in full.items()}
    # the checks run on the attacked examples, or a subset of them (checks_subset)
    full["checks_subset"] = min(cfg.checks_subset or full["attack_subset"], full["attack_subset"])
    small["checks_subset"] = min(small["attack_subset"], max(min_n, round(full["checks_subset"] * scale)))
    return dataclasses.replace(cfg, **small), full, small


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--names", nargs="+", default=None, help="a name per run (default: the folder names)")
    p.add_argument("--profile", default="confirm", choices=sorted(EVAL_PROFILES))
    p.add_argument("--split", default="test", choices=["val", "test"])
    p.add_argument("--scale", type=float, default=1 / 16, help="fraction of every subset measured")
    p.add_argument("--min-n", type=int, default=4, help="the fewest examples a scaled subset keeps")
    p.add_argument("--device", default=None)
    p.add_argument("--name", default=None, help="results file name (default: scoring_cost-<profile>)")
    args = p.parse_args()
    if not 0 < args.scale <= 1:
        p.error(f"--scale must be in (0, 1], but got {args.scale}")
    names = args.names or [r.parent.name if r.name.startswith("checkpoint_") else r.name for r in args.runs]
    if len(names) != len(args.runs):
        p.error(f"--names gives {len(names)} names for {len(args.runs)} runs")
    device = pick_device(args.device)
    rows = []
    for run, name in zip(args.runs, names):
        ckpt = read_checkpoint(run / "checkpoint.pt")
        data_path = Path(ckpt["data"]["path"])
        data = load(data_path) if (data_path / "meta.json").exists() else prepare(
            data_config_from_dict(ckpt["data"]["config"]))
        model = load_checkpoint(run, device=str(device))
        noise = ckpt["model_config"].get("noise", {})
        split_n = len(data.indices(args.split))
        cfg, full, small = scaled_config(eval_config(args.profile), split_n, args.scale, args.min_n)
        t0 = time.perf_counter()
        report = evaluate(model, data, cfg, split=args.split)
        wall = time.perf_counter() - t0
        total = 0.0
        stages = {t: s for t, s in report.seconds.items() if t != "total"}  # a new stage: KeyError below
        for timer, seconds in stages.items():
            field = TIMER_SUBSET[timer]
            n_full, n_small = (full[field], small[field]) if field else (split_n, split_n)
            projected = seconds * n_full / n_small
            total += projected
            rows.append({"model": name, "eval mode": noise.get("eval_mode", "off"), "stage": timer,
                         "measured n": n_small, "profile n": n_full, "measured s": round(seconds, 1),
                         "projected s": round(projected, 1)})
        rows.append({"model": name, "eval mode": noise.get("eval_mode", "off"), "stage": "total",
                     "measured n": None, "profile n": None, "measured s": round(wall, 1),
                     "projected s": round(total, 1)})
        print(table(rows[-len(stages) - 1:], list(rows[-1])), flush=True)
    path = write_results(args.name or f"scoring_cost-{args.profile}", device,
                         {**vars(args), "runs": [str(r) for r in args.runs]}, rows)
    print(table(rows, list(rows[0])))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
