"""Seeded generators of power-line interference, channel and mixing effects (docs/data.md, "Realism options").

Pure functions that the synthetic stand-in (`nsde.data.synthetic`) adds to its recipe with
`SynthConfig.realism` (and `mux="sum"`):

- `impulsive_noise`: mains-synchronous impulsive noise, a damped pulse train every half mains cycle
  per rectifier or dimmer (Katayama, Yamazato & Okada 2006, "A mathematical model of noise in
  narrowband power line communication systems", IEEE JSAC 24(7); Cortes et al. 2010, "Analysis of
  the indoor broadband power-line noise scenario", IEEE Trans. EMC 52(4): the impulsive part is
  cyclostationary with half the mains period).
- `smps_comb`: a switch-mode power supply's switching harmonics, the Fourier series of a trapezoidal
  pulse train (Paul, "Introduction to Electromagnetic Compatibility", 2nd ed. 2006, sec. 3.2),
  band-limited by construction.
- `multipath_response` / `zimmermann_dostert`: the power-line channel's frequency response,
  H(f) = sum_i g_i exp(-(a0 + a1 f^k) d_i) exp(-j 2 pi f d_i / v_p) (Zimmermann & Dostert 2002,
  "A multipath model for the powerline channel", IEEE Trans. Commun. 50(4)).
- `mains_harmonics`: 60 Hz mains with harmonics to the 50th, odd dominant.
- `mux_sum`: the "simultaneous injection" variant of a pair of waveforms.

Every parameter range below is an ASSUMPTION chosen by reasoning, not fitted to the ORNL
recordings (which are not available here); docs/data.md ("Realism options (assumptions)")
lists them with the reasoning.
Generators take per-example parameters (a reference RMS or a level, whose length is the batch
size), anything with `sample_rate` and `samples` (a `SynthConfig`), and a `np.random.Generator`;
they return (B, T) float32 tensors and draw from the generator in a fixed order, so a seed fixes
the output.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import NamedTuple, Protocol

import numpy as np
import scipy.fft
import torch

__all__ = [
    "Timebase",
    "impulsive_noise",
    "smps_comb",
    "zimmermann_dostert",
    "multipath_response",
    "mains_amplitudes",
    "mains_harmonics",
    "mux_sum",
    "sum_pair_names",
]

BAND_EDGE = 0.45  # fraction of the sample rate kept, as `synthetic._band_limit_and_filter` does

# Impulsive bursts (ASSUMPTION): a rectifier's commutation or a triac's firing rings the wiring's
# LC for a few microseconds; a burst is 1-4 such rings a few microseconds apart, tens of us long.
_PULSES = (1, 4)
_PULSE_SPACING_S = (2e-6, 10e-6)
_RING_HZ = (30e3, 300e3)
_DECAY_S = (2e-6, 10e-6)
_PULSE_RATIO = (0.3, 0.8)  # each pulse's amplitude over the previous one's
_BURST_JITTER_DB = 1.0  # burst-to-burst amplitude spread, uniform +-
_TAIL_S = 200e-6  # longer than any burst (3 x 10 us + 5 x 10 us decay)

# Switch-mode supplies (ASSUMPTION): the switching frequency is wobbled by the 120 Hz ripple of
# the rectified DC bus (twice the mains frequency).
_RIPPLE_HZ = 120.0

# Power-line channel (Zimmermann & Dostert 2002, their four-path example): a1 in s/m, k = 1,
# a0 = 0; v_p = c0 / sqrt(eps_r) with eps_r ~ 4 for PVC-insulated cable.
_A1 = 7.8e-10
_K = 1.0
_V_P = 1.5e8


class Timebase(Protocol):
    """What the generators read from a `SynthConfig`."""

    sample_rate: float
    samples: int


# ---------------------------------------------------------------------------------------------
# Input checks and draws
# ---------------------------------------------------------------------------------------------


def _timebase(cfg: Timebase) -> tuple[float, int]:
    fs, n = float(cfg.sample_rate), int(cfg.samples)
    if not (fs > 0 and n >= 1):
        raise ValueError(f"`sample_rate > 0 and samples >= 1` must hold, but got {fs=}, samples={n}")
    return fs, n


def _check_range(name: str, r: tuple[float, float], low: float = -math.inf, high: float = math.inf) -> None:
    lo, hi = r
    if not low <= lo <= hi <= high:
        raise ValueError(f"`{low} <= {name}[0] <= {name}[1] <= {high}` must hold, but got {name}={r}")


def _per_example(name: str, values: np.ndarray | torch.Tensor | Sequence[float]) -> np.ndarray:
    """(B,) or (B, 1) per-example values -> (B,) float64."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]  # (B, 1) -> (B,)
    if v.ndim != 1 or not np.isfinite(v).all():
        raise ValueError(f"`{name}` must be finite with shape (B,) or (B, 1), but got shape {v.shape}")
    return v


def _reference(reference_rms: np.ndarray | torch.Tensor | Sequence[float]) -> np.ndarray:
    ref = _per_example("reference_rms", reference_rms)
    if (ref < 0).any():
        raise ValueError(f"`reference_rms >= 0` must hold, but got min {ref.min()}")
    return ref


def _log_uniform(rng: np.random.Generator, r: tuple[float, float], size: int | None = None):
    return np.exp(rng.uniform(math.log(r[0]), math.log(r[1]), size=size))


def _db(level_db: np.ndarray | float) -> np.ndarray:
    return 10.0 ** (np.asarray(level_db, dtype=np.float64) / 20.0)


def _times(fs: float, n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / fs  # float64: thousands of cycles per window


# ---------------------------------------------------------------------------------------------
# 1. Mains-synchronous impulsive noise
# ---------------------------------------------------------------------------------------------


def _damped_sine_spectrum(f: np.ndarray, ring_hz: float, decay_s: float) -> np.ndarray:
    """Fourier transform of exp(-t / decay) sin(2 pi ring t) for t >= 0, at frequencies f (Hz)."""
    w = 2 * math.pi * ring_hz
    s = 1.0 / decay_s + 2j * math.pi * f
    return w / (s**2 + w**2)


def _delay(f: np.ndarray, seconds: float | np.ndarray) -> np.ndarray:
    """exp(-j 2 pi f seconds), from cos and sin (half the time of numpy's complex exp)."""
    arg = 2 * math.pi * np.multiply.outer(seconds, f)
    out = np.empty(arg.shape, dtype=np.complex128)
    out.real, out.imag = np.cos(arg), -np.sin(arg)
    return out


def _burst_spectrum(f: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(F,) frequencies -> (F,) spectrum of one source's burst: a train of damped rings."""
    pulses = int(rng.integers(_PULSES[0], _PULSES[1] + 1))
    step = _delay(f, rng.uniform(*_PULSE_SPACING_S))
    ratio = rng.uniform(*_PULSE_RATIO)
    ring = _damped_sine_spectrum(f, _log_uniform(rng, _RING_HZ), rng.uniform(*_DECAY_S))
    train = np.zeros_like(step)
    for m in reversed(range(pulses)):  # Horner: sum_m ratio^m step^m
        train = train * step + ratio**m
    return ring * train


class _Frame(NamedTuple):
    """The padded FFT frame the bursts are rendered in: the window is samples [pad, pad + n) of m."""

    n: int
    m: int
    pad: int
    fs: float
    half_period: float


def _frame(n: int, fs: float, mains_hz: float) -> _Frame:
    """Pad by 5 burst tails on each side (no tail wraps around into the window), to a fast FFT length."""
    pad = max(math.ceil(5 * _TAIL_S * fs), 32)
    m = scipy.fft.next_fast_len(n + 2 * pad, real=True)
    return _Frame(n, m, (m - n) // 2, fs, 0.5 / mains_hz)


def _half_cycles(fr: _Frame) -> np.ndarray:
    """Indices k of the half cycles whose bursts can reach the padded window."""
    lo, hi = -fr.pad / fr.fs / fr.half_period, (fr.n + fr.pad) / fr.fs / fr.half_period
    return np.arange(math.floor(lo) - 1, math.ceil(hi) + 1)


def _source_bursts(
    f: np.ndarray, k: np.ndarray, shifts: np.ndarray, fr: _Frame, rng: np.random.Generator
) -> np.ndarray:
    """One source's band-limited bursts every half mains cycle, peak 1 in the window: (T,).

    f: (F,) the frame's rfft frequencies; k: (K,) half-cycle indices; shifts: (K, F) their delays
    exp(-j 2 pi f (k half_period + pad / fs)).
    """
    phase = rng.uniform(0.0, fr.half_period)
    polarity = rng.choice((-1.0, 1.0))
    spectrum = _burst_spectrum(f, rng)
    starts = phase + k * fr.half_period  # (K,) seconds from the window's start
    keep = (starts >= -fr.pad / fr.fs) & (starts < (fr.n + fr.pad) / fr.fs - _TAIL_S)
    # Each half cycle flips the sign: a rectifier conducts, a triac fires, on either polarity.
    amps = polarity * (-1.0) ** k * _db(rng.uniform(-_BURST_JITTER_DB, _BURST_JITTER_DB, size=len(k))) * keep
    # (K,) @ (K, F) -> (F,), on the (K, 2F) float view: numpy's complex vector-matrix product is 10x slower.
    comb = _delay(f, phase) * (amps @ shifts.view(np.float64)).view(np.complex128)
    x = np.fft.irfft(fr.fs * spectrum * comb * (f < BAND_EDGE * fr.fs), n=fr.m)[fr.pad : fr.pad + fr.n]
    peak = np.abs(x).max()
    return x / peak if peak > 0 else x


def impulsive_noise(
    reference_rms: np.ndarray | torch.Tensor | Sequence[float],
    cfg: Timebase,
    rng: np.random.Generator,
    *,
    level_db: tuple[float, float] = (0.0, 20.0),
    sources: tuple[int, int] = (1, 3),
    mains_hz: float = 60.0,
) -> torch.Tensor:
    """Mains-synchronous impulsive noise: (B,) reference RMS -> (B, T) float32.

    Each example has `sources` (uniform integer) rectifiers or dimmers. A source fires one burst
    every half mains cycle (8.33 ms at 60 Hz: 4-5 in a 40.96 ms window) at a phase drawn uniformly
    within the half cycle, alternating in sign; a burst is 1-4 damped rings (30-300 kHz,
    2-10 us decay, 2-10 us apart), the same shape every time, amplitude +-1 dB burst to burst.
    Bursts are synthesised in the frequency domain from their closed-form spectrum, so their
    times are exact (not rounded to a sample) and they are band-limited to 0.45 fs like the
    waveforms. The largest sample of each source is 10**(level/20) * reference_rms, the level
    drawn uniformly from `level_db` per source.
    """
    fs, n = _timebase(cfg)
    ref = _reference(reference_rms)
    _check_range("level_db", level_db)
    _check_range("sources", sources, low=0)
    if not mains_hz > 0:
        raise ValueError(f"`mains_hz > 0` must hold, but got {mains_hz=}")
    fr = _frame(n, fs, mains_hz)
    f = np.fft.rfftfreq(fr.m, d=1.0 / fs)
    k = _half_cycles(fr)
    shifts = _delay(f, k * fr.half_period + fr.pad / fs)  # (K, F), shared by every source
    out = np.zeros((len(ref), n))
    for i, count in enumerate(rng.integers(sources[0], sources[1] + 1, size=len(ref))):
        for _ in range(count):
            level = _db(rng.uniform(*level_db))
            out[i] += level * ref[i] * _source_bursts(f, k, shifts, fr, rng)
    return torch.from_numpy(out).float()


# ---------------------------------------------------------------------------------------------
# 2. Switch-mode power-supply comb
# ---------------------------------------------------------------------------------------------


def _trapezoid_coefficients(orders: np.ndarray, duty: float, rise: float) -> np.ndarray:
    """Cosine-series coefficients of a unit trapezoidal pulse train (duty and rise as fractions
    of the period), harmonics `orders`: 2 D sinc(n D) sinc(n rise) (Paul 2006, sec. 3.2)."""
    return 2.0 * duty * np.sinc(orders * duty) * np.sinc(orders * rise)


def _jittered_phase(t: np.ndarray, f_sw: float, depth: float, start: float, ripple_phase: float) -> np.ndarray:
    """Phase in cycles of f_sw (1 + depth sin(2 pi f_r t + ripple_phase)), integrated exactly."""
    w = 2 * math.pi * _RIPPLE_HZ
    wobble = depth * f_sw / w * (math.cos(ripple_phase) - np.cos(w * t + ripple_phase))
    return start + f_sw * t + wobble


def _highest_order(f_sw: float, depth: float, fs: float) -> int:
    """The largest n whose FM band (Carson: n f_sw (1 + depth) + f_r) stays below 0.45 fs."""
    return int(math.floor((BAND_EDGE * fs - _RIPPLE_HZ) / (f_sw * (1.0 + depth))))


def smps_comb(
    reference_rms: np.ndarray | torch.Tensor | Sequence[float],
    cfg: Timebase,
    rng: np.random.Generator,
    *,
    f_sw_hz: tuple[float, float] = (20e3, 200e3),
    level_db: tuple[float, float] = (-20.0, 0.0),
    duty: tuple[float, float] = (0.3, 0.7),
    rise: tuple[float, float] = (0.01, 0.05),
    jitter: tuple[float, float] = (0.0, 0.01),
) -> torch.Tensor:
    """Switch-mode supply interference: (B,) reference RMS -> (B, T) float32.

    Per example: a trapezoidal pulse train at f_sw (log-uniform in `f_sw_hz`) with duty cycle
    `duty` and rise/fall time `rise` (fractions of the period), its switching frequency wobbled by
    a fraction `jitter` at the 120 Hz DC-bus ripple. It is summed from its Fourier series with
    only the harmonics whose whole FM band lies below 0.45 fs, so nothing aliases. Its RMS over
    the window is 10**(level/20) * reference_rms, the level uniform in `level_db`.
    """
    fs, n = _timebase(cfg)
    ref = _reference(reference_rms)
    _check_range("f_sw_hz", f_sw_hz, low=1e-9)
    _check_range("level_db", level_db)
    _check_range("duty", duty, low=1e-6, high=1 - 1e-6)
    _check_range("rise", rise, low=0.0, high=0.5)
    _check_range("jitter", jitter, low=0.0, high=0.5)
    if _highest_order(f_sw_hz[1], jitter[1], fs) < 1:
        raise ValueError(
            f"`f_sw_hz[1] * (1 + jitter[1]) + {_RIPPLE_HZ} < {BAND_EDGE} * sample_rate` must hold "
            f"(a fundamental below the band edge), but got {f_sw_hz=}, {jitter=}, sample_rate={fs}"
        )
    t = _times(fs, n)
    out = np.zeros((len(ref), n))
    for i in range(len(ref)):
        f_sw, level = _log_uniform(rng, f_sw_hz), _db(rng.uniform(*level_db))
        d, r, depth = rng.uniform(*duty), rng.uniform(*rise), rng.uniform(*jitter)
        phase = _jittered_phase(t, f_sw, depth, rng.uniform(0, 1), rng.uniform(0, 2 * math.pi))
        orders = np.arange(1, _highest_order(f_sw, depth, fs) + 1)
        x = _trapezoid_coefficients(orders, d, r) @ np.cos(2 * math.pi * np.outer(orders, phase))  # (N,)@(N,T)
        out[i] = level * ref[i] * x / np.sqrt(np.mean(x**2))
    return torch.from_numpy(out).float()


# ---------------------------------------------------------------------------------------------
# 3. Multipath power-line channel
# ---------------------------------------------------------------------------------------------


def zimmermann_dostert(
    f: np.ndarray | torch.Tensor,
    gains: np.ndarray | Sequence[float],
    lengths_m: np.ndarray | Sequence[float],
    *,
    a0: float = 0.0,
    a1: float = _A1,
    k: float = _K,
    v_p: float = _V_P,
) -> np.ndarray:
    """The multipath model: (F,) frequencies (Hz), (P,) path gains and lengths (m) -> (F,) complex.

    H(f) = sum_i g_i exp(-(a0 + a1 f^k) d_i) exp(-j 2 pi f d_i / v_p), a0 in 1/m, a1 in s^k/m.
    """
    f = np.asarray(f.detach().cpu().numpy() if isinstance(f, torch.Tensor) else f, dtype=np.float64)
    g, d = np.asarray(gains, dtype=np.float64), np.asarray(lengths_m, dtype=np.float64)
    if f.ndim != 1 or (f < 0).any():
        raise ValueError(f"`f` must be (F,) and >= 0, but got shape {f.shape}, min {f.min(initial=0.0)}")
    if g.ndim != 1 or g.shape != d.shape or (d < 0).any():
        raise ValueError(f"`gains` and `lengths_m >= 0` must be (P,) alike, but got {g.shape} and {d.shape}")
    if not (v_p > 0 and a0 >= 0 and a1 >= 0 and k > 0):
        raise ValueError(f"`v_p > 0, a0 >= 0, a1 >= 0, k > 0` must hold, but got {v_p=}, {a0=}, {a1=}, {k=}")
    loss = np.exp(-(a0 + a1 * f[:, None] ** k) * d[None, :])  # (F, P)
    delay = np.exp(-2j * math.pi * f[:, None] * d[None, :] / v_p)  # (F, P)
    return (loss * delay) @ g


def multipath_response(
    f: np.ndarray | torch.Tensor,
    rng: np.random.Generator,
    *,
    paths: tuple[int, int] = (2, 4),
    direct_m: tuple[float, float] = (10.0, 100.0),
    extra_m: tuple[float, float] = (300.0, 3000.0),
    reflection: tuple[float, float] = (0.2, 0.8),
) -> torch.Tensor:
    """One example's channel: (F,) frequencies (Hz) -> (F,) complex64 response, |H| <= 1.

    A direct path (gain 1, `direct_m` long) and `paths - 1` echoes, each `extra_m` longer, gain
    uniform in `reflection` with a random sign (open ends reflect +, low-impedance loads -), in
    the Zimmermann-Dostert model with a1 = 7.8e-10 s/m, k = 1, v_p = 1.5e8 m/s. An echo `dd`
    longer notches the response every v_p / dd (50-500 kHz for the default 300-3000 m: the
    effective lengths of the reflections and load resonances that notch the 3-500 kHz band, since
    literal in-building wire lengths of tens of metres would put the first notch in the MHz).
    Divided by sum_i |g_i|, so a passive channel never amplifies and one lossless path is 1.
    """
    _check_range("paths", paths, low=1)
    _check_range("direct_m", direct_m, low=0.0)
    _check_range("extra_m", extra_m, low=0.0)
    _check_range("reflection", reflection, low=0.0, high=1.0)
    p = int(rng.integers(paths[0], paths[1] + 1))
    direct = rng.uniform(*direct_m)
    lengths = np.concatenate([[direct], direct + rng.uniform(*extra_m, size=p - 1)])
    gains = np.concatenate([[1.0], rng.choice((-1.0, 1.0), size=p - 1) * rng.uniform(*reflection, size=p - 1)])
    h = zimmermann_dostert(f, gains, lengths) / np.abs(gains).sum()
    return torch.from_numpy(h).to(torch.complex64)


# ---------------------------------------------------------------------------------------------
# 4. Mains with harmonics
# ---------------------------------------------------------------------------------------------


def mains_amplitudes(
    orders: np.ndarray, decay: float | np.ndarray, even_ratio: float | np.ndarray
) -> np.ndarray:
    """The documented law, re the fundamental: n^-decay for odd n, even_ratio * n^-decay for even n.

    (N,) orders; decay and even_ratio scalars, or (B, 1) for one law per example -> (B, N).
    """
    return np.where(orders % 2 == 1, 1.0, even_ratio) * orders.astype(np.float64) ** -decay


def mains_harmonics(
    level_db: np.ndarray | torch.Tensor | Sequence[float],
    cfg: Timebase,
    rng: np.random.Generator,
    *,
    mains_hz: float = 60.0,
    max_order: int = 50,
    decay: tuple[float, float] = (1.0, 2.0),
    even_ratio: tuple[float, float] = (0.01, 0.1),
) -> torch.Tensor:
    """Mains and its harmonics: (B,) fundamental level (dB re full scale) -> (B, T) float32.

    Harmonic n (1..max_order) has amplitude 10**(level/20) * `mains_amplitudes(n, decay,
    even_ratio)` and a uniform random phase; `decay` and `even_ratio` are drawn per example.
    Harmonics at or above 0.45 fs are dropped (none at 800 kHz: the 50th is 3 kHz).
    """
    fs, n = _timebase(cfg)
    level = _per_example("level_db", level_db)
    _check_range("decay", decay, low=0.0)
    _check_range("even_ratio", even_ratio, low=0.0)
    if not (mains_hz > 0 and max_order >= 1):
        raise ValueError(f"`mains_hz > 0 and max_order >= 1` must hold, but got {mains_hz=}, {max_order=}")
    orders = np.arange(1, max_order + 1)
    orders = orders[orders * mains_hz < BAND_EDGE * fs]
    b = len(level)
    alpha, rho = rng.uniform(*decay, size=b), rng.uniform(*even_ratio, size=b)
    phase = rng.uniform(0, 2 * math.pi, size=(b, len(orders)))
    amp = _db(level)[:, None] * mains_amplitudes(orders, alpha[:, None], rho[:, None])  # (B, N)
    # All examples share the harmonic frequencies: a*sin(wt + p) = a cos p sin wt + a sin p cos wt.
    arg = 2 * math.pi * mains_hz * np.outer(orders, _times(fs, n))  # (N, T)
    x = (amp * np.cos(phase)) @ np.sin(arg) + (amp * np.sin(phase)) @ np.cos(arg)  # (B, N) @ (N, T)
    return torch.from_numpy(x).float()


# ---------------------------------------------------------------------------------------------
# 5. Simultaneous injection
# ---------------------------------------------------------------------------------------------


def mux_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Two waveforms injected at once: (..., T) and (..., T) -> (..., T).

    Their sum, rescaled per row so its peak |x| is the larger of the two inputs' peaks: the
    amplitude range of the single waveforms (and of the time-multiplexed pairs) is kept.
    """
    if a.shape != b.shape or a.ndim < 1:
        raise ValueError(
            f"`a` and `b` must have the same shape (..., T), but got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    s = a + b
    target = torch.maximum(a.abs().amax(dim=-1, keepdim=True), b.abs().amax(dim=-1, keepdim=True))
    peak = s.abs().amax(dim=-1, keepdim=True)
    return torch.where(peak > 0, s * target / peak.clamp_min(torch.finfo(s.dtype).tiny), torch.zeros_like(s))


def sum_pair_names(waveforms: Sequence[str]) -> tuple[str, ...]:
    """Class names of the simultaneous pairs, "A+B" for each unordered pair (order is irrelevant)."""
    return tuple(f"{x}+{y}" for x, y in itertools.combinations(waveforms, 2))
