"""Training-step cost of relative sigma (a per-sample RMS reduction per noisy block) and the anchors.

    python bench/bench_sigma_mode.py                       # the default space's backbones, 64x64, batch 64
    python bench/bench_sigma_mode.py --image-size 224 --batch 128 --backbones convnext_base resnet50  # on a GPU

One step is forward + cross-entropy backward + AdamW step on random 1-channel inputs (16
classes), noise (fBm, H 0.5, sigma 0.2) in every block whose noise reaches the logits. The
variants differ only in sigma_mode and anchor; the rows are interleaved and repeated
(`--rounds`) so that drift of a shared machine hits every variant alike.
Writes bench/results/sigma_mode-<device>.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pick_device, random_batch, table, time_call, write_results  # noqa: E402
from bench_train_step import step_fn  # noqa: E402

from nsde.models import ModelConfig, NoiseConfig, build_model  # noqa: E402

VARIANTS = {
    "absolute": NoiseConfig(sigma=0.2),
    "relative": NoiseConfig(sigma=0.2, sigma_mode="relative"),
    "relative, corner": NoiseConfig(sigma=0.2, sigma_mode="relative", anchor="corner"),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbones", nargs="+", default=["convnext_atto", "resnet18"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default=None)
    args = p.parse_args()
    device = pick_device(args.device)
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    x, y = random_batch(args.batch, args.image_size, device)
    rows = []
    for backbone in args.backbones:
        steps = {}
        for name, noise in VARIANTS.items():
            torch.manual_seed(0)
            model = build_model(ModelConfig(backbone=backbone, noise=noise)).to(device, memory_format=fmt).train()
            steps[name] = step_fn(model, x, y, torch.optim.AdamW(model.parameters(), lr=1e-4), device)
        times = {name: [] for name in VARIANTS}
        for _ in range(args.rounds):
            for name, fn in steps.items():
                times[name].append(time_call(fn, device, repeats=args.steps, warmup=2))
        base = statistics.median(times["absolute"])
        for name, ts in times.items():
            seconds = statistics.median(ts)
            rows.append({"backbone": backbone, "variant": name, "step ms": seconds * 1e3,
                         "img/s": args.batch / seconds, "vs absolute": base / seconds,
                         "rounds ms": [round(t * 1e3, 1) for t in ts]})
            print(rows[-1], flush=True)
    path = write_results("sigma_mode", device, vars(args), rows)
    print(table(rows, ["backbone", "variant", "step ms", "img/s", "vs absolute"]))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
