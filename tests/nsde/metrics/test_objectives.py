"""The objectives on models whose answers are known: ABC's AUROC, the sweep area, APGD's
verdict for stochastic models (eps -> 0 gives clean accuracy), the attack's sanity checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nsde.metrics import abc_scores, abc_summary, adaptive_checks, apgd_attack, predict_labels
from nsde.metrics.robustness import sweep_area, sweep_correct
from nsde.models import ModelConfig, NoiseConfig, build_model


class Constant(torch.nn.Module):
    """Always class 0, whatever the input."""

    def __init__(self, k: int = 4):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))
        self.k = k

    def forward(self, x):
        logits = torch.zeros(len(x), self.k) + 0 * self.p + 0.0 * x.flatten(1).sum(1, keepdim=True)
        return logits + torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), self.k)


class Brightness(torch.nn.Module):
    """Class 1 iff the image's mean exceeds 0.5 (a linear model with a known boundary)."""

    def __init__(self, scale: float = 40.0):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(scale))

    def forward(self, x):
        z = self.scale * (x.flatten(1).mean(1) - 0.5)
        return torch.stack([-z, z], dim=1)


class Quantised(Brightness):
    """Brightness read through a rounding of every pixel: the same decisions, no gradient at all
    (gradient masking by a shattered gradient), so a gradient attack cannot break it."""

    def forward(self, x):
        return super().forward(torch.round(x * 8) / 8)


def test_abc_of_a_constant_classifier_is_one_and_its_auroc_one_half():
    x = torch.rand(24, 1, 8, 8) * 0.8 + 0.1
    y = torch.tensor([0, 1, 2, 3] * 6)
    scores, preds = abc_scores(Constant(), x, samples=16, mutate=0.1, ig_steps=4)
    assert (preds == 0).all() and np.all(scores == 1.0)  # no mutation changes a constant prediction
    s = abc_summary(scores, preds == y.numpy(), resamples=200)
    assert s["mean_correct"].value == 1.0 and s["auroc"].value == 0.5 and s["auroc_note"] is None
    assert 0.0 <= s["auroc"].low <= 0.5 <= s["auroc"].high <= 1.0


def test_abc_that_separates_correct_from_incorrect_scores_auroc_one():
    # Far from the boundary (mean 0.2 / 0.8) no single pixel set to 0 flips Brightness: ABC 1.
    # Just above it (mean 0.5 + 1e-3) zeroing any pixel flips it: ABC 0. Labels make the far
    # points correct and the near ones incorrect, so ABC predicts correctness perfectly.
    g = torch.Generator().manual_seed(0)
    far = torch.cat([torch.full((8, 1, 8, 8), 0.2), torch.full((8, 1, 8, 8), 0.8)])
    near = torch.full((8, 1, 8, 8), 0.501) + 0.0 * torch.rand(8, 1, 8, 8, generator=g)
    x = torch.cat([far, near])
    model = Brightness()
    pred = model(x).argmax(-1)
    y = torch.cat([pred[:16], 1 - pred[16:]])  # near points labelled wrongly
    scores, preds = abc_scores(model, x, samples=16, mutate=1, ig_steps=8)
    correct = preds == y.numpy()
    assert correct[:16].all() and not correct[16:].any()
    assert np.all(scores[:16] == 1.0) and np.all(scores[16:] == 0.0)
    s = abc_summary(scores, correct, resamples=200)
    assert s["auroc"].value == 1.0 and s["auroc"].high == 1.0
    assert s["mean_correct"].value == 1.0 and s["mean_incorrect"].value == 0.0


def test_abc_auroc_is_undefined_without_incorrect_predictions_and_says_why():
    s = abc_summary(np.array([0.9, 0.5, 0.7]), np.array([True, True, True]))
    assert math.isnan(s["auroc"].value) and "all 3 evaluated predictions are correct" in s["auroc_note"]
    assert s["mean_correct"].value == pytest.approx(0.7)


def test_bootstrap_intervals_of_abc_means_stay_inside_zero_one():
    # The t-interval of this mean is [0.67, 1.06]; a percentile bootstrap cannot leave [0, 1].
    scores = np.array([1.0] * 14 + [0.25, 0.2])
    s = abc_summary(scores, np.ones(16, dtype=bool), resamples=500)
    e = s["mean_correct"]
    assert 0.0 <= e.low <= e.value <= e.high <= 1.0


def test_sweep_area_is_the_normalised_trapezoid():
    levels = [0.1, 0.2, 0.4]
    correct = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=bool)  # (intensities, examples)
    # example 0: trapezoid of (1, 1, 0) over (0.1, 0.2, 0.4) = 0.1 + 0.1 = 0.2, / 0.3
    assert sweep_area(levels, correct) == pytest.approx([0.2 / 0.3, 0.05 / 0.3, 0.0])
    assert sweep_area([0.2, 0.1, 0.4], correct[[1, 0, 2]]) == pytest.approx(sweep_area(levels, correct))
    x = torch.rand(12, 1, 8, 8)
    y = torch.tensor([0, 1, 2] * 4)
    rows = sweep_correct(Constant(3), x, y, intensities=levels)
    for kind in rows:  # a constant classifier: its class share at every intensity, so that area
        assert sweep_area(levels, rows[kind]).mean() == pytest.approx(1 / 3)


def _noisy_model(mode: str) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="resnet18", num_classes=4,
                      noise=NoiseConfig(shape="white", sigma=2.0, depth="stages:0,1,2", eval_mode=mode, mc_samples=5))
    return build_model(cfg).eval()


@pytest.mark.parametrize("mode", ["on", "mc"])
def test_apgd_of_a_stochastic_model_at_eps_to_zero_is_its_clean_accuracy(mode):
    model = _noisy_model(mode)
    x = torch.rand(24, 1, 32, 32)
    votes = predict_labels(model, x, 24, seed=1)
    y = votes.clone()
    y[::3] = (y[::3] + 1) % 4  # a third start wrong
    result = apgd_attack(model, x, y, eps=(1e-5,), steps=3, eot_iter=2, seed=0)
    # The verdict is the model's own evaluation-mode prediction (the vote / the MC mean), so
    # robust accuracy at eps -> 0 is its clean accuracy, not "every noisy pass correct".
    assert result.robust[0].mean() == result.clean.mean()
    assert 0 < result.clean.mean() < 1
    # The model is really stochastic: single noisy passes disagree with the vote somewhere.
    if mode == "on":
        single = torch.stack([model(x).argmax(-1) for _ in range(5)])
        assert (single != votes).any()


def test_majority_vote_is_the_most_frequent_pass_prediction():
    model = _noisy_model("on")
    x = torch.rand(16, 1, 32, 32)
    gen_seed = 7
    labels = predict_labels(model, x, 16, seed=gen_seed)
    # replay the same noise: the same generator seed gives the same five passes
    model.set_noise_generator(torch.Generator().manual_seed(gen_seed * 100_003))
    with torch.no_grad():
        passes = torch.stack([model(x).argmax(-1) for _ in range(5)])
    model.set_noise_generator(None)
    counts = torch.nn.functional.one_hot(passes, 4).sum(0)
    assert (counts.gather(1, labels[:, None]).squeeze(1) == counts.max(1).values).all()


def _brightness_data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    level = torch.linspace(0.3, 0.7, n)[torch.randperm(n, generator=g)]
    x = (level[:, None, None, None] + 0.02 * torch.randn(n, 1, 8, 8, generator=g)).clamp(0, 1)
    return x, (level > 0.5).long()


def test_sanity_checks_pass_on_a_sound_attack_and_flag_a_masked_gradient():
    x, y = _brightness_data()
    eps = (0.05, 0.2)
    sound = Brightness()
    attack = apgd_attack(sound, x, y, eps=eps, steps=10)
    checks = adaptive_checks(sound, x, y, attack, num_classes=2, steps=10)
    assert checks["eps_zero"]["passed"] and checks["large_eps"]["passed"]
    assert checks["eot"]["passed"] is None and checks["transfer"]["passed"] is None  # deterministic
    # The quantised model decides like Brightness but gives APGD no gradient: at an eps that
    # can move the mean far past the boundary it stays "robust", so the large-eps check fails.
    masked = Quantised()
    attack = apgd_attack(masked, x, y, eps=eps, steps=10)
    checks = adaptive_checks(masked, x, y, attack, num_classes=2, steps=10)
    assert checks["eps_zero"]["passed"] and checks["large_eps"]["passed"] is False
    assert checks["large_eps"]["robust"] > 0.5


def test_sanity_checks_of_a_stochastic_model_run_eot_and_transfer():
    model = _noisy_model("on")
    x = torch.rand(12, 1, 32, 32)
    y = predict_labels(model, x, 12, seed=3)
    attack = apgd_attack(model, x, y, eps=(0.5,), steps=2, eot_iter=1)
    checks = adaptive_checks(model, x, y, attack, num_classes=4, steps=2, eot_iter=1, eot_factor=2)
    assert checks["eot"]["samples"] == [1, 1, 2] and checks["eot"]["passed"] in (True, False)
    assert checks["transfer"]["passed"] in (True, False) and checks["transfer"]["n"] == 12
    assert checks["eps_zero"]["passed"]  # the vote at x + 1e-4 is the vote at x
