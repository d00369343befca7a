"""Shared helpers of the benchmarks: device choice, synchronised timing, machine record, JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def pick_device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def machine(device: torch.device) -> dict:
    """What the figures were measured on."""
    info = {
        "host_cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def random_batch(batch: int, image_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random 1-channel inputs (channels_last on CUDA, as training uses) and labels of 16 classes."""
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    x = torch.rand(batch, 1, image_size, image_size, device=device).to(memory_format=fmt)
    return x, torch.randint(0, 16, (batch,), device=device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, *, repeats: int, warmup: int = 1) -> float:
    """Median wall time of `fn()` in seconds, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_results(name: str, device: torch.device, args: dict, rows: list[dict]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    tag = "cuda-" + torch.cuda.get_device_name(device).split()[-1].lower() if device.type == "cuda" else "cpu"
    path = RESULTS / f"{name}-{tag}.json"
    record = {"machine": machine(device), "args": args, "rows": rows, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def table(rows: list[dict], columns: list[str]) -> str:
    """A markdown table of `rows` over `columns`."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
