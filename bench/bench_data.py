"""Data set build and cache-load times, and training throughput of the default configuration.

    python bench/bench_data.py --preset paper      # 10,000 spectrograms of 224x224
    python bench/bench_data.py --preset default --train-epochs 2

Builds the preset into a fresh temporary cache (so the build is really timed), loads it back
from the cache in a new call, materialises the train split, and optionally trains plain and
NSDE (fBm H=0.5, sigma=0.1, every block) models for a few epochs to report examples/s.
Writes bench/results/data-<preset>-<device>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pick_device, table, write_results  # noqa: E402

from nsde.data import PRESETS, prepare  # noqa: E402
from nsde.models import ModelConfig, NoiseConfig  # noqa: E402
from nsde.train import TrainConfig, train  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    p.add_argument("--train-epochs", type=int, default=0, help="0: skip the training throughput")
    p.add_argument("--backbone", default="convnext_atto")
    p.add_argument("--device", default=None)
    args = p.parse_args()
    device = pick_device(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        cfg = dataclasses.replace(PRESETS[args.preset], cache_dir=cache)
        start = time.perf_counter()
        data = prepare(cfg)
        rows.append({"what": f"build {args.preset} ({len(data.y)} x {data.x.shape[1:]})", "seconds": time.perf_counter() - start})
        start = time.perf_counter()
        data = prepare(cfg, progress=False)
        rows.append({"what": "load from cache (memory-mapped)", "seconds": time.perf_counter() - start})
        start = time.perf_counter()
        np.asarray(data.x, dtype=np.float32).sum()
        rows.append({"what": "read every spectrogram into memory", "seconds": time.perf_counter() - start})
        for name, sigma in (("plain", 0.0), ("nsde fbm H=0.5 sigma=0.1", 0.1)):
            if not args.train_epochs:
                break
            model = ModelConfig(backbone=args.backbone, noise=NoiseConfig(sigma=sigma, hurst=0.5))
            hist = train(model, data, TrainConfig(epochs=args.train_epochs, device=str(device)), progress=False).history
            rows.append({"what": f"train {args.backbone} {name}: examples/s (last epoch)",
                         "seconds": hist[-1].seconds, "examples/s": hist[-1].examples_per_second})
    for row in rows:
        print(row)
    path = write_results(f"data-{args.preset}", device, vars(args), rows)
    print(table(rows, ["what", "seconds", "examples/s"]))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
