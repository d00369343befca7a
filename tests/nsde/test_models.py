"""nsde.models: every backbone builds and trains, sigma=0 is plain timm, noise enters as documented."""

from __future__ import annotations

import math

import pytest
import timm
import torch

from nsde.models import ModelConfig, NoiseConfig, build_model, list_backbones, select_blocks
from nsde.noise import estimate_hurst

SIZE = 64  # smallest input for which every stage of every backbone is >= 2x2


def _x(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _model(backbone="convnext_atto", seed=0, **noise) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelConfig(backbone=backbone, noise=NoiseConfig(**noise)))


@pytest.mark.parametrize("backbone", list_backbones())
def test_every_backbone_forward_backward(backbone):
    model = _model(backbone, sigma=0.2, hurst=0.7, depth="all")
    assert len(model.injected) > 0
    out = model(_x())
    assert out.shape == (2, 16) and torch.isfinite(out).all()
    out.logsumexp(-1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without a finite gradient: {missing[:5]}"


@pytest.mark.parametrize("backbone", ["convnext_atto", "resnet18"])
def test_sigma_zero_is_exactly_plain_timm(backbone):
    for noise in (NoiseConfig(sigma=0.0), NoiseConfig(sigma=0.5, depth=0)):
        torch.manual_seed(3)
        plain = timm.create_model(backbone, pretrained=False, num_classes=16, in_chans=1)
        torch.manual_seed(3)
        model = build_model(ModelConfig(backbone=backbone, noise=noise))
        assert model.injected == ()
        plain_sd, sd = plain.state_dict(), model.backbone.state_dict()
        assert list(plain_sd) == list(sd)
        assert all(torch.equal(plain_sd[k], sd[k]) for k in sd)
        for train in (True, False):
            plain.train(train)
            model.train(train)
            # The same fixed input standardisation in front of the plain timm model.
            assert torch.equal(plain((_x() - 0.5) / 0.25), model(_x()))


def test_eval_modes_behave_as_documented():
    x = _x()
    off = _model(sigma=0.3, eval_mode="off").eval()
    assert torch.equal(off(x), off(x))
    on = _model(sigma=0.3, eval_mode="on").eval()
    assert not torch.allclose(on(x), on(x))
    train = _model(sigma=0.3, eval_mode="off").train()
    assert not torch.allclose(train(x), train(x))
    mc = _model(sigma=0.3, eval_mode="mc", mc_samples=4).eval()
    out = mc(x)
    # log of a mean of softmaxes: its softmax sums to 1 without renormalising.
    assert torch.allclose(out.exp().sum(-1), torch.ones(2), atol=1e-5)
    assert not torch.allclose(out, mc(x))


def test_mc_mean_has_less_spread_than_single_passes():
    x = _x(batch=1)
    on = _model(sigma=0.5, eval_mode="on").eval()
    mc = _model(sigma=0.5, eval_mode="mc", mc_samples=16).eval()
    single = torch.stack([on(x).log_softmax(-1) for _ in range(16)])
    averaged = torch.stack([mc(x) for _ in range(16)])
    assert averaged.std(0).mean() < single.std(0).mean() / 2


def test_generator_makes_noise_reproducible():
    x = _x()
    model = _model(sigma=0.3, eval_mode="on").eval()
    model.set_noise_generator(torch.Generator().manual_seed(11))
    a = model(x)
    model.set_noise_generator(torch.Generator().manual_seed(11))
    torch.manual_seed(999)  # the global RNG must not matter
    assert torch.equal(a, model(x))


def test_injected_noise_is_sigma_times_a_normalised_field():
    # Block 1's input is block 0's output plus sigma * xi; `Module.forward` skips the hook,
    # which gives block 0's noise-free output for the same input.
    sigma, hurst = 0.25, 0.8
    model = _model(sigma=sigma, hurst=hurst, depth=1, eval_mode="on").eval()
    assert model.injected == ("stages.0.blocks.0",)
    blocks = model.backbone.stages[0].blocks
    seen = {}
    blocks[0].register_forward_pre_hook(lambda m, inp: seen.__setitem__("in0", inp[0]))
    blocks[1].register_forward_pre_hook(lambda m, inp: seen.__setitem__("in1", inp[0]))
    with torch.no_grad():
        model(_x(batch=32))
        xi = (seen["in1"] - blocks[0].forward(seen["in0"])) / sigma  # (B, C, 16, 16)
    assert xi.shape[-2:] == (16, 16)
    assert xi.mean(dim=(-2, -1)).abs().max() < 1e-4
    assert xi.var(dim=(-2, -1), unbiased=False).mean() == pytest.approx(1.0, abs=0.1)
    assert estimate_hurst(xi, max_lag=4) == pytest.approx(hurst, abs=0.08)


def test_depth_selection_rules():
    model = _model(sigma=0.1)  # convnext_atto: stages of 2, 2, 6, 2 blocks
    stages = [[(n, None) for n in names] for names in (["a0", "a1"], ["b0", "b1"], ["c0"] * 6, ["d0", "d1"])]
    names = lambda depth: [n for n, _ in select_blocks(stages, depth)]  # noqa: E731
    assert names(3) == ["a0", "a1", "b0"]
    assert len(names(0.5)) == 6 and len(names(1.0)) == 12 and len(names(0.01)) == 1
    assert names((3, 0)) == ["a0", "a1", "d0", "d1"]
    assert names("stages:1") == ["b0", "b1"]
    assert len(names("all")) == 12
    with pytest.raises(ValueError, match="depth <= 12"):
        names(13)
    with pytest.raises(ValueError, match=r"stage indices must lie in \[0, 4\)"):
        names((4,))
    assert len(model.injected) == 12


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sigma": -0.1}, "sigma >= 0"),
        ({"sigma": float("inf")}, "finite"),
        ({"hurst": 1.0, "sigma": 0.1}, "0 < hurst < 1"),
        ({"shape": "pink"}, "unknown noise shape 'pink'"),
        ({"eval_mode": "sometimes"}, "unknown eval_mode"),
        ({"mc_samples": 0}, "mc_samples >= 1"),
        ({"depth": True}, "depth"),
        ({"depth": -1}, "depth >= 0"),
        ({"depth": 1.5}, r"\(0, 1\]"),
        ({"depth": "first"}, "'all' or 'stages:I,J"),
        ({"method": "fast"}, "unknown fBm method"),
    ],
)
def test_bad_noise_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NoiseConfig(**kwargs)


def test_bad_model_config_raises():
    with pytest.raises(ValueError, match=r"unknown backbone 'vit_base'.*convnext_atto"):
        ModelConfig(backbone="vit_base")
    with pytest.raises(ValueError, match="num_classes >= 2"):
        ModelConfig(num_classes=1)
    with pytest.raises(ValueError, match="input_std > 0"):
        ModelConfig(input_std=0.0)


def test_feature_map_too_small_names_the_block():
    model = _model("resnet18", sigma=0.1)
    with pytest.raises(ValueError, match=r"layer4\.0.*1x1"):
        model(torch.rand(2, 1, 32, 32))


def test_channels_last_matches_contiguous():
    model = _model(sigma=0.2, eval_mode="off").eval()
    x = _x()
    ref = model(x)
    model = model.to(memory_format=torch.channels_last)
    out = model(x.to(memory_format=torch.channels_last))
    assert torch.allclose(ref, out, atol=1e-5)
    model.train()
    assert torch.isfinite(model(x.to(memory_format=torch.channels_last))).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_channels_last_training_step():
    model = _model("convnext_atto", sigma=0.2, hurst=0.8).cuda().to(memory_format=torch.channels_last)
    x = _x(8).cuda().to(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x)
    out.float().logsumexp(-1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.slow
def test_torch_compile_runs_and_trains():
    model = _model(sigma=0.2, hurst=0.6)
    compiled = torch.compile(model, dynamic=False)  # automatic dynamic shapes trip inductor here
    out = compiled(_x())
    assert out.shape == (2, 16) and torch.isfinite(out).all()
    out.logsumexp(-1).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert not math.isclose(float(compiled(_x()).sum()), float(out.sum()))
