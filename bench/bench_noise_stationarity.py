"""Per-pixel variance of the noise shapes under both anchors, and the Hurst exponent they show.

    python bench/bench_noise_stationarity.py

Variance maps: for every (shape, anchor, H), draws `--fields` fields of `--size`^2 (seed
`--seed`) and takes each pixel's variance over the fields. A map's "corner/centre" ratio is
its largest corner-pixel variance over the mean variance of the central pixel(s) (2 x 2 on an
even grid); for the mean anchor the four corners are equal by symmetry, for the corner anchor
the pinned corner has variance 0 and the largest is the opposite one. Each ratio is also
computed exactly from the law's covariance. Hurst: `estimate_hurst` of fbm and stationary
fields (`--hurst-fields` of `--hurst-size`^2) at the default lags and at lags 1..4.

Writes bench/results/noise_stationarity-<device>.json and the figure `--figure`
(default docs/img/noise_variance.png).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import pick_device, table, write_results  # noqa: E402

from nsde.noise import dense_factor, estimate_hurst, hurst_shapes, sample_noise, stein_embedding  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# (shape, anchor) rows of the figure, top to bottom; the table also has white under "mean".
ROWS = (("fbm", "mean"), ("fbm", "corner"), ("stationary", "corner"), ("stationary", "mean"), ("white", "corner"))
COMBOS = (*ROWS, ("white", "mean"))


def corner_centre_ratio(var_map: np.ndarray) -> float:
    """Largest corner-pixel variance over the mean variance of the central pixel(s)."""
    h, w = var_map.shape
    corners = var_map[[0, 0, -1, -1], [0, -1, 0, -1]]
    centre = var_map[(h - 1) // 2 : h // 2 + 1, (w - 1) // 2 : w // 2 + 1].mean()
    return float(corners.max() / centre)


def _centred(cov: np.ndarray) -> np.ndarray:
    centre = np.eye(cov.shape[0]) - 1.0 / cov.shape[0]
    return centre @ cov @ centre


def _stationary_covariance(hurst: float, h: int, w: int) -> np.ndarray:
    """The stationary shape's covariance on the grid: the circulant of Stein's embedding."""
    emb = stein_embedding(hurst, h, w)
    circ = np.fft.ifft2(emb.sqrt_eig**2 * emb.sqrt_eig.size).real  # (Lh, Lw) first row
    ys, xs = (a.ravel() for a in np.meshgrid(np.arange(h), np.arange(w), indexing="ij"))
    return circ[(ys[:, None] - ys[None, :]) % emb.torus[0], (xs[:, None] - xs[None, :]) % emb.torus[1]]


def exact_variance_map(shape: str, anchor: str, hurst: float, size: int) -> np.ndarray:
    """Per-pixel variance of the law itself (before normalisation for `stationary`: ratios only)."""
    if shape == "fbm":  # the dense factor is the exact law on the grid
        factor = dense_factor(hurst, size, size, anchor=anchor)
        return (factor**2).sum(0).reshape(size, size)
    if shape == "stationary":
        cov = _stationary_covariance(hurst, size, size)
        return np.diag(_centred(cov) if anchor == "mean" else cov).reshape(size, size)
    return np.ones((size, size))  # white: 1 - 1/n or 1 at every pixel


def variance_rows(args, device) -> tuple[list[dict], dict]:
    rows, maps = [], {}
    for shape, anchor in COMBOS:
        for hurst in args.hursts:
            g = torch.Generator(device=device).manual_seed(args.seed)
            fields = sample_noise(shape, (args.fields, args.size, args.size), hurst, anchor=anchor, generator=g,
                                  dtype=torch.float64)
            var_map = fields.var(dim=0).cpu().numpy()  # (n, h, w) -> (h, w)
            exact = exact_variance_map(shape, anchor, hurst, args.size)
            maps[shape, anchor, hurst] = var_map
            rows.append({
                "shape": shape, "anchor": anchor, "H": hurst,
                "corner/centre sampled": corner_centre_ratio(var_map),
                "corner/centre exact": corner_centre_ratio(exact),
                # None: a pixel of variance 0 (the pinned corner)
                "max/min sampled": float(var_map.max() / var_map.min()) if var_map.min() > 0 else None,
                "mean second moment": float(fields.square().mean()),
                # share of that second moment in the field's spatial mean: what global average
                # pooling passes on (0 for anchor "mean")
                "spatial-mean share": float(fields.mean(dim=(-2, -1)).square().mean() / fields.square().mean()),
            })
            print(rows[-1], flush=True)
    return rows, maps


def hurst_rows(args, device) -> list[dict]:
    rows = []
    for hurst in args.hurst_grid:
        row = {"H": hurst}
        for shape in hurst_shapes():
            g = torch.Generator(device=device).manual_seed(args.seed)
            fields = sample_noise(shape, (args.hurst_fields, args.hurst_size, args.hurst_size), hurst, generator=g)
            row[f"{shape} H_est"] = estimate_hurst(fields)
            row[f"{shape} H_est lags 1-4"] = estimate_hurst(fields, max_lag=4)
        rows.append(row)
        print(row, flush=True)
    return rows


def figure(maps: dict, hursts: list[float], size: int, fields: int, path: Path) -> None:
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is a dev dependency
        raise SystemExit("matplotlib is needed for the figure: run `pip install matplotlib`") from None
    fig = Figure(figsize=(3.2 * len(hursts), 2.7 * len(ROWS)), layout="constrained")
    axes = fig.subplots(len(ROWS), len(hursts), squeeze=False)
    for i, (shape, anchor) in enumerate(ROWS):
        for j, hurst in enumerate(hursts):
            ax, var_map = axes[i, j], maps[shape, anchor, hurst]
            im = ax.imshow(var_map, cmap="viridis", vmin=0.0)
            fig.colorbar(im, ax=ax, shrink=0.8)
            ax.set_title(f"H={hurst}: corner/centre {corner_centre_ratio(var_map):.2f}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(f"{shape}, anchor {anchor}", fontsize=10)
    fig.suptitle(f"Per-pixel variance, {size}x{size}, {fields} fields each")
    fig.savefig(path, dpi=90)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hursts", type=float, nargs="+", default=[0.1, 0.5, 0.9])
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--fields", type=int, default=20000)
    p.add_argument("--hurst-grid", type=float, nargs="+", default=[0.1, 0.3, 0.5, 0.7, 0.9])
    p.add_argument("--hurst-size", type=int, default=64)
    p.add_argument("--hurst-fields", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--figure", type=Path, default=ROOT / "docs" / "img" / "noise_variance.png")
    args = p.parse_args()
    device = pick_device(args.device)
    var_rows, maps = variance_rows(args, device)
    h_rows = hurst_rows(args, device)
    record_args = {**vars(args), "figure": os.path.relpath(args.figure.resolve(), ROOT)}
    path = write_results("noise_stationarity", device, record_args, var_rows + h_rows)
    figure(maps, args.hursts, args.size, args.fields, args.figure)
    print(table(var_rows, list(var_rows[0])))
    print(table(h_rows, list(h_rows[0])))
    print(f"written: {path}, {args.figure}")


if __name__ == "__main__":
    main()
