"""Measured Hurst exponent of the exact and the approximate (spectral) fBm methods.

    python bench/bench_noise_hurst.py

For each H, draws `--fields` fields of `--size`^2 and estimates H from the mean variogram
(nsde.noise.estimate_hurst, lags 1..size/4). Writes bench/results/noise_hurst-<device>.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pick_device, table, write_results  # noqa: E402

from nsde.noise import estimate_hurst, fractional_brownian_field  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hursts", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--fields", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    args = p.parse_args()
    device = pick_device(args.device)
    rows = []
    for hurst in args.hursts:
        row = {"H": hurst}
        for method in ("exact", "spectral"):
            g = torch.Generator(device=device).manual_seed(args.seed)
            fields = fractional_brownian_field((args.fields, args.size, args.size), hurst, method=method, generator=g)
            est = estimate_hurst(fields)
            row[f"{method} H_est"] = est
            row[f"{method} error"] = est - hurst
        rows.append(row)
        print(row, flush=True)
    path = write_results("noise_hurst", device, vars(args), rows)
    print(table(rows, list(rows[0])))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
