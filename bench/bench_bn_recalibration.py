"""What BatchNorm recalibration does to a ResNet NSDE evaluated with noise off, and per-location
accuracy of the plain ResNet-18 on the same data.

    python bench/bench_bn_recalibration.py          # default preset, resnet18, 5 epochs (the default space's recipe)

Each NSDE is trained once with `bn_recalibration=0`; its validation and test accuracy are
measured with the statistics training collected (noise on) and again after
`recalibrate_batchnorm` on 64 training batches without noise, so the two numbers differ only
in the BatchNorm statistics. The paired difference over the same examples comes with its
bootstrap interval. The plain model (sigma 0) gives the per-location test accuracy quoted in
docs/data.md. Writes bench/results/bn_recalibration-<device>.json.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pick_device, table, write_results  # noqa: E402

from nsde.data import PRESETS, prepare  # noqa: E402
from nsde.metrics.robustness import correct_predictions  # noqa: E402
from nsde.metrics.stats import paired_difference, proportion  # noqa: E402
from nsde.models import ModelConfig, NoiseConfig, recalibrate_batchnorm  # noqa: E402
from nsde.train import TrainConfig, train  # noqa: E402

NSDES = {
    "fbm H0.5 absolute sigma 0.3, all blocks": NoiseConfig(shape="fbm", hurst=0.5, sigma=0.3),
    "fbm H0.5 absolute sigma 1.0, all blocks": NoiseConfig(shape="fbm", hurst=0.5, sigma=1.0),
    "fbm H0.5 relative sigma 0.5, all blocks": NoiseConfig(shape="fbm", hurst=0.5, sigma=0.5, sigma_mode="relative"),
}


def _accuracy(model, data, split) -> np.ndarray:
    part = data.split(split)
    return correct_predictions(model, part.x, part.y, 256)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="default")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--batches", type=int, default=64)
    p.add_argument("--device", default=None)
    args = p.parse_args()
    device = pick_device(args.device)
    data = prepare(PRESETS[args.preset])
    rows, locations = [], {}
    for seed in args.seeds:
        cfg = TrainConfig(epochs=args.epochs, seed=seed, bn_recalibration=0, device=str(device))
        for name, noise in [("plain", NoiseConfig(sigma=0.0)), *NSDES.items()]:
            start = time.perf_counter()
            model = train(ModelConfig(backbone="resnet18", noise=noise), data, cfg, progress=False).model.eval()
            seconds = time.perf_counter() - start
            row = {"seed": seed, "model": name, "train s": seconds}
            if name == "plain":
                test = data.split("test")
                ok = _accuracy(model, data, "test")
                locations[seed] = {data.location_names[i]: dataclasses.asdict(proportion(ok[test.location.numpy() == i]))
                                   for i in np.unique(test.location.numpy())}
                row.update({"val before": float(_accuracy(model, data, "val").mean()), "test before": float(ok.mean())})
                rows.append(row)
                print(row, flush=True)
                continue
            recal = copy.deepcopy(model)
            train_split = data.split("train")
            perm = torch.randperm(len(train_split), generator=torch.Generator().manual_seed(seed))
            order = list(perm.split(cfg.batch_size))[: args.batches]
            start = time.perf_counter()
            recalibrate_batchnorm(recal, (train_split.x[idx].to(device) for idx in order))
            row["recalibration s"] = time.perf_counter() - start
            for split in ("val", "test"):
                before, after = _accuracy(model, data, split), _accuracy(recal, data, split)
                diff, pval = paired_difference(after.astype(float), before.astype(float), resamples=2000, seed=0)
                row.update({f"{split} before": float(before.mean()), f"{split} after": float(after.mean()),
                            f"{split} after - before": f"{diff.value:+.3f} [{diff.low:+.3f}, {diff.high:+.3f}]",
                            f"{split} p": pval, f"{split} n": diff.n})
            rows.append(row)
            print(row, flush=True)
    path = write_results("bn_recalibration", device, {**vars(args), "locations_of_plain_test": locations}, rows)
    print(table(rows, ["seed", "model", "val before", "val after", "val after - before", "test before", "test after",
                       "test after - before"]))
    print("per-location test accuracy of the plain ResNet-18:", locations)
    print(f"written: {path}")


if __name__ == "__main__":
    main()
