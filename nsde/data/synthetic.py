"""A seeded stand-in for the ORNL "harmonic signals" data set: waveforms through a building.

Known waveforms are injected into a building's wiring and re-collected by sensors at six
locations through its power system. This module synthesises that in the time domain at
800 kHz: the source waveform (`CLASS_NAMES`), then the channel of one sensor location
(`LOCATIONS`): attenuation, the sensor's frequency response, 60 Hz mains with harmonics,
switching transients, narrow-band interferers and coloured broadband noise at a SNR
drawn from the location's range. Everything is documented in docs/data.md.

Classes (16, `SynthConfig.mux="time"`): the four pure waveforms, and the 12 ordered
time-multiplexed pairs "A>B" (waveform A, then a switch at a random time in the middle third
of the window, then waveform B, each with its own fundamental). With `mux="sum"` (10 classes)
the pairs are the 6 unordered simultaneous injections "A+B" (`interference.mux_sum`).

`SynthConfig.realism=True` adds, per location (`REALISM`, every number an assumption), the
effects of `nsde.data.interference`: the multipath channel on the injected signal,
mains-synchronous impulsive noise, switch-mode supply combs, and mains harmonics to the 50th
in place of the 15th. They draw from a side stream of the caller's generator, so the base
recipe's draws, and with them everything the base recipe makes, are those of realism off.

Waveforms are generated from their exact phase functions at 8x the sample rate and
band-limited to 0.45 fs in the frequency domain before decimation (an anti-aliasing
filter, as a data-acquisition front end has), so their harmonic series are the real ones:
odd 1/n for the 50 % square, all but every 4th for the 75/25 square, odd 1/n^2 for the
triangle.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass

import numpy as np
import torch

from nsde.data.interference import (
    impulsive_noise,
    mains_harmonics,
    multipath_response,
    mux_sum,
    smps_comb,
    sum_pair_names,
)
from nsde.rules import Rule, check_fields, ruled

__all__ = [
    "WAVEFORMS",
    "CLASS_NAMES",
    "MUXES",
    "MUX_RULE",
    "synthetic_class_names",
    "Location",
    "LOCATIONS",
    "Realism",
    "REALISM",
    "SynthConfig",
    "waveform",
    "clean_waveform",
    "synthesize",
]

WAVEFORMS = ("sine", "square", "square_75", "triangle")
CLASS_NAMES: tuple[str, ...] = WAVEFORMS + tuple(f"{a}>{b}" for a, b in itertools.permutations(WAVEFORMS, 2))
# How a pair of waveforms is injected, and the separator of its class names.
MUXES: dict[str, str] = {"time": ">", "sum": "+"}
_CLASSES_OF_MUX: dict[str, tuple[str, ...]] = {"time": CLASS_NAMES, "sum": WAVEFORMS + sum_pair_names(WAVEFORMS)}
OVERSAMPLE = 8
_REALISM_STREAM = 0x7265616C  # "real" in ASCII: sets the realism side stream apart from other seeds of rng's state


MUX_RULE = Rule(str, choices=tuple(MUXES), what="mux", plural="muxes", doc="how a pair of waveforms is injected")


def synthetic_class_names(mux: str = "time") -> tuple[str, ...]:
    """The synthetic classes under `mux`: "time" the 16 of CLASS_NAMES, "sum" the 4 waveforms and 6 "A+B"."""
    MUX_RULE.check(mux, "mux")
    return _CLASSES_OF_MUX[mux]


@dataclass(frozen=True)
class Location:
    """One sensor location: its channel, as ranges that each example draws from."""

    name: str
    gain: float  # attenuation of the injected signal
    lowpass_hz: float | None  # sensor / wiring bandwidth (2nd-order magnitude response)
    tilt: float  # spectral tilt exponent of the sensor (Rogowski coils rise with f)
    snr_db: tuple[float, float]  # signal / broadband-noise power
    noise_colour: tuple[float, float]  # noise power spectrum ~ f^-beta
    mains_db: float  # 60 Hz mains amplitude, dB re full scale
    transients: float  # mean number of switching transients per example
    interferers: float  # mean number of narrow-band interferers per example


LOCATIONS: tuple[Location, ...] = (
    Location("signal_injection", 1.0, None, 0.0, (25.0, 40.0), (0.0, 0.0), -70.0, 0.0, 0.0),
    Location("outlet_strip", 0.5, 200_000.0, 0.0, (5.0, 20.0), (0.0, 1.0), -20.0, 1.0, 0.5),
    Location("panel", 0.3, 120_000.0, 0.0, (0.0, 15.0), (0.5, 1.0), -12.0, 1.5, 1.0),
    Location("transformer_ct", 0.15, 60_000.0, 0.0, (-5.0, 10.0), (0.5, 1.5), -6.0, 2.0, 1.0),
    Location("transformer_rogowski", 0.15, 250_000.0, 0.5, (-5.0, 10.0), (0.5, 1.5), -12.0, 2.0, 1.5),
    Location("main_power", 0.08, 40_000.0, 0.0, (-10.0, 5.0), (1.0, 2.0), -3.0, 3.0, 2.0),
)


@dataclass(frozen=True)
class Realism:
    """One location's realistic interference (`SynthConfig.realism`), as ranges each example draws from.

    Every number in `REALISM` is an ASSUMPTION (docs/data.md, "Realism options"): nothing is
    fitted to the ORNL recordings. Levels are dB re the RMS of the signal at the sensor, as the
    base recipe's transients and interferers are.
    """

    impulsive_sources: tuple[int, int]  # rectifiers / dimmers heard (uniform integer)
    impulsive_db: tuple[float, float]  # peak of each source's bursts
    smps: tuple[int, int]  # switch-mode supply combs heard (uniform integer)
    smps_db: tuple[float, float]  # RMS of each comb
    paths: tuple[int, int] | None  # multipath: direct path + echoes (uniform integer); None: none


# Aligned with LOCATIONS: the injection point clean, more and louder interference towards the
# main power feed, where more loads share the wiring and the signal is weakest.
REALISM: tuple[Realism, ...] = (
    Realism((0, 0), (0.0, 0.0), (0, 0), (0.0, 0.0), None),  # signal_injection
    Realism((0, 1), (0.0, 10.0), (0, 1), (-20.0, -10.0), (2, 2)),  # outlet_strip
    Realism((0, 2), (0.0, 15.0), (0, 1), (-20.0, -5.0), (2, 3)),  # panel
    Realism((1, 2), (5.0, 15.0), (1, 1), (-15.0, -5.0), (2, 4)),  # transformer_ct
    Realism((1, 2), (5.0, 15.0), (1, 1), (-15.0, -5.0), (2, 4)),  # transformer_rogowski
    Realism((1, 3), (10.0, 20.0), (1, 2), (-10.0, 0.0), (3, 4)),  # main_power
)
assert len(REALISM) == len(LOCATIONS)


@dataclass(frozen=True)
class SynthConfig:
    """What one synthetic example is made of."""

    sample_rate: float = 800_000.0
    samples: int = ruled(32_768, Rule(int, 16))  # 40.96 ms at 800 kHz
    f0_range: tuple[float, float] = (500.0, 50_000.0)
    amplitude_range: tuple[float, float] = (0.3, 1.0)
    realism: bool = ruled(False, Rule(bool))  # add REALISM's interference and multipath per location
    mux: str = ruled("time", MUX_RULE)  # pairs of waveforms: "time" ordered "A>B" (16 classes), "sum" "A+B" (10)

    def __post_init__(self) -> None:
        check_fields(self)
        lo, hi = self.f0_range  # a rule across fields: the fundamentals lie well below Nyquist
        if not 0 < lo <= hi < self.sample_rate * 0.45:
            raise ValueError(f"`0 < f0_min <= f0_max < 0.45 * sample_rate` must hold, but got f0_range={self.f0_range}")


def waveform(kind: str, phase: torch.Tensor) -> torch.Tensor:
    """A periodic waveform of unit amplitude (zero mean) from its phase in [0, 1)."""
    if kind == "sine":
        return torch.sin(2 * math.pi * phase)
    if kind == "square":
        return torch.where(phase < 0.5, 1.0, -1.0)
    if kind == "square_75":
        return torch.where(phase < 0.75, 0.5, -1.5)  # 75 % high, mean removed
    if kind == "triangle":
        return 4.0 * (phase - 0.5).abs() - 1.0
    raise ValueError(f"unknown waveform {kind!r}; known waveforms: {list(WAVEFORMS)}")


def _render(kinds: np.ndarray, f0: np.ndarray, phase0: np.ndarray, t: torch.Tensor) -> torch.Tensor:
    """(B,) waveform indices, fundamentals and start phases -> (B, T) waveforms at times t."""
    # Phase in float64 (thousands of cycles per window), the waveform in float32.
    phase = torch.frac(torch.from_numpy(f0)[:, None] * t + torch.from_numpy(phase0)[:, None]).float()
    out = torch.empty_like(phase)
    for k in np.unique(kinds):
        rows = torch.from_numpy(np.flatnonzero(kinds == k))
        out[rows] = waveform(WAVEFORMS[k], phase[rows])
    return out


def _class_parts(labels: np.ndarray, mux: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per label (a class index under `mux`): first waveform, second waveform, whether it is a pair."""
    names = synthetic_class_names(mux)
    if labels.size and not (0 <= labels.min() and labels.max() < len(names)):
        raise ValueError(
            f"labels must be class indices in [0, {len(names)}) under mux={mux!r}, "
            f"but got values in [{labels.min()}, {labels.max()}]"
        )
    parts = [names[c].split(MUXES[mux]) for c in labels]
    first = np.array([WAVEFORMS.index(p[0]) for p in parts])
    second = np.array([WAVEFORMS.index(p[-1]) for p in parts])
    return first, second, labels >= len(WAVEFORMS)


def _source(labels: np.ndarray, cfg: SynthConfig, rng: np.random.Generator) -> torch.Tensor:
    """The injected waveforms at OVERSAMPLE x the sample rate: (B, T * OVERSAMPLE)."""
    b = len(labels)
    first, second, muxed = _class_parts(labels, cfg.mux)
    t = torch.arange(cfg.samples * OVERSAMPLE, dtype=torch.float64) / (cfg.sample_rate * OVERSAMPLE)
    lo, hi = np.log(cfg.f0_range)
    f0 = np.exp(rng.uniform(lo, hi, size=(b, 2)))
    phase0 = rng.uniform(0, 1, size=(b, 2))
    switch = rng.uniform(1 / 3, 2 / 3, size=b) * cfg.samples / cfg.sample_rate  # drawn for "sum" too: same draws
    amp = torch.from_numpy(rng.uniform(*cfg.amplitude_range, size=(b, 1))).float()
    x = _render(first, f0[:, 0], phase0[:, 0], t)
    if muxed.any():
        rows = np.flatnonzero(muxed)
        rows_t = torch.from_numpy(rows)
        then = _render(second[rows], f0[rows, 1], phase0[rows, 1], t)  # (M, T_os)
        if cfg.mux == "sum":
            x[rows_t] = mux_sum(x[rows_t], then)
        else:
            after = t[None, :] >= torch.from_numpy(switch[rows])[:, None]  # (M, T_os)
            x[rows_t] = torch.where(after, then, x[rows_t])
    return amp * x


def _band_limit_and_filter(
    x_os: torch.Tensor,
    locs: list[Location],
    cfg: SynthConfig,
    rows: np.ndarray | None = None,
    channel: torch.Tensor | None = None,
) -> torch.Tensor:
    """Anti-alias to 0.45 fs, decimate by OVERSAMPLE, apply each location's gain and response.

    `rows` (B,) picks the source row of each output row (one source heard at several
    locations); by default output row i is source row i. `channel` (B, T/2+1) complex: a
    further response per output row (the multipath channel), on top of the location's.
    """
    n = cfg.samples
    spec = torch.fft.rfft(x_os)[:, : n // 2 + 1] / OVERSAMPLE  # (E, T_os/2+1) -> (E, T/2+1)
    if rows is not None:
        spec = spec[torch.from_numpy(rows)]  # (E, T/2+1) -> (B, T/2+1)
    f = _frequencies(cfg)
    response = torch.stack([_response(loc, f) for loc in locs]) * (f < 0.45 * cfg.sample_rate)
    if channel is not None:
        response = response * channel
    return torch.fft.irfft(spec * response, n=n)


def _frequencies(cfg: SynthConfig) -> torch.Tensor:
    """(T/2+1,) rfft frequencies of a window, in Hz."""
    return torch.fft.rfftfreq(cfg.samples, d=1.0 / cfg.sample_rate)


def clean_waveform(kind: str, f0: float, cfg: SynthConfig, *, phase: float = 0.0) -> torch.Tensor:
    """One band-limited waveform of unit amplitude as injected (no channel): (T,) float32."""
    t = torch.arange(cfg.samples * OVERSAMPLE, dtype=torch.float64) / (cfg.sample_rate * OVERSAMPLE)
    x = _render(np.array([WAVEFORMS.index(kind)]), np.array([f0]), np.array([phase]), t)
    return _band_limit_and_filter(x, [LOCATIONS[0]], cfg)[0]


def _response(loc: Location, f: torch.Tensor) -> torch.Tensor:
    r = torch.full_like(f, loc.gain)
    if loc.lowpass_hz is not None:
        r = r / torch.sqrt(1.0 + (f / loc.lowpass_hz) ** 4)
    if loc.tilt:
        r = r * (f.clamp_min(1.0) / 50_000.0) ** loc.tilt
    return r


def _coloured_noise(b: int, n: int, beta: np.ndarray, fs: float, rng: np.random.Generator) -> torch.Tensor:
    """(B, T) noise of unit power with spectrum ~ f^-beta (per example)."""
    white = torch.from_numpy(rng.standard_normal((b, n)).astype(np.float32))
    f = torch.fft.rfftfreq(n, d=1.0 / fs).clamp_min(fs / n)
    shaped = torch.fft.irfft(torch.fft.rfft(white) * f[None, :] ** (-torch.from_numpy(beta)[:, None] / 2), n=n)
    return shaped / shaped.pow(2).mean(dim=1, keepdim=True).sqrt()


def _mains(b: int, cfg: SynthConfig, level: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """60 Hz mains with its odd harmonics up to the 15th (amplitude ~ n^-1.5)."""
    t = torch.arange(cfg.samples, dtype=torch.float64) / cfg.sample_rate
    out = torch.zeros(b, cfg.samples, dtype=torch.float64)
    for n in range(1, 16, 2):
        phase = torch.from_numpy(rng.uniform(0, 2 * math.pi, size=(b, 1)))
        out += n**-1.5 * torch.sin(2 * math.pi * 60.0 * n * t + phase)
    return (out * torch.from_numpy(10 ** (level / 20))[:, None]).float()


def _events(b: int, cfg: SynthConfig, rate: np.ndarray, scale: torch.Tensor, rng: np.random.Generator, kind: str):
    """Switching transients (damped ringing) or narrow-band interferers (slowly wobbling tones)."""
    t = torch.arange(cfg.samples, dtype=torch.float64) / cfg.sample_rate
    out = torch.zeros(b, cfg.samples, dtype=torch.float64)
    counts = rng.poisson(rate)
    for i in np.flatnonzero(counts):
        for _ in range(counts[i]):
            freq = math.exp(rng.uniform(math.log(10_000), math.log(350_000)))
            phase = rng.uniform(0, 2 * math.pi)
            if kind == "transient":
                start, tau = rng.uniform(0, t[-1]), rng.uniform(10e-6, 100e-6)
                dt = (t - start).clamp_min(0)
                env = torch.where(t >= start, torch.exp(-dt / tau), torch.zeros(()))
                out[i] += rng.uniform(0.5, 3.0) * env * torch.sin(2 * math.pi * freq * dt + phase)
            else:
                wobble = 0.002 * freq / 50.0 * torch.sin(2 * math.pi * 50.0 * t)  # 0.2 % FM at 50 Hz
                out[i] += 10 ** (rng.uniform(-20, 0) / 20) * torch.sin(2 * math.pi * freq * t + wobble + phase)
    return out.float() * scale


def synthesize(
    labels: np.ndarray,
    locations: np.ndarray,
    cfg: SynthConfig,
    rng: np.random.Generator,
    *,
    events: np.ndarray | None = None,
    return_signal_power: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """(B,) class indices and location indices -> (B, T) waveforms as the sensors record them.

    Args:
        labels: class indices under `cfg.mux` (`synthetic_class_names(cfg.mux)`).
        events: (B,) event ids. Rows with the same id share one source waveform (its
            parameters drawn once, in order of first appearance), each heard through its
            own location's channel and noise; their labels must agree. None: every row is
            an event of its own (the RNG is consumed exactly as without the argument).
        return_signal_power: also return the (B,) power of the injected signal as it
            arrives at the sensor (after gain, response and, with realism, multipath;
            before any noise or interference). It does not change the waveforms or the
            RNG's consumption.

    With `cfg.realism`, REALISM's effects are drawn from a side stream seeded by `rng`'s
    state at the call (`_side_stream`): `rng` is consumed exactly as with realism off.

    Returns:
        (B, T) waveforms (float64: the coloured noise is shaped in float64), or
        (waveforms, (B,) float32 signal powers).
    """
    labels, locations = np.asarray(labels), np.asarray(locations)
    locs = [LOCATIONS[i] for i in locations]
    side = _side_stream(rng) if cfg.realism else None
    channel = None if side is None else _multipath(locations, cfg, side)  # (B, T/2+1)
    if events is None:
        x = _band_limit_and_filter(_source(labels, cfg, rng), locs, cfg, channel=channel)  # (B, T)
    else:
        first, rows = _event_rows(labels, np.asarray(events))
        source = _source(labels[first], cfg, rng)
        x = _band_limit_and_filter(source, locs, cfg, rows, channel=channel)  # (E, T_os) -> (B, T)
    power = x.pow(2).mean(dim=1, keepdim=True)
    x = _add_channel(x, power, locs, cfg, rng)
    if side is not None:
        x = x + _interference(locations, power.sqrt(), cfg, side)
    return (x, power[:, 0]) if return_signal_power else x


def _event_rows(labels: np.ndarray, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B,) labels and event ids -> each event's first row (E,) and each row's event (B,).

    Events are numbered in order of first appearance.
    """
    if events.shape != labels.shape:
        raise ValueError(f"`events` must have the shape of `labels` {labels.shape}, but got {events.shape}")
    _, first, inverse = np.unique(events, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # np.unique sorts by id; draw in order of appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    rows = rank[inverse.reshape(-1)]
    if not np.array_equal(labels[first[order]][rows], labels):
        raise ValueError("rows of one event must have one label, but `events` joins rows of different labels")
    return first[order], rows


def _add_channel(
    x: torch.Tensor, power: torch.Tensor, locs: list[Location], cfg: SynthConfig, rng: np.random.Generator
) -> torch.Tensor:
    """Broadband noise at the location's SNR, mains, transients and interferers: (B, T) -> (B, T).

    With realism the 15-harmonic mains is drawn (the draws that follow stay those of realism
    off) but left out: `_interference` adds mains to the 50th instead.
    """
    b = len(locs)
    rms = power.sqrt()
    snr = np.array([rng.uniform(*loc.snr_db) for loc in locs])
    beta = np.array([rng.uniform(*loc.noise_colour) for loc in locs])
    noise = _coloured_noise(b, cfg.samples, beta, cfg.sample_rate, rng)
    x = x + noise * (power / torch.from_numpy(10 ** (snr / 10)).float()[:, None]).sqrt()
    mains = _mains(b, cfg, np.array([loc.mains_db for loc in locs]), rng)
    if not cfg.realism:
        x = x + mains
    x = x + _events(b, cfg, np.array([loc.transients for loc in locs]), rms, rng, "transient")
    x = x + _events(b, cfg, np.array([loc.interferers for loc in locs]), rms, rng, "interferer")
    return x


# --------------------------------------------------------------------------- realism


def _side_stream(rng: np.random.Generator) -> np.random.Generator:
    """A generator seeded by `rng`'s current state, which it does not advance.

    The realism effects draw from it, so `rng` gives the base recipe the same numbers with
    realism on or off; and two calls on one `rng` (whose state has moved) get other effects.
    """
    state = json.dumps(rng.bit_generator.state, sort_keys=True, default=lambda v: np.asarray(v).tolist())
    digest = hashlib.sha256(state.encode()).digest()
    entropy = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, len(digest), 4)]
    return np.random.default_rng([*entropy, _REALISM_STREAM])


def _multipath(locations: np.ndarray, cfg: SynthConfig, rng: np.random.Generator) -> torch.Tensor:
    """(B,) location indices -> (B, T/2+1) complex64 multipath responses (1 where REALISM has none)."""
    f = _frequencies(cfg)
    h = torch.ones(len(locations), len(f), dtype=torch.complex64)
    for i, loc in enumerate(locations):
        paths = REALISM[loc].paths
        if paths is not None:
            h[i] = multipath_response(f, rng, paths=paths)
    return h


def _interference(
    locations: np.ndarray, rms: torch.Tensor, cfg: SynthConfig, rng: np.random.Generator
) -> torch.Tensor:
    """(B,) location indices, (B, 1) signal RMS at the sensor -> (B, T) mains to the 50th, impulses, SMPS combs."""
    out = mains_harmonics(np.array([LOCATIONS[i].mains_db for i in locations]), cfg, rng).double()
    for loc in np.unique(locations):  # one location at a time: each has its own ranges
        spec, rows = REALISM[loc], torch.from_numpy(np.flatnonzero(locations == loc))
        if spec.impulsive_sources[1] > 0:
            level, sources = spec.impulsive_db, spec.impulsive_sources
            out[rows] += impulsive_noise(rms[rows], cfg, rng, level_db=level, sources=sources).double()
        if spec.smps[1] > 0:
            combs = torch.from_numpy(rng.integers(spec.smps[0], spec.smps[1] + 1, size=len(rows)))
            for k in range(int(combs.max())):  # the k-th comb of every row that has more than k
                heard = rows[combs > k]
                out[heard] += smps_comb(rms[heard], cfg, rng, level_db=spec.smps_db).double()
    return out
