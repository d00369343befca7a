"""Batched inference: the logits and the accuracy of a classifier on a tensor or a split.

Training (its validation accuracy) and the metrics (predictions under noise and attack)
both need it. It lives in its own module, not in `nsde.train`, so that `nsde.metrics`
imports it without importing training, and not in `nsde.models`, because it serves any
classifier (plain timm models and attack wrappers too), not only the NSDE models built there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from nsde.data import Split

__all__ = ["accuracy", "predict"]


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, *, batch_size: int = 256, device=None, amp: bool = False):
    """Logits of `model` (in its current mode) for x (N, 1, S, S), batched: (N, K) float32 on CPU."""
    device = device or next(model.parameters()).device
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device, non_blocking=True).contiguous(memory_format=fmt)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out.append(model(xb).float().cpu())
    return torch.cat(out) if out else torch.empty(0)


def accuracy(model: torch.nn.Module, split: Split, *, batch_size: int = 256, amp: bool = False) -> float:
    """Top-1 accuracy of `model` in eval mode (its configured evaluation noise) on `split`."""
    was_training = model.training
    model.eval()
    try:
        logits = predict(model, split.x, batch_size=batch_size, amp=amp)
    finally:
        model.train(was_training)
    return float((logits.argmax(-1) == split.y).float().mean())
