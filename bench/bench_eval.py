"""Cost of each evaluation metric (the attack's sanity checks included), and of the whole
suite, relative to one training epoch and to the default space's 5-epoch training run.

    python bench/bench_eval.py                    # the default space's pair of profiles, on CPU
    python bench/bench_eval.py --preset paper --backbones convnext_base --profiles fast full   # a GPU
    python bench/bench_eval.py --profiles rung --name eval-rung    # MOASHA's rung evaluation

Trains each model for one epoch (timed), then runs nsde.metrics.evaluate (validation split)
with each profile and eval mode, and reports every metric's seconds, its ratio to the
training epoch and, for the total, to `--budget-epochs` epochs (the default space trains 5).
Writes bench/results/eval-<preset>-<device>.json (or <--name>-<device>.json).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pick_device, table, write_results  # noqa: E402

from nsde.data import PRESETS, prepare  # noqa: E402
from nsde.metrics import evaluate  # noqa: E402
from nsde.metrics.evaluate import EVAL_PROFILES, eval_config  # noqa: E402
from nsde.models import ModelConfig, NoiseConfig  # noqa: E402
from nsde.train import TrainConfig, train  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="default")
    p.add_argument("--backbones", nargs="+", default=["convnext_atto", "resnet18"])
    p.add_argument("--profiles", nargs="+", default=["cpu-search", "cpu-final"], choices=sorted(EVAL_PROFILES))
    p.add_argument("--eval-modes", nargs="+", default=["off", "on"], choices=["off", "on", "mc"])
    p.add_argument("--budget-epochs", type=int, default=5, help="the training run the evaluation is compared with")
    p.add_argument("--device", default=None)
    p.add_argument("--name", default=None, help="results file name (default: eval-<preset>)")
    args = p.parse_args()
    device = pick_device(args.device)
    data = prepare(PRESETS[args.preset])
    rows = []
    for backbone in args.backbones:
        for eval_mode in args.eval_modes:
            model_cfg = ModelConfig(backbone=backbone,
                                    noise=NoiseConfig(sigma=0.1, hurst=0.5, depth=2, eval_mode=eval_mode))
            result = train(model_cfg, data, TrainConfig(epochs=1, device=str(device)), progress=False)
            epoch_s = result.history[0].seconds
            for profile in args.profiles:
                if profile in ("full", "cpu-final") and eval_mode != "off" and device.type == "cpu":
                    continue  # EOT 4 x 100 steps x (4 + 2 + 3 checks) eps: far too long on 2 CPU cores
                cfg = eval_config(profile)
                report = evaluate(result.model, data, cfg, split="val")
                for metric, seconds in report.seconds.items():
                    rows.append({"backbone": backbone, "eval mode": eval_mode, "profile": profile, "metric": metric,
                                 "seconds": seconds, "x epoch": seconds / epoch_s,
                                 f"x {args.budget_epochs} epochs": seconds / (args.budget_epochs * epoch_s),
                                 "epoch s": epoch_s,
                                 "settings": f"attack {cfg.attack_subset}x{cfg.apgd_steps} steps, eot {cfg.eot_iter}, "
                                             f"abc {cfg.abc_subset}x{cfg.abc_samples}, checks {cfg.checks}"})
                print(rows[-1], flush=True)
    path = write_results(args.name or f"eval-{args.preset}", device, vars(args), rows)
    print(table(rows, ["backbone", "eval mode", "profile", "metric", "seconds", "x epoch",
                       f"x {args.budget_epochs} epochs", "epoch s"]))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
