"""Training-input perturbations a practitioner tries before an NSDE: noise on the inputs, and PGD.

Two configs, nested in `TrainConfig` and recorded with it (so a checkpoint, a trial's MLflow
params and its record name them as they do the noise config):

- `AugmentConfig`: noise added to every training batch (never to validation or test).
  - ``"gaussian"``: x + s * N(0, 1) per pixel on the spectrogram, clipped to [0, 1], the
    image sweep's own noise (`nsde.metrics.robustness.noisy_inputs`), so training and the
    sweep speak of one intensity;
  - ``"fbm"``: x + s * xi with xi a fractional Brownian field at `hurst` (`nsde.noise`, zero
    mean, expected spatial variance 1), clipped;
  - ``"signal"``: noise added to the *waveform* before the STFT at an SNR drawn per example,
    ``P_noise = P_ref / 10^(snr / 10)`` with the SNR sweep's reference power
    (`nsde.data.snr`), white (`color` 0) or with power spectrum ~ 1/f^color (1 pink, 2
    brown), then the data set's own spectrogram pipeline.
  The intensity s (or the SNR) is drawn per example, uniformly in [low, high] (fixed when
  low == high). torch-audiomentations' AddColoredNoise is not used: it references the SNR to
  the whole recording's power and draws from the global RNG, where the SNR sweep references
  the injected signal's power; its training noise would be on another scale than the test's.
- `AdversarialConfig`: PGD-L2 adversarial training (Madry et al. 2018) with torchattacks'
  `PGDL2`, every batch replaced by its attacked version, eps ramped up linearly over the
  first `ramp_epochs` epochs.

Both are off by default, and off draws nothing: a plain run is bit-identical to one made
before these options existed. The augmentation draws from its own generator (seeded by the
run's seed, saved in the checkpoint), so it leaves the model's noise stream untouched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from nsde.noise import HURST_RULE, sample_noise
from nsde.rules import Rule, check_fields, ruled

__all__ = ["AUGMENT_KINDS", "AdversarialConfig", "AugmentConfig", "Augmenter", "Adversary", "colored_noise",
           "augment_config_from_dict", "adversarial_config_from_dict"]

AUGMENT_KINDS = ("none", "gaussian", "fbm", "signal")
_IMAGE_KINDS = ("gaussian", "fbm")


@dataclass(frozen=True)
class AugmentConfig:
    """Noise on the training inputs (module docstring).

    Attributes:
        kind: "none", "gaussian" (image), "fbm" (image, at `hurst`) or "signal" (waveform at an SNR).
        low, high: the image noise's intensity range (the standard deviation of the per-pixel
            noise, in the spectrogram's [0, 1] units); drawn per example.
        hurst: the fBm field's Hurst exponent (kind "fbm").
        snr_low, snr_high: the SNR range in dB (kind "signal"); drawn per example.
        color: the signal noise's spectral exponent: power ~ 1/f^color (0 white, 1 pink, 2 brown).
    """

    kind: str = ruled("none", Rule(str, choices=AUGMENT_KINDS, what="augmentation kind",
                                   doc="noise on the training inputs: none, gaussian, fbm (image) or signal"))
    low: float = ruled(0.0, Rule(float, 0.0, doc="lowest image-noise intensity (per-pixel std, [0, 1] units)"))
    high: float = ruled(0.1, Rule(float, 0.0, doc="highest image-noise intensity"))
    hurst: float = ruled(0.5, dataclasses.replace(HURST_RULE, optional=False, doc="Hurst exponent of fbm input noise"))
    snr_low: float = ruled(0.0, Rule(float, -60.0, 100.0, doc="lowest SNR in dB (signal)"))
    snr_high: float = ruled(20.0, Rule(float, -60.0, 100.0, doc="highest SNR in dB (signal)"))
    color: float = ruled(0.0, Rule(float, 0.0, 2.0, doc="signal noise power ~ 1/f^color: 0 white, 1 pink, 2 brown"))

    def __post_init__(self) -> None:
        check_fields(self)
        if self.low > self.high:
            raise ValueError(f"augmentation `low <= high` must hold, but got low={self.low}, high={self.high}")
        if self.snr_low > self.snr_high:
            raise ValueError(f"augmentation `snr_low <= snr_high` must hold (an SNR range in dB, lowest first), "
                             f"but got snr_low={self.snr_low}, snr_high={self.snr_high}")
        if self.kind in _IMAGE_KINDS and self.high == 0:
            raise ValueError(f"augmentation kind {self.kind!r} with intensity range [0, 0] adds nothing; "
                             f"set `high > 0` or kind 'none'")

    @property
    def active(self) -> bool:
        return self.kind != "none"


@dataclass(frozen=True)
class AdversarialConfig:
    """PGD-L2 adversarial training (off when eps is 0).

    Attributes:
        eps: the L2 radius of the training attack, in the spectrogram's [0, 1] units (0 = off).
        steps: PGD steps per batch.
        alpha: the step size; None = 2.5 * eps / steps (Madry et al.'s rule).
        ramp_epochs: eps grows linearly from eps / ramp_epochs to eps over these first epochs (0 = full eps at once).
    """

    eps: float = ruled(0.0, Rule(float, 0.0, doc="L2 radius of PGD adversarial training; 0 = off"))
    steps: int = ruled(5, Rule(int, 1, doc="PGD steps per training batch"))
    alpha: float | None = ruled(None, Rule(float, 0.0, open_low=True, optional=True,
                                           doc="PGD step size (default 2.5 * eps / steps)"))
    ramp_epochs: int = ruled(0, Rule(int, 0, doc="epochs over which eps ramps up linearly"))

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def active(self) -> bool:
        return self.eps > 0

    def eps_at(self, epoch: int) -> float:
        """The attack radius in (1-based) `epoch`."""
        if self.ramp_epochs <= 0:
            return self.eps
        return self.eps * min(1.0, epoch / self.ramp_epochs)


def augment_config_from_dict(record: dict | AugmentConfig | None) -> AugmentConfig:
    return _from_dict(AugmentConfig, record)


def adversarial_config_from_dict(record: dict | AdversarialConfig | None) -> AdversarialConfig:
    return _from_dict(AdversarialConfig, record)


def _from_dict(cls, record):
    if isinstance(record, cls):
        return record
    record = dict(record or {})
    unknown = set(record) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown {cls.__name__} settings {sorted(unknown)}; known: "
                         f"{[f.name for f in dataclasses.fields(cls)]}")
    return cls(**record)


# ------------------------------------------------------------------------ augmentation


def colored_noise(n: int, t: int, color: float, *, generator: torch.Generator) -> torch.Tensor:
    """(n, t) float32 Gaussian noise of expected power 1 per sample, power spectrum ~ 1/f^color.

    White noise shaped in the frequency domain by f^(-color/2); the DC bin is zeroed for
    color > 0 (its 1/f weight is infinite) and the filter scaled so that the expected mean
    square is exactly 1. color 0 is plain N(0, 1).
    """
    white = torch.randn(n, t, generator=generator)
    if color == 0:
        return white
    f = torch.fft.rfftfreq(t, dtype=torch.float64)
    gain = torch.zeros_like(f)
    gain[1:] = f[1:] ** (-color / 2)
    # Parseval on the real FFT: the output's expected mean square is sum_k w_k |g_k|^2 / t over the
    # rfft bins, w_k = 2 except DC (and Nyquist for even t) = 1; the white input has 1 per bin.
    weight = torch.full_like(f, 2.0)
    weight[0] = 1.0
    if t % 2 == 0:
        weight[-1] = 1.0
    gain /= torch.sqrt((weight * gain**2).sum() / t)
    spec = torch.fft.rfft(white.double(), dim=1) * gain
    return torch.fft.irfft(spec, n=t, dim=1).float()


class Augmenter:
    """Applies an `AugmentConfig` to training batches of one data set's train split.

    `__call__(x, idx)` takes the batch (B, 1, S, S) and its rows `idx` in the train split
    (the signal kind needs them to find the waveforms) and returns the noisy batch; with
    `return_draws=True` also the per-example intensity (image) or SNR in dB (signal).
    """

    def __init__(self, cfg: AugmentConfig, data, generator: torch.Generator) -> None:
        self.cfg, self.generator = cfg, generator
        if cfg.kind == "signal":
            from nsde.data.dataset import data_config_from_dict  # training imports no metrics; data is fine
            from nsde.data.snr import split_waveforms, waveform_sample_rate

            self.waves, self.power = split_waveforms(data, "train")
            self.stft = data_config_from_dict(data.meta["config"]).stft(waveform_sample_rate(data, "train"))

    def _uniform(self, n: int, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=self.generator, dtype=torch.float64)

    def __call__(self, x: torch.Tensor, idx: torch.Tensor, *, return_draws: bool = False):
        cfg = self.cfg
        if cfg.kind in _IMAGE_KINDS:
            s = self._uniform(len(x), cfg.low, cfg.high).to(x.dtype)
            if cfg.kind == "gaussian":
                xi = torch.randn(x.shape, generator=self.generator, dtype=x.dtype)
            else:
                xi = sample_noise("fbm", x.shape, cfg.hurst, generator=self.generator, dtype=x.dtype)
            out = (x + s.view(-1, *[1] * (x.dim() - 1)) * xi).clamp(0.0, 1.0)
        elif cfg.kind == "signal":
            from nsde.data.spectrogram import spectrogram

            s = self._uniform(len(x), cfg.snr_low, cfg.snr_high)
            rows = idx.numpy()
            waves = torch.from_numpy(np.asarray(self.waves[rows], dtype=np.float32))
            power = torch.from_numpy(np.asarray(self.power[rows], dtype=np.float64))
            scale = torch.sqrt(power / 10 ** (s / 10)).float()  # (B,) noise std per example
            noise = colored_noise(len(rows), waves.shape[1], cfg.color, generator=self.generator)
            # float16 like the stored set, so an augmented batch is quantised as a clean one
            out = spectrogram(waves + scale[:, None] * noise, self.stft).to(torch.float16).to(x.dtype)
            out = out.view(x.shape)
        else:
            return (x, None) if return_draws else x
        return (out, s) if return_draws else out


# ----------------------------------------------------------------------- adversarial


class Adversary:
    """PGD-L2 on a training batch (torchattacks' `PGDL2`, model in eval mode while attacking,
    its default: BatchNorm uses its running statistics and an NSDE's noise follows eval_mode)."""

    def __init__(self, cfg: AdversarialConfig, model: torch.nn.Module) -> None:
        self.cfg, self.model = cfg, model

    def __call__(self, x: torch.Tensor, y: torch.Tensor, epoch: int) -> torch.Tensor:
        import torchattacks  # imported here: a run without adversarial training never loads it

        eps = self.cfg.eps_at(epoch)
        alpha = self.cfg.alpha if self.cfg.alpha is not None else 2.5 * eps / self.cfg.steps
        attack = torchattacks.PGDL2(self.model, eps=eps, alpha=alpha, steps=self.cfg.steps, random_start=True)
        attack.set_model_training_mode(model_training=False)
        return attack(x, y).detach()

