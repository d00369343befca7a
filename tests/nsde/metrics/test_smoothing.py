"""Randomized smoothing against the closed form of a linear classifier.

For f(x) = [w.x + b > 0] the smoothed classifier's top-class probability under N(0, sigma^2 I)
is Phi(|w.x + b| / (sigma ||w||)), so its exact certified radius sigma * Phi^-1(p_A) is the
distance |w.x + b| / ||w|| to the decision boundary. CERTIFY's radius comes from a lower
bound on p_A: at most that distance (with probability 1 - alpha per example), and close to it
when n is large.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import norm

from nsde.metrics.smoothing import ABSTAIN, certified_accuracy, certify


class Linear(torch.nn.Module):
    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w.clone(), requires_grad=False)
        self.b = b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = x.flatten(1) @ self.w.flatten() + self.b
        return torch.stack([-score, score], dim=1)


def _case():
    torch.manual_seed(0)
    w = torch.tensor([[[[1.0, -2.0], [0.5, 2.0]]]])  # ||w|| = 3.041
    x = torch.rand(24, 1, 2, 2)
    model = Linear(w, b=-0.4)
    score = (x.flatten(1) @ w.flatten() - 0.4).numpy()
    return model, x, torch.from_numpy((score > 0).astype(np.int64)), np.abs(score) / float(w.norm())


def test_certified_radius_is_the_distance_to_the_boundary_from_below():
    model, x, y, distance = _case()
    sigma = 0.5
    cert = certify(model, x, y, sigma=sigma, n0=100, n=20_000, alpha=0.001, batch_size=5000, seed=1)
    answered = cert.prediction != ABSTAIN
    # an example far enough from the boundary is never abstained on, and is predicted right
    far = distance > 0.2
    assert answered[far].all() and cert.correct[far].all()
    # the radius is a lower bound of the exact one, and close to it with n = 20,000
    assert (cert.radius[answered] <= distance[answered] + 1e-9).all()
    exact_p = norm.cdf(distance / sigma)
    # Clopper-Pearson at alpha 0.001 sits about 3.1 standard errors below the count's share,
    # which itself lies within about 3.5 standard errors of p for all 24 examples
    slack = 7 * np.sqrt(exact_p * (1 - exact_p) / 20_000)
    expected = sigma * norm.ppf(np.clip(exact_p - slack, 0.5, 1))
    assert (cert.radius[far] >= expected[far] - 1e-9).all()
    assert np.abs(cert.radius[far] - distance[far]).max() < 0.15


def test_certified_accuracy_falls_with_the_radius_and_counts_only_correct_certificates():
    model, x, y, distance = _case()
    cert = certify(model, x, y, sigma=0.5, n0=50, n=2000, seed=0)
    acc = certified_accuracy(cert, [0.0, 0.1, 0.3, 1.0, 10.0])
    values = list(acc.values())
    assert values == sorted(values, reverse=True)
    assert acc[10.0] == 0.0  # no example is that far from the boundary
    wrong = certify(model, x, 1 - y, sigma=0.5, n0=50, n=2000, seed=0)
    assert certified_accuracy(wrong, [0.0])[0.0] <= (distance < 0.05).mean()  # only abstentions' neighbours


def test_same_seed_same_certificate_and_bad_settings_are_named():
    model, x, y, _ = _case()
    a = certify(model, x, y, sigma=0.25, n0=20, n=200, seed=3)
    b = certify(model, x, y, sigma=0.25, n0=20, n=200, seed=3)
    assert np.array_equal(a.radius, b.radius)
    with pytest.raises(ValueError, match="sigma > 0"):
        certify(model, x, y, sigma=0.0)
    with pytest.raises(ValueError, match="alpha"):
        certify(model, x, y, sigma=0.25, alpha=0.7)


class Constant(torch.nn.Module):
    def __init__(self, cls: int) -> None:
        super().__init__()
        self.cls = cls
        self.w = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(x), 3)
        out[:, self.cls] = 1.0
        return out


class CoinFlip(torch.nn.Module):
    """Class 0 or 1 by the sign of the noise at one pixel: p_A = 1/2 everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x.flatten(1)[:, 0] - 0.5).sign()
        return torch.stack([s, -s], dim=1)


def test_a_constant_classifier_gets_the_clopper_pearson_bound_exactly():
    """Every draw votes for the class: the one-sided bound at level alpha is alpha^(1/n), so the
    radius is sigma * Phi^-1(alpha^(1/n)); a two-sided bound at alpha would give (alpha/2)^(1/n)."""
    x = torch.full((3, 1, 2, 2), 0.5)
    n, alpha, sigma = 500, 0.001, 0.5
    cert = certify(Constant(2), x, torch.tensor([2, 2, 1]), sigma=sigma, n0=10, n=n, alpha=alpha, seed=0)
    np.testing.assert_allclose(cert.p_lower, alpha ** (1 / n), rtol=1e-9)
    np.testing.assert_allclose(cert.radius, sigma * norm.ppf(alpha ** (1 / n)), rtol=1e-9)
    assert cert.prediction.tolist() == [2, 2, 2] and cert.correct.tolist() == [True, True, False]
    assert certified_accuracy(cert, [0.0])[0.0] == pytest.approx(2 / 3)  # a certified wrong class counts nothing


def test_a_classifier_at_one_half_abstains():
    x = torch.full((4, 1, 2, 2), 0.5)
    cert = certify(CoinFlip(), x, torch.zeros(4, dtype=torch.long), sigma=0.5, n0=20, n=400, seed=1)
    assert (cert.prediction == ABSTAIN).all() and (cert.radius == 0).all() and not cert.correct.any()
    assert (cert.p_lower < 0.5).all()


def test_an_objective_whose_stage_did_not_run_is_nan_over_seeds():
    """A profile without smoothing: replicated over two seeds, certified accuracy is NaN (not a
    KeyError in the held-out scoring of several seeds), and clean accuracy is still estimated."""
    import math

    from nsde.metrics.report import replicate_estimate

    parts = [{"clean": {"index": list(range(10)), "correct": [True, False] * 5, "location": [""] * 10}}
             for _ in range(2)]
    assert math.isnan(replicate_estimate(parts, "certified_accuracy").value)
    assert replicate_estimate(parts, "clean_accuracy").value == pytest.approx(0.5)
