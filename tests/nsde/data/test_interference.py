"""nsde.data.interference: known answers for the impulsive, SMPS, multipath, mains and mixing generators."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from nsde.data.interference import (
    impulsive_noise,
    mains_amplitudes,
    mains_harmonics,
    multipath_response,
    mux_sum,
    smps_comb,
    sum_pair_names,
    zimmermann_dostert,
)
from nsde.data.synthetic import SynthConfig

CFG = SynthConfig()  # 800 kHz, 32,768 samples (40.96 ms)
FS, N = CFG.sample_rate, CFG.samples


@dataclass(frozen=True)
class Timebase:
    sample_rate: float
    samples: int


def _one_source(seed: int, b: int = 1) -> np.ndarray:
    """(B, T) impulsive noise of one source at 0 dB re a unit reference."""
    x = impulsive_noise(np.ones(b), CFG, np.random.default_rng(seed), level_db=(0.0, 0.0), sources=(1, 1))
    return x.double().numpy()


def _bursts(x: np.ndarray, gap: int = 800) -> list[tuple[int, int]]:
    """(T,) -> [start, stop) sample ranges of the bursts wholly inside the window."""
    hot = np.flatnonzero(np.abs(x) > 0.05 * np.abs(x).max())
    groups = np.split(hot, np.flatnonzero(np.diff(hot) > gap) + 1)
    spans = [(g[0] - 100, g[-1] + 200) for g in groups]
    return [(a, b) for a, b in spans if a >= 0 and b <= len(x)]


def _energy_centroid(x: np.ndarray, span: tuple[int, int]) -> float:
    # For a signal band-limited below fs/2, the sampled energy centroid equals the continuous one,
    # so identical bursts give centroids that differ by exactly their time offsets.
    n = np.arange(*span)
    e = x[span[0] : span[1]] ** 2
    return float((n * e).sum() / e.sum())


# ---------------------------------------------------------------------------------------------
# Impulsive noise
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_impulsive_bursts_repeat_every_half_mains_cycle(seed):
    x = _one_source(seed)[0]
    spans = _bursts(x)
    assert 3 <= len(spans) <= 5  # 4-5 bursts in 40.96 ms, less any cut by the window's edges
    times = np.array([_energy_centroid(x, s) for s in spans])
    half_cycle = FS / 120.0  # 6666.67 samples = 8.33 ms
    np.testing.assert_allclose(np.diff(times), half_cycle, atol=0.05)  # within 1/20 of a sample


def test_impulsive_bursts_alternate_sign_each_half_cycle():
    # Three half cycles are exactly 20,000 samples at 800 kHz: the same burst shape, sign flipped.
    x = _one_source(5)[0]
    a, b = _bursts(x)[0]
    assert b + 20_000 <= N
    first, third = x[a:b], x[a + 20_000 : b + 20_000]
    assert np.corrcoef(first, third)[0, 1] < -0.999


def test_impulsive_peak_is_level_times_reference():
    ref = np.array([0.5, 1.0, 2.0, 0.0])
    x = impulsive_noise(ref, CFG, np.random.default_rng(0), level_db=(6.0, 6.0), sources=(1, 1))
    assert x.shape == (4, N) and x.dtype == torch.float32
    np.testing.assert_allclose(x.abs().amax(dim=1).numpy(), 10 ** (6 / 20) * ref, rtol=1e-6)
    as_tensor = torch.from_numpy(ref).float()[:, None]  # (B, 1), as `synthesize` holds its RMS
    again = impulsive_noise(as_tensor, CFG, np.random.default_rng(0), level_db=(6.0, 6.0), sources=(1, 1))
    torch.testing.assert_close(again, x)
    silent = impulsive_noise(ref, CFG, np.random.default_rng(0), sources=(0, 0))
    assert not silent.any()


def test_impulsive_noise_is_band_limited():
    x = _one_source(7)[0] * np.hanning(N)
    power = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(N, 1 / FS)
    assert power[f > 0.46 * FS].sum() < 1e-8 * power.sum()


# ---------------------------------------------------------------------------------------------
# Switch-mode power-supply comb
# ---------------------------------------------------------------------------------------------


def _smps(f_sw: float, *, duty=0.35, rise=0.02, jitter=0.0, ref=(1.0,), level=0.0, seed=0) -> np.ndarray:
    return smps_comb(
        np.array(ref), CFG, np.random.default_rng(seed), f_sw_hz=(f_sw, f_sw), level_db=(level, level),
        duty=(duty, duty), rise=(rise, rise), jitter=(jitter, jitter),
    ).double().numpy()  # fmt: skip


def _off_harmonic_fraction(x: np.ndarray, f_sw: float, halfwidth: int = 8) -> float:
    """Share of the Blackman-windowed power further than `halfwidth` bins from every k * f_sw."""
    power = np.abs(np.fft.rfft(x * np.blackman(len(x)))) ** 2
    bins = np.arange(len(power))
    near = np.zeros(len(power), dtype=bool)
    for centre in np.arange(f_sw, FS / 2, f_sw) * len(x) / FS:
        near |= np.abs(bins - centre) <= halfwidth
    return float(power[~near].sum() / power.sum())


def test_smps_comb_harmonics_at_the_trapezoid_levels():
    f_sw, duty, rise = 37_500.0, 0.35, 0.02  # exactly 1536 cycles in the window: harmonics on bins
    x = _smps(f_sw, duty=duty, rise=rise)[0]
    amp = 2 * np.abs(np.fft.rfft(x)) / N
    k = np.arange(1, 10)  # 9 x 37.5 kHz = 337.5 kHz < 0.45 fs = 360 kHz
    expected = np.abs(np.sinc(k * duty) * np.sinc(k * rise))
    np.testing.assert_allclose(amp[1536 * k] / amp[1536], expected / expected[0], rtol=1e-4)
    assert amp[1536 * 10] < 1e-6 * amp[1536]  # 375 kHz is above the band edge: dropped, not aliased
    on_bins = np.zeros_like(amp, dtype=bool)
    on_bins[1536 * k] = True
    assert (amp[~on_bins] ** 2).sum() < 1e-10 * (amp**2).sum()


def test_smps_comb_does_not_alias_where_a_sampled_square_would():
    f_sw = 23_456.7  # not on a bin
    comb = _smps(f_sw, duty=0.5, rise=0.0)[0]
    assert _off_harmonic_fraction(comb, f_sw) < 1e-6
    t = np.arange(N) / FS
    naive = np.sign(np.sin(2 * np.pi * f_sw * t))  # the same square wave, sampled without a filter
    assert _off_harmonic_fraction(naive, f_sw) > 1e-3


def test_smps_comb_jitter_spreads_the_lines_but_stays_in_band():
    f_sw = 20_000.0
    steady, wobbly = _smps(f_sw, jitter=0.0)[0], _smps(f_sw, jitter=0.01)[0]
    f = np.fft.rfftfreq(N, 1 / FS)
    for x, spread in ((steady, False), (wobbly, True)):
        power = np.abs(np.fft.rfft(x * np.blackman(N))) ** 2
        assert power[f > 0.46 * FS].sum() < 1e-10 * power.sum()
        core = power[np.abs(f - f_sw) <= 4 * FS / N].sum() / power[np.abs(f - f_sw) <= 1_000].sum()
        assert (core < 0.8) == spread  # +-1 % of 20 kHz = +-200 Hz = +-8 bins around the fundamental


def test_smps_comb_rms_is_level_times_reference():
    ref = np.array([0.5, 2.0, 0.0])
    x = _smps(50_000.0, ref=ref, level=-6.0, jitter=0.005)
    np.testing.assert_allclose(np.sqrt((x**2).mean(axis=1)), 10 ** (-6 / 20) * ref, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Multipath channel
# ---------------------------------------------------------------------------------------------

F_GRID = np.fft.rfftfreq(N, 1 / FS)


def test_single_lossless_path_is_flat():
    h = np.abs(zimmermann_dostert(F_GRID, [0.7], [150.0], a1=0.0))
    np.testing.assert_allclose(h, 0.7, rtol=1e-12)
    assert h.min() / h.max() == pytest.approx(1.0)


def test_two_equal_paths_notch_at_odd_multiples_of_half_the_inverse_delay():
    # 750 m longer at v_p = 1.5e8 m/s: 5 us later, so the echo cancels at 100, 300 kHz and adds at 0, 200 kHz.
    def h(f):
        return np.abs(zimmermann_dostert(np.asarray(f, dtype=float), [0.5, 0.5], [100.0, 850.0], a1=0.0))

    np.testing.assert_allclose(h([100e3, 300e3]), 0.0, atol=1e-9)
    np.testing.assert_allclose(h([0.0, 200e3, 400e3]), 1.0, rtol=1e-12)
    grid = h(F_GRID)
    assert grid.min() / grid.max() < 1e-3


def test_attenuation_grows_with_frequency():
    d, a1 = 500.0, 7.8e-10
    h = np.abs(zimmermann_dostert(F_GRID, [1.0], [d], a1=a1, k=1.0))
    np.testing.assert_allclose(h, np.exp(-a1 * F_GRID * d), rtol=1e-12)
    assert (np.diff(h) < 0).all()


def test_multipath_response_draws_notches_and_never_amplifies():
    rng = np.random.default_rng(0)
    draws = np.stack([np.abs(multipath_response(F_GRID, rng).numpy()) for _ in range(100)])  # (100, F)
    assert draws.max() <= 1 + 1e-6
    assert np.median(draws.min(axis=1) / draws.max(axis=1)) < 0.5
    low, high = (draws[:, F_GRID < 40e3] ** 2).mean(), (draws[:, F_GRID > 360e3] ** 2).mean()
    assert high < 0.9 * low  # the long echoes lose more at high frequency
    single = np.stack([np.abs(multipath_response(F_GRID, rng, paths=(1, 1)).numpy()) for _ in range(20)])
    assert (np.diff(single, axis=1) <= 0).all() and (single.min(axis=1) > 0.95).all()


# ---------------------------------------------------------------------------------------------
# Mains harmonics
# ---------------------------------------------------------------------------------------------


def test_mains_harmonics_at_the_documented_amplitudes():
    tb = Timebase(7_680.0, 7_680)  # one second: 60 Hz harmonic n falls exactly on bin 60 n
    level = np.array([-6.0, 0.0])
    x = mains_harmonics(level, tb, np.random.default_rng(0), decay=(1.5, 1.5), even_ratio=(0.05, 0.05))
    amp = 2 * np.abs(np.fft.rfft(x.double().numpy(), axis=1)) / tb.samples  # (2, 3841)
    n = np.arange(1, 51)
    expected = 10 ** (level[:, None] / 20) * mains_amplitudes(n, 1.5, 0.05)[None, :]
    np.testing.assert_allclose(amp[:, 60 * n], expected, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(expected[1, [0, 1, 2, 49]], [1.0, 0.05 * 2**-1.5, 3**-1.5, 0.05 * 50**-1.5])
    elsewhere = np.delete(amp, 60 * n, axis=1)
    assert elsewhere.max() < 1e-6  # nothing between the harmonics, nothing past the 50th


def test_mains_harmonics_on_the_default_timebase():
    x = mains_harmonics(np.array([-3.0, -20.0, -70.0]), CFG, np.random.default_rng(0))
    assert x.shape == (3, N) and x.dtype == torch.float32
    peaks = x.abs().amax(dim=1).numpy()
    assert peaks[0] > peaks[1] > peaks[2] > 0


# ---------------------------------------------------------------------------------------------
# Determinism, mixing and errors
# ---------------------------------------------------------------------------------------------

GENERATORS = {
    "impulsive": lambda rng: impulsive_noise(np.ones(3), CFG, rng),
    "smps": lambda rng: smps_comb(np.ones(3), CFG, rng),
    "mains": lambda rng: mains_harmonics(np.full(3, -10.0), CFG, rng),
    "multipath": lambda rng: multipath_response(F_GRID, rng),
}


@pytest.mark.parametrize("name", list(GENERATORS))
def test_same_seed_same_output_other_seed_other_output(name):
    make = GENERATORS[name]
    a, b, c = make(np.random.default_rng(3)), make(np.random.default_rng(3)), make(np.random.default_rng(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_mux_sum_keeps_the_larger_peak():
    t = torch.arange(1000, dtype=torch.float64) / 1000
    a = torch.stack([0.8 * torch.sin(2 * torch.pi * 5 * t), torch.sin(2 * torch.pi * 3 * t)])
    b = torch.stack([0.5 * torch.sign(torch.sin(2 * torch.pi * 7 * t)), -torch.sin(2 * torch.pi * 3 * t)])
    s = mux_sum(a, b)
    assert s[0].abs().max() == pytest.approx(0.8)
    ratio = (s[0] / (a[0] + b[0]))[(a[0] + b[0]).abs() > 1e-6]
    assert torch.allclose(ratio, ratio[0]) and 0 < ratio[0] < 1  # a rescaled sum
    assert not s[1].any()  # a and -a cancel: silence, not a division by zero
    with pytest.raises(ValueError, match="same shape"):
        mux_sum(a, b[:, :10])


def test_an_empty_batch_gives_an_empty_tensor():
    rng = np.random.default_rng(0)
    for x in (impulsive_noise([], CFG, rng), smps_comb([], CFG, rng), mains_harmonics([], CFG, rng)):
        assert x.shape == (0, N) and x.dtype == torch.float32


def test_sum_pair_names_are_the_unordered_pairs():
    assert sum_pair_names(("sine", "square", "triangle")) == ("sine+square", "sine+triangle", "square+triangle")
    assert len(sum_pair_names(("sine", "square", "square_75", "triangle"))) == 6


def test_errors_state_the_rule_and_the_value():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"sample_rate` must hold.*but got f_sw_hz=\(400000.0, 400000.0\)"):
        smps_comb(np.ones(1), CFG, rng, f_sw_hz=(400e3, 400e3))
    with pytest.raises(ValueError, match=r"level_db\[0\] <= level_db\[1\].*must hold, but got level_db=\(5.0, 0.0\)"):
        impulsive_noise(np.ones(1), CFG, rng, level_db=(5.0, 0.0))
    with pytest.raises(ValueError, match="reference_rms >= 0"):
        smps_comb(np.array([-1.0]), CFG, rng)
    with pytest.raises(ValueError, match=r"shape \(B,\) or \(B, 1\), but got shape \(2, 2\)"):
        mains_harmonics(np.zeros((2, 2)), CFG, rng)
    with pytest.raises(ValueError, match="must be \\(F,\\) and >= 0"):
        zimmermann_dostert(np.array([-1.0]), [1.0], [10.0])
