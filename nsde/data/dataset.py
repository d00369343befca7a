"""The spectrogram data set: config, generation or conversion, stratified splits, disk cache.

`prepare(cfg)` returns a `SpectrogramData` for `cfg`, built once and cached on disk under
a key that hashes the whole config (and, for recordings, the files' names, sizes and
modification times). A second call, in this process or another, loads the cache with
memory-mapping in well under a second. Two processes filling the same cache at once
cannot corrupt it: each writes a private temporary folder and renames it into place
(atomic on POSIX); the loser discards its copy and uses the winner's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from nsde.data.spectrogram import SpectrogramConfig, spectrogram
from nsde.data.synthetic import CLASS_NAMES, LOCATIONS, SynthConfig, synthesize

__all__ = [
    "DataConfig",
    "SpectrogramData",
    "Split",
    "prepare",
    "load",
    "data_config_from_dict",
    "PRESETS",
    "default_cache_dir",
    "SPLITS",
]

# Bump when the generator or the pipeline changes what a config produces.
DATA_VERSION = 2
SPLITS = ("train", "val", "test")
_BATCH = 64  # examples synthesised per batch (bounds memory at 8x oversampling)


@dataclass(frozen=True)
class DataConfig:
    """Which spectrograms: synthetic (seeded) or the user's recordings, and how they are made.

    Attributes:
        source: "synthetic" or "recordings".
        path: file or folder of recordings (source "recordings"; layout in docs/data.md).
        window: samples per example cut from recordings (default: the files' length).
        examples_per_class: synthetic examples per class (paper: 625, i.e. 10,000 in all).
        image_size: side of the square spectrogram image (paper: 224).
        seed: seeds the generator and the split.
        locations: indices into LOCATIONS that synthetic examples are recorded at (balanced).
        split: train / validation / test fractions, stratified by class.
        synth: waveform synthesis settings (synthetic source).
        n_fft, hop, f_min, f_max, db_range: STFT settings (see nsde.data.spectrogram).
        class_names: classes of recordings (synthetic: always CLASS_NAMES).
        cache_dir: where arrays are cached (default: $NSDE_CACHE_DIR or ~/.cache/nsde).
    """

    source: str = "synthetic"
    path: str | None = None
    window: int | None = None
    examples_per_class: int = 192
    image_size: int = 64
    seed: int = 0
    locations: tuple[int, ...] = tuple(range(len(LOCATIONS)))
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    synth: SynthConfig = field(default_factory=SynthConfig)
    n_fft: int = 8192
    hop: int = 512
    f_min: float = 300.0
    f_max: float = 400_000.0
    db_range: float = 100.0
    class_names: tuple[str, ...] = CLASS_NAMES
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.source not in ("synthetic", "recordings"):
            raise ValueError(f"unknown data source {self.source!r}; known sources: ['synthetic', 'recordings']")
        if self.source == "recordings" and not self.path:
            raise ValueError("source='recordings' needs `path` (a file or folder of recordings)")
        if not self.locations or any(not 0 <= i < len(LOCATIONS) for i in self.locations):
            raise ValueError(f"`locations` must be indices in [0, {len(LOCATIONS)}), but got {self.locations}")
        if self.examples_per_class < 3:
            raise ValueError(f"`examples_per_class >= 3` must hold, but got {self.examples_per_class}")
        if len(self.split) != 3 or any(f <= 0 for f in self.split) or abs(sum(self.split) - 1.0) > 1e-9:
            raise ValueError(f"`split` must be three positive fractions summing to 1, but got {self.split}")
        if self.source == "synthetic" and tuple(self.class_names) != CLASS_NAMES:
            raise ValueError("synthetic data has the fixed classes nsde.data.CLASS_NAMES; `class_names` is for recordings")
        self.stft(self.synth.sample_rate)  # validates the STFT settings

    def stft(self, sample_rate: float) -> SpectrogramConfig:
        return SpectrogramConfig(
            sample_rate=sample_rate,
            n_fft=self.n_fft,
            hop=self.hop,
            f_min=self.f_min,
            f_max=min(self.f_max, sample_rate / 2),
            db_range=self.db_range,
            image_size=self.image_size,
        )


def data_config_from_dict(record: dict) -> DataConfig:
    """The DataConfig that `dataclasses.asdict` (e.g. in a checkpoint or meta.json) wrote."""
    record = dict(record)
    record["synth"] = SynthConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in record["synth"].items()})
    for key in ("locations", "split", "class_names"):
        record[key] = tuple(record[key])
    return DataConfig(**record)


PRESETS: dict[str, DataConfig] = {
    "default": DataConfig(),  # 3,072 spectrograms of 64x64: fits this 2-core machine
    "paper": DataConfig(examples_per_class=625, image_size=224),  # 10,000 of 224x224, as published
    "tiny": DataConfig(examples_per_class=12, image_size=32),  # for tests
    "easy": DataConfig(examples_per_class=24, image_size=32, locations=(0,)),  # clean injection point only
}


def default_cache_dir() -> Path:
    return Path(os.environ.get("NSDE_CACHE_DIR") or Path.home() / ".cache" / "nsde")


@dataclass(frozen=True)
class Split:
    """One split in memory: x (N, 1, S, S) float32 in [0, 1], y (N,), location (N,)."""

    x: torch.Tensor
    y: torch.Tensor
    location: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class SpectrogramData:
    """A prepared data set: memory-mapped arrays of every example and the split of each."""

    path: Path
    x: np.ndarray  # (N, 1, S, S) float16, memory-mapped
    y: np.ndarray  # (N,) int64
    location: np.ndarray  # (N,) int64, -1 when unknown
    split_of: np.ndarray  # (N,) int8: index into SPLITS
    meta: dict

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    @property
    def location_names(self) -> list[str]:
        return list(self.meta["location_names"])

    def indices(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; known splits: {list(SPLITS)}")
        return np.flatnonzero(self.split_of == SPLITS.index(split))

    def split(self, name: str) -> Split:
        idx = self.indices(name)
        return Split(
            x=torch.from_numpy(np.asarray(self.x[idx], dtype=np.float32)),
            y=torch.from_numpy(self.y[idx]),
            location=torch.from_numpy(self.location[idx]),
        )


# --------------------------------------------------------------------------- prepare


def prepare(cfg: DataConfig, *, progress: bool = True) -> SpectrogramData:
    """Load `cfg`'s data set from the cache, or build and cache it first."""
    folder = _cache_root(cfg) / f"harmonic-{cache_key(cfg)[:20]}"
    if not (folder / "meta.json").exists():
        _build_into(folder, cfg, progress)
    return load(folder)


def load(folder: str | os.PathLike) -> SpectrogramData:
    """Open a prepared data set folder (memory-mapped; nothing is copied)."""
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    return SpectrogramData(
        path=folder,
        x=np.load(folder / "x.npy", mmap_mode="r"),
        y=np.load(folder / "y.npy"),
        location=np.load(folder / "location.npy"),
        split_of=np.load(folder / "split.npy"),
        meta=meta,
    )


def cache_key(cfg: DataConfig) -> str:
    """sha256 over the whole config (without cache_dir), the data version and recordings' stats."""
    record = dataclasses.asdict(cfg)
    record.pop("cache_dir")
    record["version"] = DATA_VERSION
    if cfg.source == "recordings":
        record["files"] = _file_stats(Path(cfg.path))
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def _cache_root(cfg: DataConfig) -> Path:
    root = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _file_stats(path: Path) -> list[tuple[str, int, int]]:
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    return [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file()]


def _build_into(folder: Path, cfg: DataConfig, progress: bool) -> None:
    start = time.perf_counter()
    if cfg.source == "synthetic":
        x, y, location = _synthesise(cfg, progress)
        location_names = [loc.name for loc in LOCATIONS]
    else:
        x, y, location, location_names = _convert_recordings(cfg, progress)
    split_of = stratified_split(y, cfg.split, cfg.seed)
    meta = {
        "config": dataclasses.asdict(cfg),
        "class_names": list(cfg.class_names),
        "location_names": location_names,
        "counts": {s: int((split_of == i).sum()) for i, s in enumerate(SPLITS)},
        "build_seconds": time.perf_counter() - start,
        "version": DATA_VERSION,
    }
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        np.save(tmp / "x.npy", x)
        np.save(tmp / "y.npy", y)
        np.save(tmp / "location.npy", location)
        np.save(tmp / "split.npy", split_of)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        os.rename(tmp, folder)  # atomic; fails if another process got there first
    except OSError:
        if not (folder / "meta.json").exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _synthesise(cfg: DataConfig, progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_classes = len(CLASS_NAMES)
    epc = cfg.examples_per_class
    rng = np.random.default_rng(cfg.seed)
    y = np.repeat(np.arange(n_classes), epc)
    # Locations balanced within each class (exactly, when epc is a multiple of 6).
    allowed = np.array(cfg.locations)
    location = np.concatenate([rng.permutation(allowed[np.arange(epc) % len(allowed)]) for _ in range(n_classes)])
    stft = cfg.stft(cfg.synth.sample_rate)
    x = np.empty((len(y), 1, cfg.image_size, cfg.image_size), dtype=np.float16)
    # One child seed per batch: the result does not depend on how batches are scheduled.
    seeds = np.random.SeedSequence(cfg.seed).spawn((len(y) + _BATCH - 1) // _BATCH)
    bar = tqdm(total=len(y), desc="synthesising spectrograms", unit="ex", disable=not progress)
    for b, seed in enumerate(seeds):
        sl = slice(b * _BATCH, (b + 1) * _BATCH)
        waves = synthesize(y[sl], location[sl], cfg.synth, np.random.default_rng(seed))
        x[sl] = spectrogram(waves, stft).numpy().astype(np.float16)
        bar.update(len(y[sl]))
    bar.close()
    return x, y.astype(np.int64), location.astype(np.int64)


def _convert_recordings(cfg: DataConfig, progress: bool):
    from nsde.data.recordings import load_recordings

    rec = load_recordings(
        cfg.path,
        class_names=cfg.class_names,
        location_names=[loc.name for loc in LOCATIONS],
        window=cfg.window,
    )
    stft = cfg.stft(rec.sample_rate)
    x = np.empty((len(rec.labels), 1, cfg.image_size, cfg.image_size), dtype=np.float16)
    for start in tqdm(range(0, len(x), _BATCH), desc="converting recordings", disable=not progress):
        x[start : start + _BATCH] = spectrogram(rec.waveforms[start : start + _BATCH], stft).numpy()
    return x, rec.labels.astype(np.int64), rec.locations.astype(np.int64), [loc.name for loc in LOCATIONS]


def stratified_split(y: np.ndarray, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    """Per class: shuffle, then round(f_val n) (>= 1) val, round(f_test n) (>= 1) test, the rest train."""
    rng = np.random.default_rng([seed, 1])  # a stream of its own: the split does not move with the data
    split_of = np.empty(len(y), dtype=np.int8)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        if len(idx) < 3:
            raise ValueError(f"every class needs >= 3 examples for a train/val/test split, but class {c} has {len(idx)}")
        n_val = max(1, int(round(fractions[1] * len(idx))))
        n_test = max(1, int(round(fractions[2] * len(idx))))
        n_train = len(idx) - n_val - n_test
        split_of[idx[:n_train]] = 0
        split_of[idx[n_train : n_train + n_val]] = 1
        split_of[idx[n_train + n_val :]] = 2
    return split_of
