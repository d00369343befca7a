"""nsde.metrics.robustness and evaluate(): the sweep, APGD's pitfalls, the report."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from nsde.data import PRESETS, prepare
from nsde.metrics import OBJECTIVE_METRICS, OBJECTIVES, EvalConfig, EvalReport, evaluate, objective_samples
from nsde.metrics.evaluate import LOCATION_PREFIX
from nsde.metrics.robustness import apgd_robust_accuracy, noisy_inputs, sweep_accuracy
from nsde.models import ModelConfig, NoiseConfig, build_model


class Brightness(torch.nn.Module):
    """Class 1 if the image's mean exceeds 0.5: a deterministic model with a known boundary."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(40.0))

    def forward(self, x):
        z = self.scale * (x.flatten(1).mean(1) - 0.5)
        return torch.stack([-z, z], dim=1)


def _brightness_data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    level = torch.linspace(0.3, 0.7, n)[torch.randperm(n, generator=g)]
    x = (level[:, None, None, None] + 0.02 * torch.randn(n, 1, 8, 8, generator=g)).clamp(0, 1)
    return x, (level > 0.5).long()


def test_noisy_inputs_clip_to_the_valid_range():
    x = torch.rand(4, 1, 16, 16)
    g = torch.Generator().manual_seed(0)
    for kind in ("gaussian", "fbm"):
        noisy = noisy_inputs(x, kind, 1.0, hurst=0.5, generator=g)
        assert noisy.shape == x.shape and noisy.min() >= 0 and noisy.max() <= 1
        assert not torch.equal(noisy, x)
    assert torch.equal(noisy_inputs(x, "gaussian", 0.0, hurst=0.5, generator=g), x)
    with pytest.raises(ValueError, match="unknown sweep noise 'pink'"):
        noisy_inputs(x, "pink", 0.1, hurst=0.5, generator=g)


def test_an_fbm_kind_with_its_own_hurst_is_the_fbm_sweep_at_that_hurst():
    x = torch.full((3, 1, 32, 32), 0.5)

    def noisy(kind, hurst):
        return noisy_inputs(x, kind, 0.2, hurst=hurst, generator=torch.Generator().manual_seed(3))

    assert torch.equal(noisy("fbm:0.1", 0.5), noisy("fbm", 0.1))  # the kind's H wins over the sweep's
    assert torch.equal(noisy("fbm", 0.5), noisy("fbm:0.5", 0.9))
    # rough (H 0.1) noise changes more from pixel to pixel than smooth (H 0.9) noise
    rough, smooth = noisy("fbm:0.1", 0.5), noisy("fbm:0.9", 0.5)
    assert rough.diff(dim=-1).abs().mean() > 3 * smooth.diff(dim=-1).abs().mean()
    for kind, message in (("fbm:1.5", "0 < H < 1"), ("fbm:x", "0 < H < 1"), ("gaussian:0.1", "unknown sweep noise")):
        with pytest.raises(ValueError, match=message):
            noisy_inputs(x, kind, 0.1, hurst=0.5, generator=torch.Generator())
    with pytest.raises(ValueError, match="distinct kinds"):
        EvalConfig(sweep_kinds=("fbm:0.1", "fbm:0.1"))
    with pytest.raises(ValueError, match="'fbm:2'"):
        EvalConfig(sweep_kinds=("gaussian", "fbm:2"))


def test_sweep_of_a_constant_model_is_its_class_share():
    class Constant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.tensor([[1.0, 0.0]]).expand(len(x), 2) + 0 * self.p

    x, y = _brightness_data()
    sweep = sweep_accuracy(Constant(), x, y, intensities=(0.1, 1.0))
    share = float((y == 0).float().mean())
    for kind in ("gaussian", "fbm"):
        assert [e.value for _, e in sweep[kind]] == [share, share] and sweep[kind][0][1].n == len(y)


def test_apgd_within_eps_monotone_and_breaks_a_deterministic_model():
    x, y = _brightness_data()
    y[:3] = 1 - y[:3]  # three points start misclassified: never robust
    model = Brightness()
    eps = (0.05, 0.2, 1.0, 8.0)
    acc, adv = apgd_robust_accuracy(model, x, y, eps=eps, steps=10, return_adversarial=True)
    for e in eps:
        assert ((adv[e] - x).flatten(1).norm(dim=1) <= e + 1e-4).all()
        assert adv[e].min() >= 0 and adv[e].max() <= 1
    values = [acc[e].value for e in eps]
    assert values == sorted(values, reverse=True)
    clean = float((model(x).argmax(-1) == y).float().mean())
    assert clean == pytest.approx(1 - 3 / len(y)) and values[0] <= clean
    assert all(torch.equal(adv[e][:3], x[:3]) for e in eps)  # returned unattacked, counted non-robust
    assert values[-1] <= 0.05  # an L2 ball of 8 moves the mean of 64 pixels by up to 1
    # A tiny ball breaks nothing that the margin protects: robust accuracy = clean accuracy.
    margin = (model(x).softmax(-1).max(-1).values > 0.6) & (model(x).argmax(-1) == y)
    tiny, _ = apgd_robust_accuracy(model, x[margin], y[margin], eps=(1e-4,), steps=5)
    assert tiny[1e-4].value == 1.0 and tiny[1e-4].n == int(margin.sum())


def test_eot_draws_differ_despite_torchattacks_reseeding():
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="convnext_atto", noise=NoiseConfig(sigma=0.5, depth="stages:0", eval_mode="on"))
    model = build_model(cfg).eval()
    model.set_noise_generator(torch.Generator().manual_seed(3))
    seen = []
    model.register_forward_hook(lambda m, inp, out: seen.append((inp[0].detach().clone(), out.detach().clone())))
    x = torch.rand(2, 1, 32, 32)
    y = model(x).argmax(-1)
    seen.clear()
    apgd_robust_accuracy(model, x, y, eps=(0.5,), steps=2, eot_iter=3)
    repeats = [(a, b) for (xa, a), (xb, b) in zip(seen, seen[1:]) if torch.equal(xa, xb)]
    assert repeats, "EOT should query the same point several times"
    assert all(not torch.equal(a, b) for a, b in repeats), "the noise repeated between EOT draws"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = dataclasses.replace(PRESETS["tiny"], examples_per_class=6, cache_dir=str(tmp_path_factory.mktemp("c")))
    return prepare(cfg, progress=False)


def test_evaluate_report_is_complete_serialisable_and_reproducible(tiny):
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="resnet18", noise=NoiseConfig(sigma=0.3, depth=2, eval_mode="on", mc_samples=3))
    model = build_model(cfg)
    ecfg = EvalConfig(apgd_steps=2, eot_iter=2, attack_subset=8, abc_subset=8, abc_samples=4, ig_steps=4,
                      stability_subset=4, stability_draws=2, sweep_intensities=(0.1, 0.5), resamples=100,
                      check_eot_factor=2, sweep_kinds=("gaussian", "fbm", "fbm:0.1"))
    a, b = evaluate(model, tiny, ecfg), evaluate(model, tiny, ecfg)
    assert a.stochastic and a.split == "val" and a.clean.n == len(tiny.indices("val"))
    assert [e.n for e in a.apgd.values()] == [8] * 4
    assert a.abc["mean_correct"].n + a.abc["mean_incorrect"].n == 8
    assert set(OBJECTIVES) <= set(a.objectives) and set(a.objectives) == set(OBJECTIVE_METRICS)
    assert set(a.checks) == {"eps_zero", "large_eps", "eot", "transfer"}
    d = json.loads(a.to_json())
    assert d["settings"]["apgd_steps"] == 2 and d["seconds"]["total"] > 0 and d["split"] == "val"
    same = json.loads(b.to_json())["objectives"]
    assert all(v == same[k] or (math.isnan(v) and math.isnan(same[k])) for k, v in d["objectives"].items())  # seeded
    back = EvalReport.from_dict(d)
    assert back.apgd == a.apgd and back.clean == a.clean and back.checks == d["checks"]
    assert back.snr == a.snr and back.per_location == a.per_location
    # the SNR sweep: one accuracy per level on the sweep's examples, its area the objective
    assert [level for level, _ in a.snr] == list(ecfg.snr_levels) and all(e.n == len(a.per_example["sweep"]["index"])
                                                                           for _, e in a.snr)
    assert a.per_example["snr"]["index"] == a.per_example["sweep"]["index"]
    assert a.objectives["snr_accuracy"] == pytest.approx(np.mean(a.per_example["snr"]["area"]))
    # per-location clean accuracy: every example counted once, under its sensor's name
    val_locations = tiny.location[tiny.indices("val")]
    assert set(a.per_location) == {tiny.location_names[i] for i in np.unique(val_locations)}
    assert sum(e.n for e in a.per_location.values()) == a.clean.n
    assert sum(e.value * e.n for e in a.per_location.values()) == pytest.approx(a.clean.value * a.clean.n)
    # ... and per example, so that two models pair on one location's examples
    for name, est in a.per_location.items():
        idx, values, stat = objective_samples(a.per_example, LOCATION_PREFIX + name)
        assert len(idx) == est.n and stat(values) == pytest.approx(est.value)
    # the sweep keeps each kind's area; sweep_area is their mean
    sweep = a.per_example["sweep"]
    per_kind = [objective_samples(a.per_example, f"sweep_area@{k}")[1][:, 0] for k in ecfg.sweep_kinds]
    assert np.allclose(np.mean(per_kind, axis=0), sweep["area"])
    assert [float(np.mean(v)) for v in per_kind] == [float(np.mean(sweep[f"area_{k}"])) for k in ecfg.sweep_kinds]
    with pytest.raises(ValueError, match="no kind 'fbm:0.9'"):
        objective_samples(a.per_example, "sweep_area@fbm:0.9")
    assert model.generator is None  # evaluate restored the model's generator
    # each split's numbers come from that split's examples only
    t = evaluate(model, tiny, ecfg, split="test")
    test_idx = set(tiny.indices("test").tolist())
    assert t.split == "test" and t.clean.n == len(test_idx)
    assert all(set(part["index"]) <= test_idx for part in t.per_example.values())
    assert all(not set(part["index"]) & test_idx for part in a.per_example.values())
    with pytest.raises(ValueError, match="eot_iter >= 1"):
        EvalConfig(eot_iter=0)
    with pytest.raises(ValueError, match="`split` must be one of"):
        evaluate(model, tiny, ecfg, split="train")


def test_the_checks_run_on_a_seeded_subset_of_the_attacked_examples_with_their_white_box_outcome(tiny):
    """checks_subset: the adaptive checks on k of the attacked examples; the EOT check's profile
    value is the white-box robust accuracy of exactly those k (the attack is not rerun for them)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet18", noise=NoiseConfig(sigma=0.3, depth=2, eval_mode="mc",
                                                                           mc_samples=2)))
    base = dict(apgd_eps=(0.5,), apgd_steps=2, eot_iter=1, attack_subset=8, abc_subset=4, abc_samples=2, ig_steps=2,
                stability_subset=2, stability_draws=1, sweep_intensities=(0.1,), sweep_area_max=0.1, snr_levels=(),
                resamples=50, check_eot_factor=2)
    whole = evaluate(model, tiny, EvalConfig(**base))
    assert all(whole.checks[k]["n"] == 8 for k in ("eps_zero", "large_eps", "eot"))
    same = evaluate(model, tiny, EvalConfig(**base, checks_subset=8))  # k = all attacked: no change
    assert same.checks == whole.checks
    part = evaluate(model, tiny, EvalConfig(**base, checks_subset=3))
    assert all(part.checks[k]["n"] == 3 for k in ("eps_zero", "large_eps", "eot"))
    keep = np.sort(np.random.default_rng([0 + 5, 7]).choice(8, size=3, replace=False))
    robust = np.asarray(part.per_example["apgd"]["robust_0.5"])
    assert part.checks["eot"]["robust"][1] == pytest.approx(robust[keep].mean())
    assert part.objectives["apgd_accuracy"] == whole.objectives["apgd_accuracy"]  # the endpoint is not subset
    with pytest.raises(ValueError, match="checks_subset"):
        EvalConfig(checks_subset=-1)
