"""nsde.data.snr: waveforms recovered exactly, noise at the asked SNR, monotone damage, cache, recordings."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import nsde.data.snr as snr_mod
from nsde.data import SNR_LEVELS_DB, DataConfig, SynthConfig, prepare, snr_spectrograms, spectrogram, split_waveforms
from nsde.data.synthetic import LOCATIONS, clean_waveform, synthesize
from nsde.data.dataset import write_folder_atomically

# 96 short examples: two synthesis batches (_BATCH = 64), a cheap STFT.
FAST = DataConfig(examples_per_class=6, image_size=16, synth=SynthConfig(samples=4096), n_fft=512, hop=128)
# The realism options on, and simultaneous pairs: 10 classes, 120 examples in two batches.
FAST_REALISTIC = dataclasses.replace(
    FAST, examples_per_class=12, synth=SynthConfig(samples=4096, realism=True, mux="sum"), class_names=None
)


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    return prepare(dataclasses.replace(FAST, cache_dir=str(tmp_path_factory.mktemp("cache"))), progress=False)


@pytest.fixture(scope="module")
def fast_realistic(tmp_path_factory):
    cfg = dataclasses.replace(FAST_REALISTIC, cache_dir=str(tmp_path_factory.mktemp("cache")))
    return prepare(cfg, progress=False)


def _clean(data, split: str) -> np.ndarray:
    return np.asarray(data.x[data.indices(split)], dtype=np.float32)


@pytest.mark.parametrize("name, cfg", [("fast", FAST), ("fast_realistic", FAST_REALISTIC)])
def test_resynthesised_waveforms_give_the_cached_spectrograms(name, cfg, request):
    data = request.getfixturevalue(name)
    for split in ("train", "val"):  # train spans both batches
        waves, power = split_waveforms(data, split)
        idx = data.indices(split)
        assert waves.shape == (len(idx), cfg.synth.samples) and waves.dtype == np.float32
        assert power.shape == (len(idx),) and (power > 0).all()
        images = spectrogram(np.array(waves), cfg.stft(cfg.synth.sample_rate)).numpy()
        assert np.array_equal(images.astype(np.float16), np.asarray(data.x[idx])), split


def test_reference_power_is_the_signal_at_the_sensor_before_noise():
    labels, locations = np.array([0, 1, 2, 3, 5, 9]), np.zeros(6, dtype=int)
    cfg = SynthConfig(samples=4096)
    plain = synthesize(labels, locations, cfg, np.random.default_rng(3))
    waves, power = synthesize(labels, locations, cfg, np.random.default_rng(3), return_signal_power=True)
    assert torch.equal(plain, waves)  # the option changes neither the waveforms nor the RNG's use
    # At the injection point the channel adds 25-40 dB below the signal and -70 dB FS mains,
    # so the recorded power is the signal's within 0.5 %; far away the noise dominates it.
    assert torch.allclose(waves.pow(2).mean(dim=1).float(), power, rtol=5e-3)
    far, far_power = synthesize(labels, np.full(6, 5), cfg, np.random.default_rng(3), return_signal_power=True)
    assert (far.pow(2).mean(dim=1).float() > 1.5 * far_power).all()
    assert torch.allclose(far_power, power * LOCATIONS[5].gain**2, rtol=0.5)  # attenuated by ~gain^2 (low-pass aside)


@pytest.mark.parametrize("snr_db", [20.0, 0.0, -10.0])
def test_added_noise_has_the_asked_power_and_is_white(fast, snr_db):
    waves, power = split_waveforms(fast, "val")
    idx = fast.indices("val")
    noise = snr_mod.add_white_noise(waves, power, snr_db, seed=FAST.seed, index=idx) - waves  # (N, T)
    ratio = noise.astype(np.float64).var(axis=1) / power / 10 ** (-snr_db / 10)
    t = waves.shape[1]
    assert np.abs(ratio - 1).max() < 5 * np.sqrt(2 / t)  # 5 sigma of a variance estimate from T samples
    lag1 = (noise[:, 1:] * noise[:, :-1]).mean(axis=1) / noise.var(axis=1)
    assert np.abs(lag1).max() < 5 / np.sqrt(t)  # white: no correlation between neighbours
    # Seeded per (seed, example index, snr): a row does not depend on which rows are asked for.
    alone = snr_mod.add_white_noise(waves[3:4], power[3:4], snr_db, seed=FAST.seed, index=idx[3:4])
    assert np.array_equal(alone[0] - waves[3], noise[3])


def test_damage_grows_as_the_snr_falls(fast):
    clean = _clean(fast, "val")
    change = [float(np.abs(snr_spectrograms(fast, "val", s) - clean).mean()) for s in SNR_LEVELS_DB]
    assert all(a < b for a, b in zip(change, change[1:])), dict(zip(SNR_LEVELS_DB, change))
    assert change[0] > 0 and change[-1] > 3 * change[0]
    images = snr_spectrograms(fast, "val", -10.0)
    assert images.shape == clean.shape and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0


def test_second_call_loads_the_cache_without_resynthesising(fast, monkeypatch):
    first = snr_spectrograms(fast, "test", 5.0)

    def fail(*args, **kwargs):
        raise AssertionError("re-synthesised")

    monkeypatch.setattr(snr_mod, "_synthesise_batch", fail)
    assert np.array_equal(snr_spectrograms(fast, "test", 5.0), first)
    snr_spectrograms(fast, "test", 7.5)  # a new level reuses the split's cached waveforms
    shutil.rmtree(fast.path / "snr" / "train_waveforms", ignore_errors=True)
    with pytest.raises(AssertionError, match="re-synthesised"):  # what is not cached is built: the patch works
        split_waveforms(fast, "train")
    leftovers = [p.name for p in (fast.path / "snr").iterdir() if p.name.startswith(".tmp")]
    assert leftovers == []
    # -0.0 and 0.0 are one level: one seed, one file.
    assert np.array_equal(snr_spectrograms(fast, "val", -0.0), snr_spectrograms(fast, "val", 0))


def test_a_losing_concurrent_writer_keeps_the_winners_files(fast, tmp_path):
    folder = tmp_path / "split_waveforms"
    write_folder_atomically(folder, {"a.npy": np.ones(3)}, {"sample_rate": 1.0})
    write_folder_atomically(folder, {"a.npy": np.zeros(3)}, {"sample_rate": 1.0})  # the loser
    assert np.load(folder / "a.npy").tolist() == [1.0, 1.0, 1.0]
    snr_mod._save_atomically(tmp_path / "x.npy", np.arange(4))
    snr_mod._save_atomically(tmp_path / "x.npy", np.arange(4))  # replaces whole, never torn
    assert np.load(tmp_path / "x.npy").tolist() == [0, 1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split_waveforms", "x.npy"]


@pytest.mark.parametrize("snr_db", [float("nan"), float("inf"), "10", True, None])
def test_bad_snr_is_rejected(fast, snr_db):
    with pytest.raises(ValueError, match=r"`snr_db` must be a finite number"):
        snr_spectrograms(fast, "val", snr_db)


def test_bad_split_is_rejected(fast):
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        snr_spectrograms(fast, "dev", 0.0)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        split_waveforms(fast, "dev")


def _write_recordings(folder: Path) -> np.ndarray:
    """Two classes x 6 rows of 4096 samples (sine and square at several fundamentals)."""
    synth = SynthConfig(samples=4096)
    kinds = ("sine", "square")
    waves = np.stack([0.5 * clean_waveform(k, 3_000.0 * (i + 1), synth).numpy() for k in kinds for i in range(6)])
    np.savez(folder / "run1.npz", waveforms=waves, sample_rate=800_000.0, labels=np.repeat([0, 1], 6))
    return waves


def test_recordings_are_reread_and_measured_against_their_own_power(tmp_path, monkeypatch):
    folder = tmp_path / "recordings"
    folder.mkdir()
    waves = _write_recordings(folder)
    cfg = DataConfig(
        source="recordings", path=str(folder), class_names=("sine", "square"), image_size=16, n_fft=512, hop=128,
        cache_dir=str(tmp_path / "cache"),
    )
    data = prepare(cfg, progress=False)
    idx = data.indices("test")
    got, power = split_waveforms(data, "test")
    assert np.array_equal(got, waves[idx])
    assert np.allclose(power, (waves[idx].astype(np.float64) ** 2).mean(axis=1))
    clean = _clean(data, "test")
    change = [float(np.abs(snr_spectrograms(data, "test", s) - clean).mean()) for s in (30.0, 10.0, -10.0)]
    assert change[0] < change[1] < change[2]
    ratio = (snr_mod.add_white_noise(got, power, 0.0, seed=0, index=idx) - got).var(axis=1) / power
    assert np.abs(ratio - 1).max() < 5 * np.sqrt(2 / got.shape[1])
    monkeypatch.setattr(snr_mod, "_read_recordings", lambda cfg: pytest.fail("re-read the recordings"))
    snr_spectrograms(data, "test", 10.0)  # cached
    snr_spectrograms(data, "test", 0.0)  # a new level: the split's waveforms are cached


def test_concurrent_fill_of_one_snr_cache_is_safe(tmp_path):
    cfg = dataclasses.replace(FAST, examples_per_class=3, cache_dir=str(tmp_path))
    data = prepare(cfg, progress=False)
    code = (
        "import sys, numpy as np\n"
        "from nsde.data import load, snr_spectrograms\n"
        "x = snr_spectrograms(load(sys.argv[1]), 'val', -5.0)\n"
        "print(float(x.astype(np.float64).sum()))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(data.path)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs) and len(set(outs)) == 1, outs
    assert float(outs[0]) == pytest.approx(float(snr_spectrograms(data, "val", -5.0).astype(np.float64).sum()))
    entries = sorted(p.name for p in (data.path / "snr").iterdir())
    assert entries == ["val_snr-5.0dB.npy", "val_waveforms"], entries  # no torn or leftover copies
