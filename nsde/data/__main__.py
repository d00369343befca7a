"""`python -m nsde.data`: prepare (generate or convert, then cache) a data set, or draw the class figure.

    python -m nsde.data prepare --preset paper          # 10,000 spectrograms of 224x224, cached
    python -m nsde.data figure --out docs/img/classes.png
    python -m nsde.data figure --mux sum --realism --location 5 --out /tmp/sum_main_power.png
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

import numpy as np

from nsde.cli import user_errors
from nsde.data.dataset import PRESETS, prepare
from nsde.data.spectrogram import SpectrogramConfig, row_frequencies, spectrogram
from nsde.data.synthetic import LOCATIONS, MUXES, SynthConfig, synthesize, synthetic_class_names


def _prepare(args: argparse.Namespace) -> int:
    cfg = dataclasses.replace(PRESETS[args.preset], cache_dir=args.cache_dir, seed=args.seed)
    start = time.perf_counter()
    data = prepare(cfg, progress=True)
    seconds = time.perf_counter() - start
    n = len(data.y)
    start = time.perf_counter()
    _ = np.asarray(data.x[data.indices("train")], dtype=np.float32)  # load the train split into memory
    load_s = time.perf_counter() - start
    print(f"{data.path}: {n} spectrograms {data.x.shape[1:]}, splits {data.meta['counts']}")
    print(f"prepare: {seconds:.2f} s (build when not cached: {data.meta['build_seconds']:.1f} s); "
          f"train split into memory: {load_s:.2f} s")
    return 0


def _figure(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(args.seed)
    cfg = SpectrogramConfig(image_size=args.image_size)
    synth = SynthConfig(realism=args.realism, mux=args.mux)
    names = synthetic_class_names(args.mux)
    labels = np.arange(len(names))
    images = spectrogram(synthesize(labels, np.full(len(labels), args.location), synth, rng), cfg)
    freqs = row_frequencies(cfg)
    ticks = [int(np.argmin(np.abs(freqs - f))) for f in (1e3, 1e4, 1e5)]
    cols = math.ceil(len(names) / 2)  # two rows: 8 columns for the 16 "time" classes, 5 for the 10 "sum"
    fig, axes = plt.subplots(2, cols, figsize=(2.5 * cols, 6), sharex=True, sharey=True)
    for i, ax in enumerate(axes.flat):
        if i >= len(names):
            ax.set_axis_off()
            continue
        ax.imshow(images[i, 0], cmap="magma", vmin=0, vmax=1, aspect="auto")
        ax.set_title(names[i], fontsize=10)
        ax.set_yticks(ticks, ["1 kHz", "10 kHz", "100 kHz"])
        ax.set_xticks([0, args.image_size - 1], ["0", "41 ms"])
    extras = f" (mux={args.mux}{', realism' if args.realism else ''})" if args.realism or args.mux != "time" else ""
    fig.suptitle(f"One synthetic example per class, recorded at '{LOCATIONS[args.location].name}'{extras}")
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=args.dpi)
    print(f"written: {out}")
    return 0


@user_errors
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nsde.data", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="generate (or load) a preset data set and report the timings")
    prep.add_argument("--preset", choices=sorted(PRESETS), default="default")
    prep.add_argument("--seed", type=int, default=0)
    prep.add_argument("--cache-dir", default=None, help="default: $NSDE_CACHE_DIR or ~/.cache/nsde")
    fig = sub.add_parser("figure", help="PNG with one example spectrogram per class")
    fig.add_argument("--out", default="docs/img/classes.png")
    fig.add_argument("--location", type=int, default=0, choices=range(len(LOCATIONS)),
                     help="sensor location index (0 = injection point)")
    fig.add_argument("--image-size", type=int, default=128)
    fig.add_argument("--seed", type=int, default=0)
    fig.add_argument("--mux", choices=list(MUXES), default="time", help="pairs: 'time' A>B (16), 'sum' A+B (10)")
    fig.add_argument("--realism", action="store_true", help="add the per-location interference (docs/data.md)")
    fig.add_argument("--dpi", type=int, default=60)
    args = p.parse_args(argv)
    return _prepare(args) if args.command == "prepare" else _figure(args)


if __name__ == "__main__":
    sys.exit(main())
