"""Generation time of noise fields for ConvNeXt-Base's feature maps (224x224, batch 128).

    python bench/bench_noise.py                      # all four shapes, H = 0.5 and 0.9
    python bench/bench_noise.py --batch 16 --repeats 2   # a quicker CPU run

Writes bench/results/noise-<device>.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pick_device, table, time_call, write_results  # noqa: E402

from nsde.noise import DENSE_MAX_POINTS, fractional_brownian_field, stein_embedding, white_field  # noqa: E402

# (channels, size) of ConvNeXt-Base's four stages at 224x224 input.
CONVNEXT_BASE_MAPS = [(128, 56), (256, 28), (512, 14), (1024, 7)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--hursts", type=float, nargs="+", default=[0.5, 0.9])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    args = p.parse_args()
    device = pick_device(args.device)
    rows = []
    for channels, size in CONVNEXT_BASE_MAPS:
        shape = (args.batch, channels, size, size)
        cases = [("white", None, lambda s=shape: white_field(s, device=device))]
        for h in args.hursts:
            for method in ("exact", "spectral"):
                cases.append((method, h, lambda s=shape, h=h, m=method: fractional_brownian_field(s, h, method=m, device=device)))
        for method, hurst, fn in cases:
            seconds = time_call(fn, device, repeats=args.repeats)
            row = {"shape": str(shape), "method": method, "hurst": hurst if hurst is not None else "-",
                   "ms": seconds * 1e3, "Mfields/s": args.batch * channels / seconds / 1e6}
            if method == "exact":  # which exact algorithm "exact" picked for this size
                row["algorithm"] = ("dense" if size * size <= DENSE_MAX_POINTS else
                                    "stein " + "x".join(map(str, stein_embedding(hurst, size, size).torus)))
            rows.append(row)
            print(row, flush=True)
    path = write_results("noise", device, vars(args), rows)
    print(table(rows, ["shape", "method", "hurst", "algorithm", "ms", "Mfields/s"]))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
