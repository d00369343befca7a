"""nsde.models: every backbone builds and trains, sigma=0 is plain timm, noise enters as documented."""

from __future__ import annotations

import math

import pytest
import timm
import torch

from nsde.models import ModelConfig, NoiseConfig, build_model, list_backbones, recalibrate_batchnorm, select_blocks
from nsde.noise import estimate_hurst, sample_noise

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
    # "all" = every block whose noise reaches the logits: the last block's zero-mean noise does not
    assert len(model.injected) == 11 and "stages.3.blocks.1" not in model.injected


def _plain(backbone: str):
    torch.manual_seed(0)
    plain = build_model(ModelConfig(backbone=backbone)).eval()
    with torch.no_grad():
        # ConvNeXt's layer scales start at 1e-6, so at initialisation noise in the last stage
        # reaches the head only through branches scaled by 1e-6; give them a trained-like value
        # (the question is whether a path exists, not what an untrained model does with it)
        for name, p in plain.named_parameters():
            if name.endswith("gamma"):
                p.fill_(0.5)
    return plain


@torch.no_grad()
def _logit_change(plain, block: str, anchor: str) -> float:
    """Relative change of the logits when unit-intensity noise enters `block` alone."""
    x = _x()
    ref = plain(x)
    gen = torch.Generator().manual_seed(1)
    handle = plain.backbone.get_submodule(block).register_forward_hook(
        lambda m, i, out: out + sample_noise("fbm", out.shape, 0.5, anchor=anchor, generator=gen))
    try:
        moved = plain(x)
    finally:
        handle.remove()
    return float((moved - ref).abs().max() / ref.abs().max())


@pytest.mark.parametrize("backbone", list_backbones())
def test_every_injected_block_reaches_the_logits(backbone):
    with torch.device("meta"):  # the block names only
        blocks = build_model(ModelConfig(backbone=backbone, noise=NoiseConfig(sigma=1.0))).injected
        last = build_model(ModelConfig(backbone=backbone, noise=NoiseConfig(sigma=1.0, anchor="corner"))).injected[-1]
    plain = _plain(backbone)
    changes = {block: _logit_change(plain, block, "mean") for block in blocks}
    assert min(changes.values()) > 1e-3, changes  # the smallest measured is orders of magnitude above
    # the block left out is dead under anchor "mean" and live under "corner"
    assert last not in blocks
    assert _logit_change(plain, last, "mean") < 1e-5
    assert _logit_change(plain, last, "corner") > 1e-3


def test_depth_naming_the_dead_block_warns_and_leaves_it_out():
    with pytest.warns(UserWarning, match=r"layer4\.1.*global average"):
        model = _model("resnet18", sigma=0.5, depth=8)
    assert len(model.injected) == 7 and model.injected[-1] == "layer4.0"
    assert len(_model("resnet18", sigma=0.5, depth=8, anchor="corner").injected) == 8


def _noise_and_signal(model, block: int, x) -> tuple[torch.Tensor, torch.Tensor]:
    """The noise added at convnext stage-0 block `block` and that block's noise-free output."""
    blocks = model.backbone.stages[0].blocks
    seen = {}
    blocks[block].register_forward_pre_hook(lambda m, inp: seen.__setitem__("in", inp[0]))
    blocks[block + 1].register_forward_pre_hook(lambda m, inp: seen.__setitem__("out", inp[0]))
    with torch.no_grad():
        model(x)
        clean = blocks[block].forward(seen["in"])  # `Module.forward` skips the noise hook
    return seen["out"] - clean, clean


def test_relative_sigma_is_the_noise_to_signal_ratio():
    sigma = 0.3
    model = _model(sigma=sigma, sigma_mode="relative", depth=1, eval_mode="on").eval()
    x = _x(batch=16)
    for scale in (1.0, 7.0):  # a larger signal gets proportionally larger noise
        with torch.no_grad():  # the stem's norm sets the scale of stage 0
            model.backbone.stem[1].weight.mul_(scale)
            model.backbone.stem[1].bias.mul_(scale)
        noise, clean = _noise_and_signal(model, 0, x)
        # (B, C, h, w) -> (B,): per-sample RMS ratio; E[RMS(xi)^2] = 1, so the ratio is sigma
        ratio = noise.pow(2).mean(dim=(1, 2, 3)).sqrt() / clean.pow(2).mean(dim=(1, 2, 3)).sqrt()
        assert ratio.mean() == pytest.approx(sigma, rel=0.03)
    absolute = _model(sigma=sigma, depth=1, eval_mode="on").eval()
    noise, clean = _noise_and_signal(absolute, 0, x)
    assert noise.pow(2).mean().sqrt() == pytest.approx(sigma, rel=0.03)  # absolute: independent of the signal


def test_noise_to_signal_is_measured_per_stage_in_training():
    x = _x(batch=8)
    relative = _model(sigma=0.2, sigma_mode="relative").train()
    absolute = _model(sigma=0.2).train()
    for model in (relative, absolute):
        with torch.no_grad():
            model(x)
            model(x)
    nsr = relative.noise_to_signal()
    assert set(nsr) == {"stage0", "stage1", "stage2", "stage3"}
    assert all(v == pytest.approx(0.2, rel=0.05) for v in nsr.values()), nsr
    assert relative.noise_to_signal() == {}  # read once, then reset
    spread = absolute.noise_to_signal()
    assert max(spread.values()) / min(spread.values()) > 1.5, spread  # absolute sigma: a different NSR per stage
    relative.eval()
    with torch.no_grad():
        relative(x)
    assert relative.noise_to_signal() == {}  # evaluation is not recorded


def _bn_inputs(model, x) -> dict[str, torch.Tensor]:
    seen = {}
    handles = [m.register_forward_pre_hook(lambda mod, inp, name=name: seen.__setitem__(name, inp[0].detach()))
               for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    model(x)
    for h in handles:
        h.remove()
    return seen


def test_recalibrated_batchnorm_matches_a_noise_free_pass():
    torch.manual_seed(0)
    noisy = build_model(ModelConfig(backbone="resnet18", noise=NoiseConfig(sigma=1.0))).train()
    with torch.no_grad():
        for seed in range(3):  # running statistics collected with the noise on
            noisy(_x(batch=8, seed=seed))
    assert noisy.needs_bn_recalibration
    batches = [_x(batch=16, seed=10), _x(batch=16, seed=11)]
    assert recalibrate_batchnorm(noisy, iter(batches)) == 2
    assert noisy.training  # the mode it had before
    # the reference: the same weights without noise hooks, BatchNorm in training mode (batch statistics)
    plain = build_model(ModelConfig(backbone="resnet18"))
    plain.load_state_dict(noisy.state_dict())
    plain.train()
    with torch.no_grad():
        per_batch = [_bn_inputs(plain, x) for x in batches]
    mods = dict(noisy.named_modules())
    for name, first in per_batch[0].items():
        both = [first, per_batch[1][name]]
        mean = torch.stack([b.mean(dim=(0, 2, 3)) for b in both]).mean(0)
        var = torch.stack([b.var(dim=(0, 2, 3), unbiased=True) for b in both]).mean(0)
        assert torch.allclose(mods[name].running_mean, mean, atol=1e-5, rtol=1e-4), name
        assert torch.allclose(mods[name].running_var, var, atol=1e-5, rtol=1e-4), name
        assert mods[name].momentum == 0.1  # restored
    assert not _model("resnet18", sigma=1.0, eval_mode="on").needs_bn_recalibration  # noise stays on
    assert not _model("convnext_atto", sigma=1.0).needs_bn_recalibration  # no BatchNorm


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
        ({"sigma_mode": "snr"}, r"unknown sigma_mode 'snr'.*absolute"),
        ({"anchor": "centre"}, r"unknown anchor 'centre'.*corner"),
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
