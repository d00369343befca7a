"""Waveforms -> log-magnitude spectrograms in [0, 1] on a log-frequency axis.

Choices (see docs/data.md): Hann window of `n_fft` = 8192 samples (10.24 ms at 800 kHz,
97.7 Hz per bin, so the 500 Hz fundamental and its harmonics are resolved), hop 512
(0.64 ms), no centring. The frequency axis is logarithmic from `f_min` to `f_max`, so a
waveform's harmonic pattern has the same shape at every fundamental; each row takes the
*peak* magnitude of the STFT bins in its band (narrow lines survive wide high-frequency
rows), or the interpolated magnitude where a row is narrower than one bin. Magnitudes
are in dB relative to a full-scale (amplitude 1) sine, mapped from [-db_range, 0] dB to
[0, 1] and clipped: one fixed range for every example, so noise floors stay comparable.
Row 0 is the highest frequency (low frequencies at the bottom of the image).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from nsde.rules import Rule, check_fields, ruled

__all__ = ["DB_RANGE_RULE", "HOP_RULE", "IMAGE_SIZE_RULE", "N_FFT_RULE", "SpectrogramConfig", "spectrogram",
           "row_frequencies"]

# The rules of the STFT settings, which DataConfig checks with the same rules.
IMAGE_SIZE_RULE = Rule(int, 8, doc="side of the square spectrogram image")
N_FFT_RULE = Rule(int, 16, doc="STFT window, samples")
HOP_RULE = Rule(int, 1, doc="STFT hop, samples")
DB_RANGE_RULE = Rule(float, 0, open_low=True, doc="dB below full scale mapped to 0")


@dataclass(frozen=True)
class SpectrogramConfig:
    """STFT and image settings."""

    sample_rate: float = 800_000.0
    n_fft: int = ruled(8192, N_FFT_RULE)
    hop: int = ruled(512, HOP_RULE)
    f_min: float = 300.0
    f_max: float = 400_000.0
    db_range: float = ruled(100.0, DB_RANGE_RULE)
    image_size: int = ruled(64, IMAGE_SIZE_RULE)

    def __post_init__(self) -> None:
        check_fields(self)
        # a rule across fields: the band lies below the Nyquist frequency
        if not 0 < self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(
                f"`0 < f_min < f_max <= sample_rate / 2` must hold, but got f_min={self.f_min}, "
                f"f_max={self.f_max}, sample_rate={self.sample_rate}"
            )


def row_frequencies(cfg: SpectrogramConfig) -> np.ndarray:
    """Centre frequency (Hz) of each image row, row 0 = highest."""
    edges = np.geomspace(cfg.f_min, cfg.f_max, cfg.image_size + 1)
    return np.sqrt(edges[:-1] * edges[1:])[::-1].copy()


@lru_cache(maxsize=16)
def _row_bins(cfg: SpectrogramConfig) -> list[tuple[int, int, float]]:
    """Per row (low to high): bins [lo, hi) to take the peak over, or (i, i+1, frac) to interpolate."""
    edges = np.geomspace(cfg.f_min, cfg.f_max, cfg.image_size + 1)
    bin_hz = cfg.sample_rate / cfg.n_fft
    rows = []
    for lo_f, hi_f in zip(edges[:-1], edges[1:]):
        lo, hi = int(np.ceil(lo_f / bin_hz)), int(np.ceil(hi_f / bin_hz))
        if hi > lo:
            rows.append((lo, hi, -1.0))
        else:  # narrower than a bin: interpolate at the geometric centre
            pos = np.sqrt(lo_f * hi_f) / bin_hz
            rows.append((int(pos), int(pos) + 1, float(pos - int(pos))))
    return rows


def _log_frequency(mag: torch.Tensor, cfg: SpectrogramConfig) -> torch.Tensor:
    """(B, bins, frames) -> (B, rows, frames), row 0 = highest frequency."""
    rows = []
    for lo, hi, frac in _row_bins(cfg):
        if frac < 0:
            rows.append(mag[:, lo:hi].amax(dim=1))
        else:
            rows.append(torch.lerp(mag[:, lo], mag[:, hi], frac))
    return torch.stack(rows[::-1], dim=1)


@lru_cache(maxsize=4)
def _window(n_fft: int) -> torch.Tensor:
    return torch.hann_window(n_fft, periodic=True, dtype=torch.float64).float()


def spectrogram(waveforms: torch.Tensor | np.ndarray, cfg: SpectrogramConfig) -> torch.Tensor:
    """(B, T) waveforms -> (B, 1, S, S) float32 spectrograms in [0, 1].

    Raises:
        ValueError: if T is shorter than one STFT window or the input is not finite.
    """
    x = torch.as_tensor(waveforms, dtype=torch.float32)
    if x.dim() != 2:
        raise ValueError(f"`waveforms` must have shape (B, T), but got {tuple(x.shape)}")
    if x.shape[1] < cfg.n_fft:
        raise ValueError(f"waveforms need >= n_fft={cfg.n_fft} samples, but got T={x.shape[1]}")
    if not torch.isfinite(x).all():
        raise ValueError("waveforms contain NaN or inf")
    window = _window(cfg.n_fft)
    spec = torch.stft(x, cfg.n_fft, cfg.hop, window=window, center=False, return_complex=True)
    full_scale = float(window.sum()) / 2.0  # peak |X| of an amplitude-1 sine
    mag = _log_frequency(spec.abs() / full_scale, cfg)  # (B, rows, frames)
    db = 20.0 * torch.log10(mag.clamp_min(1e-12))
    img = ((db + cfg.db_range) / cfg.db_range).clamp(0.0, 1.0)
    # (B, rows, frames) -> (B, 1, rows, S): resample the time axis to the image width.
    img = F.interpolate(img, size=cfg.image_size, mode="linear", align_corners=True)
    return img.unsqueeze(1)
