"""Training-step throughput (images/s) of plain vs NSDE models.

    python bench/bench_train_step.py            # convnext_base, convnext_tiny, resnet50; 224x224, batch 128
    python bench/bench_train_step.py --batch 16 --steps 3 --backbones resnet50   # a quicker CPU run

One step is forward + cross-entropy backward + AdamW step on random 1-channel inputs and
16 classes. On CUDA: bf16 autocast and channels_last (as BASELINES.md); on CPU: fp32.
Noise goes into every residual block. Writes bench/results/train_step-<device>.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pick_device, random_batch, table, time_call, write_results  # noqa: E402

from nsde.models import ModelConfig, NoiseConfig, build_model  # noqa: E402

VARIANTS = {
    "plain": NoiseConfig(sigma=0.0),
    "white": NoiseConfig(shape="white", sigma=0.1),
    "fbm-exact": NoiseConfig(shape="fbm", sigma=0.1, method="exact"),
    "fbm-spectral": NoiseConfig(shape="fbm", sigma=0.1, method="spectral"),
}


def step_fn(model, x, y, opt, device):
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)

    def step():
        with autocast:
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbones", nargs="+", default=["convnext_base", "convnext_tiny", "resnet50"])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--hursts", type=float, nargs="+", default=[0.5, 0.9], help="for the fbm variants")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default=None)
    args = p.parse_args()
    device = pick_device(args.device)
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    x, y = random_batch(args.batch, args.image_size, device)
    rows = []
    for backbone in args.backbones:
        plain_ips = None
        for variant in args.variants:
            hursts = args.hursts if variant.startswith("fbm") else [None]
            for hurst in hursts:
                noise = VARIANTS[variant] if hurst is None else NoiseConfig(**{**VARIANTS[variant].__dict__, "hurst": hurst})
                torch.manual_seed(0)
                model = build_model(ModelConfig(backbone=backbone, noise=noise)).to(device, memory_format=fmt).train()
                opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
                seconds = time_call(step_fn(model, x, y, opt, device), device, repeats=args.steps, warmup=args.warmup)
                ips = args.batch / seconds
                plain_ips = ips if variant == "plain" else plain_ips
                row = {"backbone": backbone, "variant": variant, "hurst": hurst if hurst is not None else "-",
                       "step ms": seconds * 1e3, "img/s": ips,
                       "vs plain": ips / plain_ips if plain_ips else "-"}
                rows.append(row)
                print(row, flush=True)
                del model, opt
    path = write_results("train_step", device, vars(args), rows)
    print(table(rows, ["backbone", "variant", "hurst", "step ms", "img/s", "vs plain"]))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
