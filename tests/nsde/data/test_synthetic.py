"""nsde.data.synthetic options: realism (a side stream, per-location effects, mains to the 50th) and mux="sum"."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from nsde.data import (
    CLASS_NAMES,
    LOCATIONS,
    REALISM,
    SpectrogramConfig,
    SynthConfig,
    row_frequencies,
    spectrogram,
    synthesize,
    synthetic_class_names,
)
from nsde.data.synthetic import _side_stream

SHORT = SynthConfig(samples=4096)
INJECTION, MAIN_POWER = 0, len(LOCATIONS) - 1


def test_realism_table_keeps_the_injection_point_clean_and_main_power_worst():
    assert len(REALISM) == len(LOCATIONS)
    clean, worst = REALISM[INJECTION], REALISM[MAIN_POWER]
    assert clean.impulsive_sources == (0, 0) and clean.smps == (0, 0) and clean.paths is None
    for r in REALISM[1:]:
        assert r.paths is not None
        assert worst.impulsive_sources[1] >= r.impulsive_sources[1] and worst.impulsive_db[1] >= r.impulsive_db[1]
        assert worst.smps[1] >= r.smps[1] and worst.smps_db[1] >= r.smps_db[1] and worst.paths[1] >= r.paths[1]


def test_side_stream_depends_on_the_state_and_leaves_it_alone():
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    a = _side_stream(rng).random(4)
    assert rng.bit_generator.state == state  # rng not advanced
    assert np.array_equal(a, _side_stream(np.random.default_rng(0)).random(4))  # same state, same stream
    assert not np.array_equal(a, np.random.default_rng(0).random(4))  # not rng's own numbers
    rng.random()
    assert not np.array_equal(a, _side_stream(rng).random(4))  # a later call on one rng: other effects


@pytest.mark.parametrize("events", [None, np.array([0, 0, 1, 1, 2, 2])])
def test_realism_leaves_the_base_draws_and_the_clean_injection_point_alone(events):
    labels = np.array([0, 0, 5, 5, 9, 9])
    locations = np.array([INJECTION, MAIN_POWER] * 3)
    rng_off, rng_on = np.random.default_rng(7), np.random.default_rng(7)
    off, p_off = synthesize(labels, locations, SHORT, rng_off, events=events, return_signal_power=True)
    real = dataclasses.replace(SHORT, realism=True)
    on, p_on = synthesize(labels, locations, real, rng_on, events=events, return_signal_power=True)
    assert rng_on.bit_generator.state == rng_off.bit_generator.state  # rng consumed exactly alike
    at_injection = torch.from_numpy(locations == INJECTION)
    # The injection point has no multipath, impulses or combs: only its -70 dB FS mains changes
    # (to the 50th harmonic), so the same base draws give the same waveform within 1e-3.
    assert torch.allclose(p_on[at_injection], p_off[at_injection], rtol=1e-6)
    assert (on[at_injection] - off[at_injection]).abs().max() < 1e-3 < off[at_injection].abs().max() * 1e-2
    # Far away the power is the signal's after the passive multipath (|H| <= 1), before any noise
    # or interference: at most the realism-off power, and not equal to it.
    far = ~at_injection
    assert (p_on[far] <= p_off[far] * (1 + 1e-5)).all() and not torch.allclose(p_on[far], p_off[far])
    assert (on[far].pow(2).mean(dim=1) > 2 * p_on[far]).all()  # noise, impulses and combs on top
    again = synthesize(labels, locations, real, np.random.default_rng(7), events=events)
    assert torch.equal(again, on)


def _amplitude_at(x: torch.Tensor, freqs: np.ndarray, fs: float) -> np.ndarray:
    """(T,) waveform -> spectrum magnitude at `freqs`, which must fall on bins (no window: no leakage)."""
    n = x.shape[-1]
    bins = np.asarray(freqs) * n / fs
    assert np.allclose(bins, np.rint(bins))
    return np.abs(np.fft.rfft(x.double().numpy()))[np.rint(bins).astype(int)]


def test_realism_mains_reaches_the_50th_harmonic():
    # 40,000 samples are exactly 3 mains cycles: every 60 Hz harmonic falls on a bin. A signal
    # 180 dB below full scale takes the noise, impulses and combs (all relative to it) with it,
    # so the recording at main_power is its -3 dB FS mains.
    quiet = SynthConfig(samples=40_000, amplitude_range=(1e-9, 1e-9))
    labels, locations = np.zeros(2, dtype=int), np.full(2, MAIN_POWER)
    off = synthesize(labels, locations, quiet, np.random.default_rng(1))
    on = synthesize(labels, locations, dataclasses.replace(quiet, realism=True), np.random.default_rng(1))
    fs = quiet.sample_rate
    low, high = 60.0 * np.arange(1, 16, 2), 60.0 * np.arange(17, 50, 2)
    for row in range(2):
        fundamental = _amplitude_at(off[row], [60.0], fs)[0]
        assert _amplitude_at(on[row], [60.0], fs)[0] == pytest.approx(fundamental, rel=1e-3)  # one level
        assert (_amplitude_at(on[row], low, fs) > 1e-3 * fundamental).all()  # both have the 1st-15th
        assert (_amplitude_at(off[row], high, fs) < 1e-7 * fundamental).all()  # realism off stops at the 15th
        assert (_amplitude_at(on[row], high, fs) > 2e-4 * fundamental).all()  # on: n^-decay, decay <= 2


# ----------------------------------------------------------------- mux


def test_mux_class_names():
    assert synthetic_class_names() == synthetic_class_names("time") == CLASS_NAMES
    names = synthetic_class_names("sum")
    assert len(names) == 10 and len(set(names)) == 10 and names[:4] == CLASS_NAMES[:4]
    assert all("+" in name for name in names[4:])
    with pytest.raises(ValueError, match=r"unknown mux 'mix'; known muxes: \['time', 'sum'\]"):
        SynthConfig(mux="mix")
    with pytest.raises(ValueError, match="`realism` must be a bool"):
        SynthConfig(realism=1)
    with pytest.raises(ValueError, match=r"class indices in \[0, 10\) under mux='sum'.*\[3, 10\]"):
        synthesize(np.array([3, 10]), np.zeros(2, dtype=int), SynthConfig(samples=2048, mux="sum"),
                   np.random.default_rng(0))  # fmt: skip


def _level_db(img: torch.Tensor, cfg: SpectrogramConfig, freq: float, cols: slice) -> float:
    """Level (dB re full scale) at `freq` over the columns `cols`: the loudest of the 3 rows around it."""
    row = int(np.argmin(np.abs(np.log(row_frequencies(cfg)) - np.log(freq))))
    return float(img[0, 0, max(row - 1, 0) : row + 2, cols].mean(dim=-1).max()) * cfg.db_range - cfg.db_range


def test_sum_mux_injects_both_waveforms_for_the_whole_window():
    seed, synth = 1, SynthConfig()
    # The fundamentals are `_source`'s first draws: log-uniform, (B, 2), one per waveform of a pair.
    f_sine, f_square = np.exp(np.random.default_rng(seed).uniform(*np.log(synth.f0_range), size=(1, 2)))[0]
    for n in (1, 3, 5, 7):  # the sine's row is far from every square harmonic we look at
        assert abs(np.log(f_sine / (n * f_square))) > 0.3
    cfg = SpectrogramConfig(image_size=128)
    at_injection = np.zeros(1, dtype=int)
    timed = synthesize(np.array([CLASS_NAMES.index("sine>square")]), at_injection, synth, np.random.default_rng(seed))
    sum_label = synthetic_class_names("sum").index("sine+square")
    summed = synthesize(
        np.array([sum_label]), at_injection, dataclasses.replace(synth, mux="sum"), np.random.default_rng(seed)
    )
    timed, summed = spectrogram(timed, cfg), spectrogram(summed, cfg)
    early, late = slice(0, 12), slice(-12, None)  # the first and last ~10 % of the window
    loud, quiet = -30.0, -50.0
    for freq in (f_sine, f_square, 3 * f_square):
        a, b = _level_db(summed, cfg, freq, early), _level_db(summed, cfg, freq, late)
        assert a > loud and b > loud and abs(a - b) < 1.0, (freq, a, b)  # on for the whole window
    # The time-multiplexed pair of the same draws switches: sine first, square after.
    assert _level_db(timed, cfg, f_sine, early) > loud > quiet > _level_db(timed, cfg, f_sine, late)
    assert _level_db(timed, cfg, f_square, late) > loud > quiet > _level_db(timed, cfg, f_square, early)
