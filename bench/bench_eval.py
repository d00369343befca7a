"""Cost of each evaluation metric, and of the whole suite, relative to one training epoch.

    python bench/bench_eval.py                                   # default CPU configuration
    python bench/bench_eval.py --preset paper --backbone convnext_base --profiles full   # on a GPU

Trains the model for one epoch (timed), then runs nsde.metrics.evaluate with each profile
and eval mode, and reports every metric's seconds and its ratio to the training epoch.
Writes bench/results/eval-<preset>-<device>.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pick_device, table, write_results  # noqa: E402

from nsde.data import PRESETS, prepare  # noqa: E402
from nsde.metrics import evaluate  # noqa: E402
from nsde.metrics.evaluate import eval_config  # noqa: E402
from nsde.models import ModelConfig, NoiseConfig  # noqa: E402
from nsde.train import TrainConfig, train  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="default")
    p.add_argument("--backbone", default="convnext_atto")
    p.add_argument("--profiles", nargs="+", default=["fast", "full"], choices=["fast", "full"])
    p.add_argument("--eval-modes", nargs="+", default=["off", "on"], choices=["off", "on", "mc"])
    p.add_argument("--device", default=None)
    args = p.parse_args()
    device = pick_device(args.device)
    data = prepare(PRESETS[args.preset])
    rows = []
    for eval_mode in args.eval_modes:
        model_cfg = ModelConfig(backbone=args.backbone, noise=NoiseConfig(sigma=0.1, hurst=0.5, eval_mode=eval_mode))
        result = train(model_cfg, data, TrainConfig(epochs=1, device=str(device)), progress=False)
        epoch_s = result.history[0].seconds
        for profile in args.profiles:
            if profile == "full" and eval_mode != "off" and device.type == "cpu":
                continue  # EOT 4 x 100 steps x 4 eps on 256 examples: about an hour on 2 CPU cores
            cfg = eval_config(profile)
            report = evaluate(result.model, data, cfg)
            for metric, seconds in report.seconds.items():
                rows.append({"eval mode": eval_mode, "profile": profile, "metric": metric, "seconds": seconds,
                             "x epoch": seconds / epoch_s, "epoch s": epoch_s,
                             "settings": f"attack {cfg.attack_subset}x{cfg.apgd_steps} steps, eot {cfg.eot_iter}, "
                                         f"abc {cfg.abc_subset}x{cfg.abc_samples}"})
            print(rows[-1], flush=True)
    path = write_results(f"eval-{args.preset}", device, vars(args), rows)
    print(table(rows, ["eval mode", "profile", "metric", "seconds", "x epoch", "epoch s", "settings"]))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
