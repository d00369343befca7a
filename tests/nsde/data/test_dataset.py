"""nsde.data: the synthetic set's balance, splits, determinism, range, harmonics, cache and recordings."""

from __future__ import annotations

import dataclasses
import json
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import nsde.data.dataset as dataset_mod
from nsde.data import (
    CLASS_NAMES,
    LOCATIONS,
    PRESETS,
    DataConfig,
    SpectrogramConfig,
    data_config_from_dict,
    load,
    prepare,
    row_frequencies,
    synthetic_class_names,
)
from nsde.data.recordings import DataFormatError
from nsde.data.spectrogram import spectrogram
from nsde.data.synthetic import SynthConfig, clean_waveform, synthesize

TINY = PRESETS["tiny"]  # 12 examples per class, 32x32
# The realistic preset at the tiny preset's size.
REALISTIC_TINY = dataclasses.replace(PRESETS["realistic"], examples_per_class=12, image_size=32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return prepare(dataclasses.replace(TINY, cache_dir=str(tmp_path_factory.mktemp("cache"))), progress=False)


@pytest.fixture(scope="module")
def realistic_tiny(tmp_path_factory):
    cfg = dataclasses.replace(REALISTIC_TINY, cache_dir=str(tmp_path_factory.mktemp("cache")))
    return prepare(cfg, progress=False)


def test_sixteen_balanced_classes_and_stratified_splits(tiny):
    assert len(CLASS_NAMES) == 16 and len(set(CLASS_NAMES)) == 16
    assert np.bincount(tiny.y, minlength=16).tolist() == [12] * 16
    for name, per_class in (("train", 8), ("val", 2), ("test", 2)):  # round(0.7*12), round(0.15*12), rest
        idx = tiny.indices(name)
        assert np.bincount(tiny.y[idx], minlength=16).tolist() == [per_class] * 16
    assert sorted(np.concatenate([tiny.indices(s) for s in ("train", "val", "test")]).tolist()) == list(range(192))
    # Locations are recorded and balanced within each class (12 = 2 x 6 locations).
    for c in range(16):
        assert np.bincount(tiny.location[tiny.y == c], minlength=6).tolist() == [2] * 6


def test_values_shapes_and_split_tensors(tiny):
    assert tiny.x.shape == (192, 1, 32, 32) and tiny.x.dtype == np.float16
    assert float(tiny.x.min()) >= 0.0 and float(tiny.x.max()) <= 1.0
    train = tiny.split("train")
    assert train.x.dtype == torch.float32 and train.x.shape == (128, 1, 32, 32) and len(train) == 128
    assert float(train.x.std()) > 0.05  # not a constant image
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        tiny.indices("dev")


def test_same_seed_same_data_other_seed_other_data(tmp_path, tiny):
    again = prepare(dataclasses.replace(TINY, cache_dir=str(tmp_path)), progress=False)
    assert again.path != tiny.path.parent  # a different cache folder, built anew
    assert np.array_equal(np.asarray(again.x), np.asarray(tiny.x))
    assert np.array_equal(again.split_of, tiny.split_of)
    other = prepare(dataclasses.replace(TINY, cache_dir=str(tmp_path), seed=1), progress=False)
    assert not np.array_equal(np.asarray(other.x), np.asarray(tiny.x))


# The tiny preset as built before the grouping, location-shift and SNR options existed
# (same code path as the default preset): exact hashes of the labels, locations and split,
# and fingerprints of the images (random projections; any change in the RNG's consumption
# order moves them by whole units, a last-bit FFT difference on another CPU by ~1e-3).
TINY_HASHES = {
    "y": "c800053bcc15fa3bc5d7eefd95facc78fe6208fe699469de4ec998a574db2184",
    "location": "edbeadf57df0131c192aa7c517f9967ace686301cd66819274bd221e71ed8b6d",
    "split_of": "dadacb32b6a18ab982551195382c1f7ee61dbc66ceaf99dde97af768d2b280ce",
}
TINY_X_SUM = 105732.905
TINY_X_PROJECTIONS = {  # examples from each of the three synthesis batches
    0: 8.3177, 1: 9.027, 63: 8.8164, 64: 9.7456, 100: 7.9036, 127: 4.8363, 128: 5.8134, 191: 10.8482
}
TINY_CACHE_KEY = "2e6b07c7ec363cf5c56c3a56ddbefc6a95960a12ccd8674053bfa95fcd99d8ba"


def test_tiny_preset_unchanged_by_the_optional_features(tiny):
    for name, digest in TINY_HASHES.items():
        assert hashlib.sha256(np.ascontiguousarray(getattr(tiny, name)).tobytes()).hexdigest() == digest, name
    x = np.asarray(tiny.x, dtype=np.float64).reshape(len(tiny.y), -1)  # (N, 1, S, S) -> (N, S*S)
    projections = x @ np.random.default_rng(12345).standard_normal(x.shape[1])
    assert x.sum() == pytest.approx(TINY_X_SUM, abs=0.05)
    for i, value in TINY_X_PROJECTIONS.items():
        assert projections[i] == pytest.approx(value, abs=0.01), f"example {i}"
    # Unset options stay out of the cache key: caches built before them are still found.
    assert dataset_mod.cache_key(TINY) == TINY_CACHE_KEY
    assert tiny.meta["version"] == dataset_mod.DATA_VERSION == 2
    assert np.array_equal(tiny.group, np.arange(len(tiny.y)))


def test_cache_without_group_file_loads_with_one_group_per_example(tiny, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(tiny.path, old)
    (old / "group.npy").unlink()
    meta = json.loads((old / "meta.json").read_text())
    meta.pop("files")  # a cache that old predates the record of its files too
    (old / "meta.json").write_text(json.dumps(meta))
    assert np.array_equal(load(old).group, np.arange(len(tiny.y)))


def test_second_request_loads_from_cache_without_generating(tmp_path, monkeypatch):
    cfg = dataclasses.replace(TINY, examples_per_class=3, cache_dir=str(tmp_path))
    first = prepare(cfg, progress=False)

    def fail(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(dataset_mod, "_synthesise", fail)
    second = prepare(cfg, progress=False)
    assert second.path == first.path
    with pytest.raises(AssertionError, match="cache was not used"):
        prepare(dataclasses.replace(cfg, seed=5), progress=False)  # another config is a miss


def test_concurrent_fill_of_one_cache_is_safe(tmp_path):
    code = (
        "import dataclasses, sys, numpy as np\n"
        "from nsde.data import PRESETS, prepare\n"
        "cfg = dataclasses.replace(PRESETS['tiny'], examples_per_class=6, cache_dir=sys.argv[1])\n"
        "d = prepare(cfg, progress=False)\n"
        "print(d.path, float(np.asarray(d.x, dtype=np.float64).sum()))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=300)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len({o[0] for o in outs}) == 1 and len({o[1] for o in outs}) == 1
    entries = [e.name for e in Path(tmp_path).iterdir()]
    assert len(entries) == 1 and not entries[0].startswith(".tmp"), entries  # no torn or leftover copies


def _row_db(img: torch.Tensor, cfg: SpectrogramConfig, freq: float) -> float:
    """Level (dB re full scale) at `freq`: the loudest of the 3 rows around it, averaged over time."""
    row = int(np.argmin(np.abs(np.log(row_frequencies(cfg)) - np.log(freq))))
    level = img[0, 0, max(row - 1, 0) : row + 2].mean(dim=-1).max()
    return float(level) * cfg.db_range - cfg.db_range


# Fourier amplitude of the fundamental of each unit-amplitude waveform.
FUNDAMENTAL = {"sine": 1.0, "square": 4 / np.pi, "square_75": 2 * np.sqrt(2) / np.pi, "triangle": 8 / np.pi**2}


@pytest.mark.parametrize(
    "kind, present, absent",
    [
        ("sine", {1: 0.0}, [2, 3, 5]),
        ("square", {1: 0.0, 3: -9.54, 5: -13.98}, [2, 4]),  # odd harmonics, 1/n
        ("square_75", {1: 0.0, 2: -3.01, 3: -9.54}, [4]),  # |sin(0.75 n pi)| / n: 2nd present, 4th gone
        ("triangle", {1: 0.0, 3: -19.08}, [2, 4]),  # odd harmonics, 1/n^2
    ],
)
def test_harmonic_structure_known_answer(kind, present, absent):
    synth = SynthConfig()
    cfg = SpectrogramConfig(image_size=256, db_range=120.0)
    f0 = 48 * synth.sample_rate / 8192  # 4687.5 Hz: it and its harmonics sit on STFT bins
    img = spectrogram(0.5 * clean_waveform(kind, f0, synth)[None], cfg)  # half scale: nothing clips at 0 dB
    assert _row_db(img, cfg, f0) == pytest.approx(20 * np.log10(0.5 * FUNDAMENTAL[kind]), abs=0.5)
    fundamental = _row_db(img, cfg, f0)
    for n, rel_db in present.items():
        assert _row_db(img, cfg, n * f0) - fundamental == pytest.approx(rel_db, abs=1.5), f"harmonic {n}"
    for n in absent:
        assert _row_db(img, cfg, n * f0) - fundamental < -40.0, f"harmonic {n} should be absent"


def test_channel_degrades_with_distance_from_injection():
    # Far locations are noisier: the spread of the spectrogram's quietest rows rises.
    rng = np.random.default_rng(0)
    labels = np.zeros(24, dtype=int)
    near = synthesize(labels, np.zeros(24, dtype=int), SynthConfig(), rng)
    far = synthesize(labels, np.full(24, len(LOCATIONS) - 1), SynthConfig(), rng)
    cfg = SpectrogramConfig(image_size=64)
    assert float(spectrogram(far, cfg).median()) > float(spectrogram(near, cfg).median()) + 0.1


def test_bad_config_raises():
    with pytest.raises(ValueError, match="unknown data source 'web'"):
        DataConfig(source="web")
    with pytest.raises(ValueError, match="needs `path`"):
        DataConfig(source="recordings")
    with pytest.raises(ValueError, match="split"):
        DataConfig(split=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="image_size >= 8"):
        DataConfig(image_size=4)
    with pytest.raises(ValueError, match="locations"):
        DataConfig(locations=(6,))


def _write_recordings(folder: Path, n_per_class: int = 6) -> tuple[str, ...]:
    synth = SynthConfig()
    classes = ("sine", "square")
    waves, labels = [], []
    for c, kind in enumerate(classes):
        for i in range(n_per_class):
            waves.append(clean_waveform(kind, 2_000.0 * (i + 1), synth).numpy())
            labels.append(kind)
    np.savez(folder / "run1.npz", waveforms=np.stack(waves), sample_rate=800_000.0, labels=np.array(labels))
    return classes


def test_recordings_go_through_the_same_pipeline(tmp_path):
    data_dir = tmp_path / "recordings"
    data_dir.mkdir()
    classes = _write_recordings(data_dir)
    cfg = DataConfig(source="recordings", path=str(data_dir), class_names=classes, image_size=32, cache_dir=str(tmp_path))
    data = prepare(cfg, progress=False)
    assert data.x.shape == (12, 1, 32, 32) and data.class_names == list(classes)
    assert np.bincount(data.y).tolist() == [6, 6]
    expected = spectrogram(clean_waveform("square", 2_000.0, SynthConfig())[None], cfg.stft(800_000.0))
    first_square = int(np.flatnonzero(data.y == 1)[0])
    assert np.allclose(np.asarray(data.x[first_square], dtype=np.float32), expected[0].numpy(), atol=1e-3)


def test_malformed_recordings_fail_before_anything_is_cached(tmp_path):
    data_dir = tmp_path / "recordings"
    data_dir.mkdir()
    waves = np.random.default_rng(0).standard_normal((4, 9000))
    waves[2, 10] = np.nan
    np.savez(data_dir / "bad.npz", waveforms=waves, sample_rate=800_000.0, labels=np.array([0, 1, 0, 1]))
    cache = tmp_path / "cache"
    cfg = DataConfig(source="recordings", path=str(data_dir), class_names=("a", "b"), image_size=32, cache_dir=str(cache))
    with pytest.raises(DataFormatError, match=r"bad\.npz"):
        prepare(cfg, progress=False)
    assert list(cache.iterdir()) == []


# ----------------------------------------------------------------- realism and mux options


def test_realistic_preset_is_the_default_with_realism():
    assert PRESETS["realistic"] == dataclasses.replace(PRESETS["default"], synth=SynthConfig(realism=True))
    assert REALISTIC_TINY == dataclasses.replace(TINY, synth=SynthConfig(realism=True))
    assert PRESETS["realistic"].class_names == CLASS_NAMES  # mux "time"
    # Set options enter the cache key (unset ones do not: test_tiny_preset_unchanged_by_the_optional_features).
    keys = {dataset_mod.cache_key(c) for c in (TINY, REALISTIC_TINY, dataclasses.replace(REALISTIC_TINY, seed=1))}
    assert len(keys) == 3


def test_realistic_tiny_builds_differs_from_plain_and_is_deterministic(tiny, realistic_tiny):
    # The layout (labels, locations, split) does not depend on the synthesis; the images do.
    for name in ("y", "location", "split_of", "group"):
        assert np.array_equal(getattr(realistic_tiny, name), getattr(tiny, name)), name
    assert realistic_tiny.x.shape == tiny.x.shape and realistic_tiny.class_names == list(CLASS_NAMES)
    assert not np.array_equal(np.asarray(realistic_tiny.x), np.asarray(tiny.x))
    assert data_config_from_dict(realistic_tiny.meta["config"]) == dataclasses.replace(
        REALISTIC_TINY, cache_dir=realistic_tiny.meta["config"]["cache_dir"]
    )
    # Deterministic under its seed: the first batch synthesised again gives the stored images.
    cfg = REALISTIC_TINY
    sl, seed = dataset_mod._synthetic_batches(cfg, len(realistic_tiny.y))[0]
    waves = dataset_mod._synthesise_batch(cfg, realistic_tiny.y[sl], realistic_tiny.location[sl], None, seed)
    images = spectrogram(waves, cfg.stft(cfg.synth.sample_rate)).numpy().astype(np.float16)
    assert np.array_equal(images, np.asarray(realistic_tiny.x[sl]))


def test_realistic_noise_floor_rises_away_from_the_injection_point(tiny, realistic_tiny):
    plain = np.asarray(tiny.x, dtype=np.float32)
    real = np.asarray(realistic_tiny.x, dtype=np.float32)
    at = [realistic_tiny.location == i for i in range(len(LOCATIONS))]
    median = [float(np.median(real[m])) for m in at]
    assert all(m > median[0] + 0.03 for m in median[1:]), median  # every far floor above the injection point's
    # What realism changes: nothing at the (clean) injection point, most at main_power.
    change = [float(np.abs(real[m] - plain[m]).mean()) for m in at]
    assert change[0] < 0.005 and min(change[1:]) > 0.02 and max(change) == change[-1], change


def test_sum_mux_data_set_has_ten_valid_classes(tmp_path):
    synth = SynthConfig(samples=4096, mux="sum")
    cfg = DataConfig(examples_per_class=6, image_size=16, synth=synth, n_fft=512, hop=128, cache_dir=str(tmp_path))
    assert cfg.class_names == synthetic_class_names("sum") and len(cfg.class_names) == 10
    data = prepare(cfg, progress=False)
    assert data.class_names == list(synthetic_class_names("sum")) and data.x.shape == (60, 1, 16, 16)
    assert np.bincount(data.y, minlength=10).tolist() == [6] * 10 and data.y.max() == 9
    for c in range(10):
        assert np.bincount(data.location[data.y == c], minlength=6).tolist() == [1] * 6
    assert np.bincount(data.y[data.indices("test")], minlength=10).tolist() == [1] * 10
    assert data_config_from_dict(data.meta["config"]) == cfg
    timed = dataclasses.replace(cfg, synth=SynthConfig(samples=4096), class_names=None)
    assert timed.class_names == CLASS_NAMES and dataset_mod.cache_key(cfg) != dataset_mod.cache_key(timed)


def test_class_names_follow_the_mux():
    assert DataConfig().class_names == CLASS_NAMES
    assert DataConfig(synth=SynthConfig(mux="sum")).class_names == synthetic_class_names("sum")
    assert DataConfig(source="recordings", path="x").class_names == CLASS_NAMES  # recordings: the ORNL classes
    assert DataConfig(source="recordings", path="x", class_names=("a", "b")).class_names == ("a", "b")
    with pytest.raises(ValueError, match=r"mux='sum' has the fixed classes.*class_names=None.*'sine>square'"):
        dataclasses.replace(TINY, synth=SynthConfig(mux="sum"))  # TINY's names are the "time" classes
    with pytest.raises(ValueError, match=r"mux='time' has the fixed classes.*but got class_names=\('a', 'b'\)"):
        DataConfig(class_names=("a", "b"))
    resolved_again = dataclasses.replace(TINY, synth=SynthConfig(mux="sum"), class_names=None)
    assert resolved_again.class_names == synthetic_class_names("sum")
