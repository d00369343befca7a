"""Trials per hour with 1, 2 and 4 trials packed on one device.

On a GPU machine: `--gpus-per-trial 1 / 0.5 / 0.25` on one GPU, and the GPU's mean
utilisation while packed (sampled with nvidia-smi). On a CPU machine, the analogue: the
same fixed workload with 1, 2 and 4 concurrent trials sharing the cores.

    .venv/bin/python bench/bench_packing.py                 # 8 trials of bench/pack_space.yaml per setting
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import ray
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

HERE = Path(__file__).resolve().parent


def _gpu_sampler(samples: list[float], stop: threading.Event) -> None:
    while not stop.wait(1.0):
        out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True)
        if out.returncode == 0:
            samples.append(float(out.stdout.split()[0]))


def main() -> int:
    from search.run import SearchSettings, run_search

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num-samples", type=int, default=8)
    p.add_argument("--packing", type=int, nargs="+", default=[1, 2, 4])
    args = p.parse_args()
    gpu = torch.cuda.is_available()
    cores = os.cpu_count() or 1
    rows = []
    for k in args.packing:
        tmp = Path(tempfile.mkdtemp(prefix=f"bench-pack{k}-"))
        ray.init(num_cpus=cores, num_gpus=1 if gpu else 0, include_dashboard=False, logging_level="WARNING")
        settings = SearchSettings(space=str(HERE / "pack_space.yaml"), num_samples=args.num_samples,
                                  storage_path=str(tmp / "runs"), mlflow_uri=f"sqlite:///{tmp / 'mlflow.db'}",
                                  name=f"pack{k}", final=False, max_concurrent=k,
                                  gpus_per_trial=1 / k if gpu else 0.0,
                                  cpus_per_trial=(cores / k if not gpu else max(1.0, cores / k)))
        samples: list[float] = []
        stop = threading.Event()
        sampler = threading.Thread(target=_gpu_sampler, args=(samples, stop), daemon=True)
        if gpu:
            sampler.start()
        start = time.perf_counter()
        outcome = run_search(settings)
        stop.set()
        ray.shutdown()
        tune_s = outcome.timing["tune_s"]
        done = sum(r.status == "complete" for r in outcome.rows)
        rows.append({"packed": k, "device": "gpu" if gpu else f"cpu ({cores} cores)", "trials": done,
                     "tune_s": tune_s, "trials_per_hour": 3600 * done / tune_s,
                     "mean_trial_s": sum(t["wall_s"] for t in outcome.timing["trials"]) / len(outcome.timing["trials"]),
                     "gpu_util_pct": sum(samples) / len(samples) if samples else None,
                     "wall_s": time.perf_counter() - start})
        print({k2: round(v, 2) if isinstance(v, float) else v for k2, v in rows[-1].items()}, flush=True)
    device = torch.device("cuda" if gpu else "cpu")
    print("written:", write_results("packing", device, {"num_samples": args.num_samples}, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
