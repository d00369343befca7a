"""Cost of the SNR-sweep data (nsde.data.snr): building its cache, and loading it back.

    python bench/bench_snr_cache.py                       # default preset, val split, SNR_LEVELS_DB

Prepares the preset into a fresh temporary cache, then times, for one split: re-synthesising
its waveforms (`split_waveforms`), the noisy spectrograms at each SNR level (`snr_spectrograms`,
first call: noise + STFT + atomic write), and a second call per level (a cached load).
Writes bench/results/snr_cache-<device>.json (the synthesis runs on the CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_results  # noqa: E402

from nsde.data import PRESETS, SNR_LEVELS_DB, prepare, snr_spectrograms, split_waveforms  # noqa: E402


def _timed(fn) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="default")
    p.add_argument("--split", choices=("train", "val", "test"), default="val")
    args = p.parse_args()
    load_before = os.getloadavg()  # the machine may be shared: a busy one stretches every row
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        cfg = dataclasses.replace(PRESETS[args.preset], cache_dir=cache)
        data, seconds = _timed(lambda: prepare(cfg, progress=False))
        n = len(data.indices(args.split))
        rows.append({"what": f"prepare {args.preset} ({len(data.y)} x {data.x.shape[1:]}), for reference",
                     "seconds": seconds})
        _, seconds = _timed(lambda: split_waveforms(data, args.split))
        rows.append({"what": f"split_waveforms {args.split} ({n} examples): re-synthesis + write", "seconds": seconds})
        build = 0.0
        for snr_db in SNR_LEVELS_DB:
            _, seconds = _timed(lambda: snr_spectrograms(data, args.split, snr_db))
            build += seconds
            rows.append({"what": f"snr_spectrograms {args.split} {snr_db:+g} dB: noise + STFT + write",
                         "seconds": seconds})
        rows.append({"what": f"cache build, all {len(SNR_LEVELS_DB)} levels (with split_waveforms)",
                     "seconds": build + rows[1]["seconds"]})
        loads = []
        for snr_db in SNR_LEVELS_DB:
            _, seconds = _timed(lambda: snr_spectrograms(data, args.split, snr_db))
            loads.append(seconds)
        rows.append({"what": "cached load, one level (median)", "seconds": sorted(loads)[len(loads) // 2]})
        rows.append({"what": f"cached load, all {len(SNR_LEVELS_DB)} levels", "seconds": sum(loads)})
    command = ("python bench/bench_snr_cache.py " + " ".join(sys.argv[1:])).strip()
    load = {"before": load_before, "after": os.getloadavg()}
    record = {"command": command, **vars(args), "load_average_1_5_15min": load}
    path = write_results("snr_cache", torch.device("cpu"), record, rows)
    print(table(rows, ["what", "seconds"]))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
