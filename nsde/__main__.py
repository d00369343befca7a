"""`python -m nsde`: a short self-check of the shaped noise and the NSDE models on this machine.

Draws exact fBm fields and reports their measured Hurst exponent and spatial variance,
then builds one NSDE model per backbone family, runs a training step and checks the
documented evaluation behaviours. Exits non-zero if a check fails.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F

from nsde.models import ModelConfig, NoiseConfig, build_model
from nsde.noise import estimate_hurst, fractional_brownian_field


def check_noise(fields: int, size: int, seed: int) -> bool:
    ok = True
    print(f"exact fBm fields ({fields} of {size}x{size}):")
    for hurst in (0.2, 0.5, 0.8):
        g = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        f = fractional_brownian_field((fields, size, size), hurst, generator=g)
        ms = (time.perf_counter() - start) * 1e3
        est = estimate_hurst(f)
        var = float(f.var(dim=(-2, -1), unbiased=False).mean())
        good = abs(est - hurst) < 0.05
        ok &= good
        print(f"  H={hurst:.1f}  estimated H={est:.3f}  mean spatial variance={var:.3f}  {ms:6.1f} ms  {'ok' if good else 'FAIL'}")
    return ok


def check_model(backbone: str, seed: int) -> bool:
    torch.manual_seed(seed)
    cfg = ModelConfig(backbone=backbone, noise=NoiseConfig(shape="fbm", hurst=0.5, sigma=0.1, eval_mode="off"))
    model = build_model(cfg)
    x, y = torch.rand(8, 1, 64, 64), torch.randint(0, 16, (8,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    loss = F.cross_entropy(model.train()(x), y)
    loss.backward()
    opt.step()
    ms = (time.perf_counter() - start) * 1e3
    model.eval()
    deterministic = torch.equal(model(x), model(x))
    good = bool(torch.isfinite(loss.detach())) and deterministic
    print(
        f"  {backbone:14s} {len(model.injected):2d} noisy blocks  train step {ms:6.1f} ms  "
        f"loss {loss.detach().item():.3f}  eval(noise off) deterministic: {deterministic}  {'ok' if good else 'FAIL'}"
    )
    return good


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nsde", description=__doc__)
    p.add_argument("--fields", type=int, default=256, help="fields drawn per Hurst exponent")
    p.add_argument("--size", type=int, default=64, help="field side")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    ok = check_noise(args.fields, args.size, args.seed)
    print("NSDE models (fBm H=0.5, sigma=0.1 in every residual block, 64x64 input, batch 8):")
    for backbone in ("convnext_atto", "resnet18"):
        ok &= check_model(backbone, args.seed)
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
