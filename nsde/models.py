"""Neural-SDE classifiers: timm backbones whose residual blocks inject shaped noise.

Each chosen residual block computes the Euler-Maruyama step

    x_{k+1} = block(x_k) + sigma * xi_k,

with xi_k a fresh field (see `nsde.noise`) for every sample and channel at the block's
spatial size (Liu et al. 2019, "Neural SDE: stabilizing neural ODE networks with
stochastic noise"; Jha et al. 2022 for shaped noise). The noise is added by forward
hooks on the unmodified timm blocks, so the parameters and their names are exactly
timm's, and with sigma = 0 (or no injected block) no hook exists at all: the model is
the plain timm model (the baseline of the study).

At evaluation the noise is off, on, or averaged: ``eval_mode="mc"`` returns
log(mean_s softmax(f_s(x))) over `mc_samples` stochastic passes, which are valid
logits (their softmax is the Monte-Carlo mean of the class probabilities).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import timm
import torch
from torch import nn

from nsde.noise import ANCHOR_RULE, HURST_RULE, METHOD_RULE, SHAPE_RULE, get_noise, sample_noise
from nsde.rules import Rule, check_fields, ruled

__all__ = [
    "check_depth",
    "stage_sizes",
    "NoiseConfig",
    "ModelConfig",
    "NSDEModel",
    "build_model",
    "model_config_from_dict",
    "register_backbone",
    "list_backbones",
    "parse_depth",
    "EVAL_MODES",
    "SIGMA_MODES",
    "dead_blocks",
    "recalibrate_batchnorm",
]

EVAL_MODES = ("off", "on", "mc")
# "absolute": the field is sigma * xi; "relative": sigma * RMS(block output, per sample) * xi,
# so sigma reads as a noise-to-signal ratio whatever the stage's or backbone's activation scale.
SIGMA_MODES = ("absolute", "relative")
Depth = int | float | str | tuple[int, ...]


# ------------------------------------------------------------------ backbone registry

# A block lister returns the residual blocks of a built timm model, grouped by stage,
# in forward order: [[(qualified_name, module), ...] per stage]. Written per family because
# timm's public API has no such list: group_matcher() merges ConvNeXt's downsample into a
# stage's first block, and feature_info names stages (ResNet's stem act1 included), not blocks.
BlockLister = Callable[[nn.Module], list[list[tuple[str, nn.Module]]]]
_BACKBONES: dict[str, BlockLister] = {}


def register_backbone(*names: str) -> Callable[[BlockLister], BlockLister]:
    """Decorator: backbones `names` support injection; `fn` lists their residual blocks."""

    def _register(fn: BlockLister) -> BlockLister:
        for name in names:
            _BACKBONES[name] = fn
        return fn

    return _register


def list_backbones() -> list[str]:
    """Backbones that support noise injection, sorted."""
    return sorted(_BACKBONES)


BACKBONE_RULE = Rule(str, choices=list_backbones, what="backbone", doc="timm backbone")


# ----------------------------------------------------------------------- depth rules


def _check_depth(depth: Depth) -> None:
    if isinstance(depth, bool):
        raise ValueError(f"`depth` must be an int, a float in (0, 1], stage indices or 'all', but got {depth!r}")
    if isinstance(depth, int) and depth < 0:
        raise ValueError(f"`depth >= 0` must hold for a block count, but got depth={depth}")
    if isinstance(depth, float) and not 0.0 < depth <= 1.0:
        raise ValueError(f"a fractional `depth` must lie in (0, 1], but got depth={depth}")
    if isinstance(depth, str):
        _parse_stages(depth)
    if isinstance(depth, tuple) and not all(isinstance(s, int) and not isinstance(s, bool) for s in depth):
        raise ValueError(f"stage indices in `depth` must be ints, but got depth={depth!r}")
    if not isinstance(depth, (int, float, str, tuple)):
        raise ValueError(f"`depth` must be an int, a float in (0, 1], stage indices or 'all', but got {depth!r}")


def _parse_stages(spec: str) -> tuple[int, ...] | None:
    """'all' -> None (every block); 'stages:0,2' -> (0, 2)."""
    if spec == "all":
        return None
    prefix = "stages:"
    try:
        if not spec.startswith(prefix):
            raise ValueError
        return tuple(int(s) for s in spec[len(prefix) :].split(","))
    except ValueError:
        raise ValueError(f"a string `depth` must be 'all' or 'stages:I,J,...', but got {spec!r}") from None


# --------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class NoiseConfig:
    """The injected noise: shape, intensity, depth and evaluation behaviour.

    Attributes:
        shape: a registered noise shape (`nsde.noise.list_noises()`: "fbm", "stationary", "white").
        hurst: Hurst exponent in (0, 1), used by the shapes that take one ("fbm", "stationary").
        sigma: intensity >= 0; 0 is the deterministic baseline. Its unit is `sigma_mode`'s.
        sigma_mode: "absolute" (the field is sigma * xi) or "relative" (sigma * the detached
            RMS of the block's output, per sample: sigma is the noise-to-signal ratio).
        anchor: "mean" (fields with zero spatial mean: they never move a channel's mean) or
            "corner" (the field's own law: fBm pinned at B(0, 0) = 0, white and stationary
            fields not centred), see `nsde.noise`.
        depth: which residual blocks (in forward order) get noise: an int k = the first
            k blocks; a float f in (0, 1] = the first ceil(f * n) of the n blocks; a tuple
            of stage indices (or the string "stages:0,1") = every block of those stages;
            "all" = every block. Blocks whose noise cannot reach the logits (`dead_blocks`:
            the last block under anchor "mean", since the head pools globally) are left out.
        method: fBm method (`nsde.noise.FBM_METHODS`): "exact" (default; an exact algorithm
            chosen by field size), "stein", "dense" or "spectral" (approximate).
        eval_mode: noise at evaluation: "off", "on" or "mc" (mean softmax of passes).
        mc_samples: passes averaged in "mc" mode.
    """

    shape: str = ruled("fbm", SHAPE_RULE)
    hurst: float | None = ruled(0.5, HURST_RULE)
    sigma: float = ruled(0.0, Rule(float, 0.0, doc="intensity, in sigma_mode's unit; 0 = no noise"))
    sigma_mode: str = ruled("absolute", Rule(str, choices=SIGMA_MODES, what="sigma_mode",
                                             doc="absolute, or relative to the block's output RMS"))
    anchor: str = ruled("mean", ANCHOR_RULE)
    depth: Depth = ruled("all", Rule(object, validator=_check_depth, doc="k blocks, a fraction, 'stages:0,1' or 'all'"))
    method: str = ruled("exact", METHOD_RULE)
    eval_mode: str = ruled("off", Rule(str, choices=EVAL_MODES, what="eval_mode",
                                       doc="noise at evaluation: off, on, mc"))
    mc_samples: int = ruled(8, Rule(int, 1, doc="passes averaged in 'mc' mode"))

    def __post_init__(self) -> None:
        check_fields(self, skip=("hurst",))
        get_noise(self.shape).check_hurst(self.hurst)  # the shape decides whether hurst is used

    @property
    def sampler_options(self) -> dict:
        options = {"anchor": self.anchor}
        return {**options, "method": self.method} if self.shape == "fbm" else options


@dataclass(frozen=True)
class ModelConfig:
    """A classifier: timm backbone, classes, input channels, drop-path and the noise.

    Inputs are spectrograms in [0, 1] (the range attacks work in); the model standardises
    them with the fixed affine map (x - input_mean) / input_std before the backbone.
    ConvNeXt does not learn from raw [0, 1] inputs here (its LayerNorm stem sees a large
    constant offset); measured: 7 % vs 98 % training accuracy after 80 steps.
    """

    backbone: str = ruled("convnext_atto", BACKBONE_RULE)
    num_classes: int = ruled(16, Rule(int, 2))
    in_chans: int = ruled(1, Rule(int, 1))
    drop_path_rate: float = ruled(0.0, Rule(float, 0.0, 1.0, open_high=True, doc="stochastic depth"))
    input_mean: float = ruled(0.5, Rule(float))
    input_std: float = ruled(0.25, Rule(float, 0.0, open_low=True))
    noise: NoiseConfig = field(default_factory=NoiseConfig)

    def __post_init__(self) -> None:
        check_fields(self)


def model_config_from_dict(record: dict) -> ModelConfig:
    """The ModelConfig of `dataclasses.asdict(cfg)` or a JSON copy of it (a checkpoint, a
    trial's flat keys regrouped): the one place where a dict becomes a ModelConfig. A list
    `depth` (JSON has no tuples) becomes the tuple of stage indices."""
    record = dict(record)
    noise = dict(record.pop("noise", {}))
    if isinstance(noise.get("depth"), list):
        noise["depth"] = tuple(noise["depth"])
    return ModelConfig(**record, noise=NoiseConfig(**noise))


@register_backbone(
    "convnext_atto", "convnext_femto", "convnext_pico", "convnext_nano", "convnext_tiny", "convnext_small", "convnext_base"
)
def _convnext_blocks(model: nn.Module) -> list[list[tuple[str, nn.Module]]]:
    return [[(f"stages.{i}.blocks.{j}", b) for j, b in enumerate(stage.blocks)] for i, stage in enumerate(model.stages)]


@register_backbone("resnet18", "resnet34", "resnet50")
def _resnet_blocks(model: nn.Module) -> list[list[tuple[str, nn.Module]]]:
    layers = [model.layer1, model.layer2, model.layer3, model.layer4]
    return [[(f"layer{i + 1}.{j}", b) for j, b in enumerate(layer)] for i, layer in enumerate(layers)]


def parse_depth(text: str) -> Depth:
    """A `depth` from text (command line, YAML): '3' -> 3, '0.5' -> 0.5, 'all', 'stages:0,2'."""
    text = text.strip()
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        _check_depth(value)
        return value
    _parse_stages(text)
    return text


def select_blocks(stages: list[list[tuple[str, nn.Module]]], depth: Depth) -> list[tuple[str, nn.Module]]:
    """The residual blocks that `depth` selects, in forward order."""
    flat = [b for stage in stages for b in stage]
    if isinstance(depth, str):
        depth = _parse_stages(depth) or tuple(range(len(stages)))
    if isinstance(depth, tuple):
        bad = [s for s in depth if not 0 <= s < len(stages)]
        if bad:
            raise ValueError(f"stage indices must lie in [0, {len(stages)}), but got {bad} in depth={depth}")
        return [b for s in sorted(set(depth)) for b in stages[s]]
    if isinstance(depth, float):
        return flat[: math.ceil(depth * len(flat))]
    if depth > len(flat):
        raise ValueError(f"`depth <= {len(flat)}` (the number of residual blocks) must hold, but got depth={depth}")
    return flat[:depth]


# ----------------------------------------------------------------------------- model


class NSDEModel(nn.Module):
    """A timm classifier with noise hooks on its chosen residual blocks.

    `backbone` is the unmodified timm model; `injected` names the blocks that get noise and
    `injected_stages` their stage indices. forward(x) standardises x with the config's fixed
    input mean and std first. In training mode the hooks accumulate the measured
    noise-to-signal ratio per stage (`noise_to_signal`), without a device sync per step.
    """

    def __init__(self, backbone: nn.Module, cfg: ModelConfig, blocks: Sequence[tuple[str, nn.Module]],
                 stages: Sequence[int] | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.cfg = cfg
        self.generator: torch.Generator | None = None
        self._noise_enabled = True
        noisy = cfg.noise.sigma > 0
        self.injected: tuple[str, ...] = tuple(name for name, _ in blocks) if noisy else ()
        self.injected_stages: tuple[int, ...] = tuple(stages or [0] * len(blocks)) if noisy else ()
        # per stage: [sum of per-batch mean noise/signal RMS ratios, number of batches]
        self._nsr: dict[int, list] = {}
        if self.injected:
            for (_, block), stage in zip(blocks, self.injected_stages):
                block.register_forward_hook(functools.partial(self._inject, stage=stage))

    @property
    def stochastic(self) -> bool:
        """Whether forward passes in the current mode draw noise."""
        if not self.injected or not self._noise_enabled:
            return False
        return self.training or self.cfg.noise.eval_mode != "off"

    def set_noise_generator(self, generator: torch.Generator | None) -> None:
        """Draw the injected noise from `generator` (None: the global RNG) for reproducibility."""
        self.generator = generator

    @contextmanager
    def noise_disabled(self):
        """Forward passes without injected noise, whatever the mode (BatchNorm recalibration)."""
        previous, self._noise_enabled = self._noise_enabled, False
        try:
            yield self
        finally:
            self._noise_enabled = previous

    def noise_to_signal(self, *, reset: bool = True) -> dict[str, float]:
        """Mean measured RMS(noise) / RMS(block output) per stage ("stage0", ...) over the
        training batches since the last reset: per sample, averaged over samples, blocks and batches."""
        out = {f"stage{s}": float(total) / count for s, (total, count) in sorted(self._nsr.items()) if count}
        if reset:
            self._nsr.clear()
        return out

    def _inject(self, module: nn.Module, inputs: tuple, output: torch.Tensor, *, stage: int) -> torch.Tensor:
        if not self.stochastic:
            return output
        noise_cfg = self.cfg.noise
        h, w = output.shape[-2:]
        if h < 2 or w < 2:
            name = next(n for n, m in self.backbone.named_modules() if m is module)
            earlier = ",".join(str(i) for i in range(stage))
            fix = f"a `depth` that leaves it out, e.g. 'stages:{earlier}' (--depth stages:{earlier})" if earlier \
                else "a `depth` that leaves it out"
            raise ValueError(
                f"block {name!r} (stage {stage}) has a {h}x{w} feature map; noise fields need >= 2x2: "
                f"use a larger input image (--image-size) or {fix}"
            )
        xi = self._draw(output)  # (B, C, h, w), one field per sample and channel
        if not output.is_contiguous() and output.is_contiguous(memory_format=torch.channels_last):
            xi = xi.contiguous(memory_format=torch.channels_last)
        noise = noise_cfg.sigma * xi
        needs_rms = noise_cfg.sigma_mode == "relative" or self.training
        # (B, C, h, w) -> (B, 1, 1, 1): the RMS of each sample's block output, detached (the
        # noise's scale follows the signal but is not a path for gradients)
        rms = output.detach().float().pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt() if needs_rms else None
        if noise_cfg.sigma_mode == "relative":
            noise = noise * rms.to(noise.dtype)
        if self.training:
            self._record_nsr(stage, noise, rms)
        return output + noise

    @torch.no_grad()
    def _record_nsr(self, stage: int, noise: torch.Tensor, rms: torch.Tensor) -> None:
        # (B, C, h, w) -> (B,): per-sample RMS of the noise over the block output's RMS
        ratio = noise.float().pow(2).mean(dim=(1, 2, 3)).sqrt() / rms.flatten().clamp_min(1e-12)
        total = self._nsr.setdefault(stage, [0.0, 0])
        total[0] = total[0] + ratio.mean()  # a tensor: summed on the device, read once per epoch
        total[1] += 1

    # Noise is drawn eagerly under torch.compile: inductor has no complex-FFT codegen, and
    # the sampler's cached numpy set-up must not be traced.
    @torch.compiler.disable
    def _draw(self, output: torch.Tensor) -> torch.Tensor:
        noise_cfg = self.cfg.noise
        return sample_noise(
            noise_cfg.shape,
            output.shape,
            noise_cfg.hurst,
            generator=self.generator,
            device=output.device,
            dtype=output.dtype,
            **noise_cfg.sampler_options,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.cfg.input_mean) / self.cfg.input_std
        if self.training or self.cfg.noise.eval_mode != "mc" or not self.stochastic:
            return self.backbone(x)
        # (S passes of (B, K)) -> (B, K): log of the Monte-Carlo mean of the softmax.
        log_probs = torch.stack([self.backbone(x).float().log_softmax(-1) for _ in range(self.cfg.noise.mc_samples)])
        return torch.logsumexp(log_probs, dim=0) - math.log(self.cfg.noise.mc_samples)

    @property
    def needs_bn_recalibration(self) -> bool:
        """True when BatchNorm statistics were collected with noise that evaluation leaves off."""
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.modules())
        return bool(self.injected) and self.cfg.noise.eval_mode == "off" and has_bn


@torch.no_grad()
def recalibrate_batchnorm(model: NSDEModel, batches) -> int:
    """Recompute every BatchNorm layer's running statistics on `batches` with the noise off.

    The statistics become the equally weighted mean of the per-batch means and (unbiased)
    variances (momentum None), as a noise-free pass would collect them; every other module
    stays in eval mode (no dropout or drop-path draws). torch.optim.swa_utils.update_bn does
    the same but puts the whole model in training mode, which would switch the noise back on.
    Returns the number of batches used.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    was_training = model.training
    momenta = [bn.momentum for bn in bns]
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    used = 0
    try:
        with model.noise_disabled():
            for x in batches:
                model(x)
                used += 1
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
        model.train(was_training)
    return used


@functools.lru_cache(maxsize=None)
def stage_sizes(backbone: str) -> tuple[int, ...]:
    """Residual blocks per stage of `backbone` (built on the meta device: no memory, no time)."""
    BACKBONE_RULE.check(backbone, "backbone")
    with torch.device("meta"):
        model = timm.create_model(backbone, pretrained=False, num_classes=2, in_chans=1)
    return tuple(len(stage) for stage in _BACKBONES[backbone](model))


def check_depth(backbone: str, depth: Depth) -> None:
    """Raise ValueError when `depth` selects blocks `backbone` does not have."""
    _check_depth(depth)
    stages = [[(f"{s}.{b}", None) for b in range(n)] for s, n in enumerate(stage_sizes(backbone))]
    try:
        select_blocks(stages, parse_depth(depth) if isinstance(depth, str) else depth)
    except ValueError as err:
        raise ValueError(f"{backbone}: {err}") from None


def dead_blocks(stages: list[list[tuple[str, nn.Module]]], anchor: str) -> set[str]:
    """Blocks whose injected noise cannot reach the logits.

    Every registered backbone's head starts with global average pooling. A field with zero
    spatial mean (anchor "mean") added to the *last* block's output is averaged away there
    exactly (measured: logits change by ~1e-7 at sigma = 1); every earlier block feeds a
    convolution, a norm or a nonlinearity first. Corner-anchored fields move channel means,
    so under "corner" no block is dead.
    """
    if anchor != "mean" or not stages or not stages[-1]:
        return set()
    return {stages[-1][-1][0]}


def build_model(cfg: ModelConfig) -> NSDEModel:
    """Create the timm backbone of `cfg` (random weights) and attach the noise hooks.

    Raises:
        ValueError: `depth` selects only blocks whose noise cannot reach the logits.
    """
    backbone = timm.create_model(
        cfg.backbone,
        pretrained=False,
        num_classes=cfg.num_classes,
        in_chans=cfg.in_chans,
        drop_path_rate=cfg.drop_path_rate,
    )
    stages = _BACKBONES[cfg.backbone](backbone)
    stage_of = {name: s for s, stage in enumerate(stages) for name, _ in stage}
    blocks = select_blocks(stages, cfg.noise.depth)
    if cfg.noise.sigma > 0:
        dead = dead_blocks(stages, cfg.noise.anchor)
        skipped = [name for name, _ in blocks if name in dead]
        blocks = [(name, b) for name, b in blocks if name not in dead]
        if skipped and not blocks:
            raise ValueError(f"{cfg.backbone}: depth={cfg.noise.depth!r} selects only {skipped}, whose zero-mean "
                             "noise the head's global average pooling removes; choose earlier blocks or "
                             "anchor='corner'")
        if skipped and cfg.noise.depth != "all":  # "all" means every block whose noise reaches the logits
            warnings.warn(f"{cfg.backbone}: no noise in {skipped} (anchor 'mean': the head's global average "
                          "pooling removes it); injecting into the other selected blocks", stacklevel=2)
    return NSDEModel(backbone, cfg, blocks, [stage_of[name] for name, _ in blocks])
