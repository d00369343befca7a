"""Randomized smoothing certification (Cohen, Rosenfeld & Kolter 2019, CERTIFY).

The smoothed classifier g(x) = argmax_c P(f(x + N(0, sigma^2 I)) = c) of a base classifier f
is certifiably constant within the L2 ball of radius sigma * Phi^-1(p_A) around x, where p_A
is a lower bound on the top class's probability. CERTIFY estimates it in two rounds: n0
noisy copies pick the top class c_A, n fresh copies count it, and the one-sided
Clopper-Pearson bound at level alpha (statsmodels' `proportion_confint`, method "beta", at
2 alpha for its two-sided interval) gives p_A; below 1/2 the smoothed classifier abstains.
With probability at least 1 - alpha per example, a certified radius is correct.

The noise is added to the spectrogram (no clipping: the certificate is about the Gaussian
law). The base classifier is the model's evaluation-mode prediction (an NSDE with noise on
at evaluation draws its own noise inside each pass, which the certificate covers: f is then
itself random, and the counts are of its draws). Kept here rather than taken from a library:
none of the maintained ones fits nsde's models and seeded evaluation (Cohen's reference code
is a script, not a package).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import norm
from statsmodels.stats.proportion import proportion_confint

from nsde.predict import predict

__all__ = ["Certificate", "certify", "certified_accuracy", "sample_counts"]

ABSTAIN = -1


@dataclass(frozen=True)
class Certificate:
    """CERTIFY's answer per example: the smoothed prediction (ABSTAIN = -1), the certified L2
    radius (0 when abstaining), the lower bound p_A and whether the prediction is the label."""

    prediction: np.ndarray  # (N,) int
    radius: np.ndarray  # (N,) float
    p_lower: np.ndarray  # (N,) float
    correct: np.ndarray  # (N,) bool: prediction == label (an abstention is not correct)

    def certified(self, radius: float) -> np.ndarray:
        """(N,) bool: correct and certified at L2 radius >= `radius`."""
        return self.correct & (self.radius >= radius)


def sample_counts(model: torch.nn.Module, x: torch.Tensor, *, sigma: float, n: int, num_classes: int,
                  batch_size: int, generator: torch.Generator) -> np.ndarray:
    """(N, K) how often the base classifier predicts each class over `n` Gaussian copies of each x."""
    device = next(model.parameters()).device
    counts = np.zeros((len(x), num_classes), dtype=np.int64)
    for i in range(len(x)):
        left = n
        while left > 0:
            b = min(batch_size, left)
            noise = torch.randn((b, *x.shape[1:]), generator=generator, dtype=x.dtype) * sigma
            labels = predict(model, (x[i : i + 1] + noise).to(device), batch_size=batch_size).argmax(-1).cpu()
            counts[i] += np.bincount(labels.numpy(), minlength=num_classes)
            left -= b
    return counts


def certify(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, sigma: float, n0: int = 100,
            n: int = 1000, alpha: float = 0.001, batch_size: int = 256, seed: int = 0) -> Certificate:
    """CERTIFY for every example of `x` (module docstring); `y` gives `correct`.

    Reproducible from `seed`: the Gaussian copies come from a generator of their own, and a model
    with noise on at evaluation draws its own noise from a second one seeded here (its generator
    and its train/eval mode are put back afterwards)."""
    if not sigma > 0:
        raise ValueError(f"`sigma > 0` must hold for randomized smoothing, but got sigma={sigma}")
    if n0 < 1 or n < 1:
        raise ValueError(f"`n0 >= 1` and `n >= 1` must hold, but got n0={n0}, n={n}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"`0 < alpha < 0.5` must hold, but got alpha={alpha}")
    if len(x) == 0:
        empty = np.zeros(0)
        return Certificate(prediction=empty.astype(int), radius=empty, p_lower=empty, correct=empty.astype(bool))
    was_training, device = model.training, next(model.parameters()).device
    previous = getattr(model, "generator", None)
    model.eval()
    if hasattr(model, "set_noise_generator"):
        model.set_noise_generator(torch.Generator(device=device).manual_seed(seed + 1))
    try:
        num_classes = int(predict(model, x[:1].to(device), batch_size=1).shape[-1])
        generator = torch.Generator().manual_seed(seed)
        select = sample_counts(model, x, sigma=sigma, n=n0, num_classes=num_classes, batch_size=batch_size,
                               generator=generator)
        top = select.argmax(1)
        counts = sample_counts(model, x, sigma=sigma, n=n, num_classes=num_classes, batch_size=batch_size,
                               generator=generator)
    finally:
        model.train(was_training)
        if hasattr(model, "set_noise_generator"):
            model.set_noise_generator(previous)
    n_top = counts[np.arange(len(x)), top]
    p_lower = np.asarray(proportion_confint(n_top, n, alpha=2 * alpha, method="beta")[0], dtype=np.float64)
    p_lower = np.nan_to_num(p_lower, nan=0.0)  # n_top = 0 gives nan for the lower end: 0
    certified = p_lower > 0.5
    radius = np.where(certified, sigma * norm.ppf(np.clip(p_lower, 0.5, 1.0)), 0.0)
    prediction = np.where(certified, top, ABSTAIN)
    return Certificate(prediction=prediction, radius=radius, p_lower=p_lower,
                       correct=prediction == np.asarray(y))


def certified_accuracy(cert: Certificate, radii) -> dict[float, float]:
    """The share of examples correct and certified at each L2 radius."""
    return {float(r): float(cert.certified(r).mean()) for r in radii}
