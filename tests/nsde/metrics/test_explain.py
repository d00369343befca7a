"""nsde.metrics.explain on linear models, whose attributions are known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nsde.metrics.explain import (
    abc_scores,
    abc_summary,
    attribution_figure,
    attribution_stability,
    integrated_gradients,
    noise_tunnel,
    path_averaged_gradient,
    saliency,
)


class Linear(torch.nn.Module):
    """logits = [w . x, bias] on flattened inputs: gradients are w and 0, IG = x * w."""

    def __init__(self, w, bias: float = 1.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.as_tensor(w, dtype=torch.float32).flatten())
        self.bias = bias

    def forward(self, x):
        z0 = x.flatten(1) @ self.w
        return torch.stack([z0, torch.full_like(z0, self.bias)], dim=1)


def _x(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 2, 2)


def test_ig_path_gradient_and_saliency_closed_form():
    w = torch.tensor([3.0, -2.0, 0.5, 0.0])
    model = Linear(w)
    x = _x([1.0, 0.25, 0.5, 0.75])
    target = torch.tensor([0])
    assert torch.allclose(integrated_gradients(model, x, target).flatten(), x.flatten() * w, atol=1e-5)
    assert torch.allclose(path_averaged_gradient(model, x, target).flatten(), w, atol=1e-5)
    assert torch.allclose(saliency(model, x, target).flatten(), w.abs(), atol=1e-6)
    # SmoothGrad over IG of a linear model: the mean of (x + noise) * w, close to x * w.
    nt = noise_tunnel(model, x, target, samples=50, stdev=0.01).flatten()
    assert torch.allclose(nt, x.flatten() * w, atol=0.02)


def test_abc_zero_when_the_only_attributed_feature_flips_the_prediction():
    # z0 = 3 x0 > z1 = 1; all the path gradient sits on x0; zeroing it gives z0 = 0 < 1.
    model = Linear([3.0, 0.0, 0.0, 0.0])
    scores, preds = abc_scores(model, _x([1.0, 0.5, 0.5, 0.5]), samples=32, mutate=1)
    assert preds.tolist() == [0] and scores.tolist() == [0.0]


def test_abc_counts_unchanged_predictions_by_mutation_size():
    # z0 = 3 x0 + 3 x1 = 6 > 1; P is 1/2 on x0 and x1 and 0 elsewhere.
    model = Linear([3.0, 3.0, 0.0, 0.0])
    x = _x([1.0, 1.0, 0.5, 0.5])
    one, _ = abc_scores(model, x, samples=32, mutate=1)  # one of x0, x1 -> z0 = 3 > 1: unchanged
    assert one.tolist() == [1.0]
    two, _ = abc_scores(model, x, samples=32, mutate=2)  # both (P is 0 elsewhere) -> z0 = 0: flipped
    assert two.tolist() == [0.0]
    frac, _ = abc_scores(model, x, samples=32, mutate=0.25)  # a fraction: 1 of 4 features
    assert frac.tolist() == [1.0]
    with pytest.raises(ValueError, match="between 1 and 4"):
        abc_scores(model, x, mutate=5)


def test_abc_never_spends_mutations_on_features_already_at_the_baseline():
    # Only x0 differs from the zero baseline; mutating it flips z0 = 3 to 0 < 1. If zero
    # features could be drawn, 3 of 4 single mutations would change nothing (ABC ~ 0.75).
    model = Linear([3.0, 3.0, 3.0, 3.0])
    scores, _ = abc_scores(model, _x([1.0, 0.0, 0.0, 0.0]), samples=32, mutate=1)
    assert scores.tolist() == [0.0]


def test_abc_summary_splits_by_correctness():
    scores = np.array([0.9, 0.8, 0.2, 0.1, 0.7])
    correct = np.array([True, True, False, False, True])
    s = abc_summary(scores, correct)
    assert s["mean_correct"].value == pytest.approx(0.8) and s["mean_correct"].n == 3
    assert s["mean_incorrect"].value == pytest.approx(0.15) and s["auroc"].value == 1.0 and s["auroc_note"] is None


def test_attribution_stability_of_a_linear_model_is_known():
    # IG(x + d) - IG(x) = d * w, so sum |.| ~ stdev * sqrt(2 / pi) * sum |w| (many features),
    # relative to sum |IG(x)| = sum |x * w| = 0.5 * sum |w|.
    w = torch.ones(64 * 64)
    model = Linear(w)
    x = torch.full((2, 1, 64, 64), 0.5)
    est, values = attribution_stability(model, x, draws=4, stdev=0.01, seed=0)
    expected = 0.01 * math.sqrt(2 / math.pi) / 0.5
    assert values.shape == (2,) and values == pytest.approx([expected] * 2, rel=0.03)
    assert est.value == pytest.approx(expected, rel=0.03) and est.n == 2
    assert est.low <= est.value <= est.high
    # Larger weights scale IG and its change alike: the relative change is the same.
    larger, larger_values = attribution_stability(Linear(4 * w), x, draws=4, stdev=0.01, seed=0)
    assert larger_values == pytest.approx(values, rel=1e-5)


class Scaled(torch.nn.Module):
    """`model` with its logits multiplied by `factor`: the same decisions, larger logits."""

    def __init__(self, model, factor: float):
        super().__init__()
        self.model, self.factor = model, factor

    def forward(self, x):
        return self.factor * self.model(x)


def _small_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3, stride=2), torch.nn.Tanh(),
        torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(16, 3),
    ).eval()


def test_attribution_stability_does_not_depend_on_the_logit_scale():
    model = _small_cnn()
    x = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    est, values = attribution_stability(model, x, draws=3, stdev=0.05, ig_steps=16, seed=0)
    est10, values10 = attribution_stability(Scaled(model, 10.0), x, draws=3, stdev=0.05, ig_steps=16, seed=0)
    assert np.all(values > 0.01)  # the maps do move under this noise
    assert values10 == pytest.approx(values, rel=1e-4)
    assert (est10.value, est10.low, est10.high) == pytest.approx((est.value, est.low, est.high), rel=1e-4)

    # The former, unnormalised value, log(sum |IG(x + d) - IG(x)|), on the same draws: + log 10.
    def unnormalised(m):
        gen = torch.Generator().manual_seed(0)
        pred = m(x).argmax(-1)
        ref = integrated_gradients(m, x, pred, steps=16)
        noisy = (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp(0.0, 1.0)
        return torch.log((integrated_gradients(m, noisy, pred, steps=16) - ref).abs().flatten(1).sum(1)).detach()

    assert unnormalised(Scaled(model, 10.0)) - unnormalised(model) == pytest.approx([math.log(10)] * 4, abs=1e-4)


def test_attribution_stability_is_nan_where_the_clean_ig_is_zero():
    # x = 0 is the baseline: IG(x) = 0 everywhere, so no relative change exists for that example.
    model = Linear(torch.ones(16))
    x = torch.stack([torch.zeros(1, 4, 4), torch.full((1, 4, 4), 0.5)])
    est, values = attribution_stability(model, x, draws=2, stdev=0.01, seed=0)
    assert math.isnan(values[0]) and math.isfinite(values[1])
    assert est.n == 1 and est.value == pytest.approx(values[1])


def test_attribution_figure_writes_png(tmp_path):
    models = {"baseline": Linear(torch.ones(16)), "NSDE": Linear(torch.arange(16.0))}
    x = torch.rand(2, 1, 4, 4)
    path = attribution_figure(models, x, tmp_path / "fig.png", ig_steps=4, nt_samples=2)
    assert path.exists() and path.stat().st_size > 1000
