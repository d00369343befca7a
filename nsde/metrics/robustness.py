"""Robustness: accuracy under added input noise (the sweep) and under APGD-CE L2 attacks.

APGD is Croce & Hein (2020), "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks", run through torchattacks. A stochastic model
(an NSDE whose evaluation draws noise) is attacked with expectation over transformation
(`eot_iter` gradient samples per step; Athalye et al. 2018), otherwise its noisy gradients
overstate robustness. The injected noise draws from the model's own generator, so the
`torch.manual_seed(seed)` that torchattacks calls at the start of every attack does not
freeze it (checked in the tests).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from nsde.metrics.stats import Estimate, proportion
from nsde.noise import sample_noise
from nsde.train import predict

__all__ = ["noisy_inputs", "sweep_accuracy", "apgd_robust_accuracy", "is_stochastic", "correct_predictions"]

SWEEP_KINDS = ("gaussian", "fbm")


def is_stochastic(model: torch.nn.Module) -> bool:
    """Whether `model` in eval mode draws noise (an NSDE with eval_mode 'on' or 'mc')."""
    was = model.training
    model.eval()
    try:
        return bool(getattr(model, "stochastic", False))
    finally:
        model.train(was)


def noisy_inputs(x: torch.Tensor, kind: str, intensity: float, *, hurst: float, generator: torch.Generator) -> torch.Tensor:
    """x + intensity * xi, clipped back to [0, 1] (the valid spectrogram range).

    `gaussian`: i.i.d. N(0, 1) per pixel; `fbm`: a fractional Brownian field per image and
    channel (zero mean, expected spatial variance 1), so intensities are comparable.
    """
    if kind == "gaussian":
        xi = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    elif kind == "fbm":
        xi = sample_noise("fbm", x.shape, hurst, generator=generator, device=x.device, dtype=x.dtype)
    else:
        raise ValueError(f"unknown sweep noise {kind!r}; known kinds: {list(SWEEP_KINDS)}")
    return (x + intensity * xi).clamp(0.0, 1.0)


def correct_predictions(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> np.ndarray:
    """(N,) bool: model(x) (in its current mode, batched on its device) predicts y."""
    if len(x) == 0:
        return np.zeros(0, dtype=bool)
    return (predict(model, x, batch_size=batch_size).argmax(-1) == y.cpu()).numpy()


def sweep_accuracy(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    kinds: Sequence[str] = SWEEP_KINDS,
    intensities: Sequence[float] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 0.75, 1.0),
    hurst: float = 0.5,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, list[tuple[float, Estimate]]]:
    """Accuracy of `model` (eval mode) on noisy copies of x, per kind and intensity."""
    model.eval()
    device = next(model.parameters()).device
    result = {}
    for k, kind in enumerate(kinds):
        gen = torch.Generator(device=device).manual_seed(seed * 1000 + k)
        points = []
        for intensity in intensities:
            correct = []
            for start in range(0, len(x), batch_size):
                xb = noisy_inputs(x[start : start + batch_size].to(device), kind, intensity, hurst=hurst, generator=gen)
                correct.append(correct_predictions(model, xb, y[start : start + batch_size], batch_size))
            points.append((float(intensity), proportion(np.concatenate(correct))))
        result[kind] = points
    return result


def apgd_robust_accuracy(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: Sequence[float] = (0.05, 0.1, 0.15, 0.2),
    steps: int = 100,
    eot_iter: int = 4,
    seed: int = 0,
    batch_size: int = 128,
    return_adversarial: bool = False,
) -> tuple[dict[float, Estimate], dict[float, torch.Tensor]]:
    """Robust accuracy under torchattacks' APGD(norm="L2", loss="ce") at each eps.

    The model is attacked in eval mode, i.e. with its configured evaluation behaviour;
    `eot_iter` applies when that behaviour is stochastic (else 1). A point counts as robust
    at eps if torchattacks' own verdict says so (classified correctly at the start and
    never misclassified during the attack: points it already misclassifies are returned
    unattacked and are not robust) *and* the returned example is still classified
    correctly by one more evaluation pass. (APGD returns x itself for points it could not
    break, so "adv differs from x" says nothing about robustness.) A point broken at a
    smaller eps is broken at every larger eps (the same adversarial example lies in the
    larger ball), so robust accuracy never rises with eps. If the model has no noise
    generator of its own, a seeded one is installed for the call: torchattacks reseeds the
    global RNG at every attack, which would replay the same noise for every batch and eps.

    Returns:
        {eps: Estimate} and, if asked, {eps: adversarial examples (N, ...) on CPU}.
    """
    import torchattacks

    if steps < 1:
        raise ValueError(f"`steps >= 1` must hold, but got steps={steps}")
    if any(e <= 0 for e in eps) or list(eps) != sorted(eps):
        raise ValueError(f"`eps` must be positive and increasing, but got {list(eps)}")
    model.eval()
    device = next(model.parameters()).device
    eot = eot_iter if is_stochastic(model) else 1
    own_generator = hasattr(model, "set_noise_generator") and getattr(model, "generator", None) is None
    if own_generator:
        model.set_noise_generator(torch.Generator(device=device).manual_seed(seed + 31))
    still_robust = np.ones(len(x), dtype=bool)
    results, adversarial = {}, {}
    try:
        for e in eps:
            attack = torchattacks.APGD(model, norm="L2", eps=float(e), steps=steps, loss="ce", eot_iter=eot, seed=seed)
            robust, advs = [], []
            for start in range(0, len(x), batch_size):
                xb, yb = x[start : start + batch_size].to(device), y[start : start + batch_size].to(device)
                # perturb() (what APGD.__call__ runs) also returns the attack's per-point verdict.
                survived, adv = attack.perturb(xb, yb, cheap=True)
                adv = adv.detach()
                robust.append(survived.cpu().numpy() & correct_predictions(model, adv, yb.cpu(), batch_size))
                if return_adversarial:
                    advs.append(adv.cpu())
            still_robust &= np.concatenate(robust) if robust else np.zeros(0, dtype=bool)
            results[float(e)] = proportion(still_robust.copy())
            if return_adversarial:
                adversarial[float(e)] = torch.cat(advs)
    finally:
        if own_generator:
            model.set_noise_generator(None)
    return results, adversarial
