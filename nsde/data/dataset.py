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
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from nsde.data.spectrogram import (
    DB_RANGE_RULE,
    HOP_RULE,
    IMAGE_SIZE_RULE,
    N_FFT_RULE,
    SpectrogramConfig,
    spectrogram,
)
from nsde.data.synthetic import CLASS_NAMES, LOCATIONS, SynthConfig, synthesize, synthetic_class_names
from nsde.rules import Rule, check_fields, ruled

__all__ = [
    "DataConfig",
    "SpectrogramData",
    "Split",
    "prepare",
    "load",
    "data_config_from_dict",
    "PRESETS",
    "PRESET_RULE",
    "default_cache_dir",
    "SPLITS",
    "GROUP_BY",
    "UNUSED",
    "stratified_split",
    "grouped_split",
    "location_shift_split",
]

# Bump when the generator or the pipeline changes what a config produces.
DATA_VERSION = 2
SPLITS = ("train", "val", "test")
UNUSED = -1  # split_of of an example in no split (location shift over groups heard at both sides)
GROUP_BY = ("file", "event", "groups")  # DataConfig.group_by for recordings (docs/data.md)
_BATCH = 64  # examples synthesised per batch (bounds memory at 8x oversampling)
# Options added after caches existed: left out of the cache key while unset, so the configs
# that do not use them keep their keys (and caches).
_OPTIONAL_KEY_FIELDS = {"events_at_all_locations": False, "group_by": None, "train_locations": None}
_OPTIONAL_SYNTH_KEY_FIELDS = {"realism": False, "mux": "time"}  # the same, within `synth`


def _check_locations(locations: tuple[int, ...]) -> None:
    if not locations or any(not 0 <= i < len(LOCATIONS) for i in locations):
        raise ValueError(f"`locations` must be indices in [0, {len(LOCATIONS)}), but got {locations}")


def _check_split(split: tuple[float, float, float]) -> None:
    if len(split) != 3 or any(f <= 0 for f in split) or abs(sum(split) - 1.0) > 1e-9:
        raise ValueError(f"`split` must be three positive fractions summing to 1, but got {split}")


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
        synth: waveform synthesis settings (synthetic source), including the realism
            options `synth.realism` and `synth.mux` (docs/data.md, "Realism options").
        n_fft, hop, f_min, f_max, db_range: STFT settings (see nsde.data.spectrogram).
        class_names: the classes. None (default) resolves to the synthetic classes of
            `synth.mux` (`synthetic_class_names`: CLASS_NAMES for "time") for synthetic data,
            to CLASS_NAMES for recordings. Synthetic data accepts only its mux's classes.
        events_at_all_locations: synthetic: synthesise each event (label and source
            waveform) once and record it at every location in `locations`, each through its
            own channel and noise; `examples_per_class` (a multiple of len(locations)) still
            counts examples. The event is the example's group: no event is in two splits.
        group_by: recordings: examples that must stay in one split. "file": the source
            file; "event": one labelled interval of a file (channel layout, every channel
            alike) or one row of a file (simple layout); "groups": the `groups` (N,) array
            of simple-layout files (equal values are one group, across files). None: none.
        train_locations: location shift: examples recorded at these locations are split
            into train and val (their fractions renormalised), every other example is test.
            A proper, non-empty subset of `locations`.
        cache_dir: where arrays are cached (default: $NSDE_CACHE_DIR or ~/.cache/nsde).
    """

    source: str = ruled("synthetic", Rule(str, choices=("synthetic", "recordings"), what="data source"))
    path: str | None = None
    window: int | None = None
    examples_per_class: int = ruled(192, Rule(int, 3))
    image_size: int = ruled(64, IMAGE_SIZE_RULE)
    seed: int = 0
    locations: tuple[int, ...] = ruled(tuple(range(len(LOCATIONS))), Rule(object, validator=_check_locations))
    split: tuple[float, float, float] = ruled((0.7, 0.15, 0.15), Rule(object, validator=_check_split))
    synth: SynthConfig = field(default_factory=SynthConfig)
    n_fft: int = ruled(8192, N_FFT_RULE)
    hop: int = ruled(512, HOP_RULE)
    f_min: float = 300.0
    f_max: float = 400_000.0
    db_range: float = ruled(100.0, DB_RANGE_RULE)
    class_names: tuple[str, ...] | None = None
    events_at_all_locations: bool = False
    group_by: str | None = None
    train_locations: tuple[int, ...] | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        check_fields(self)
        # the rules across fields: what each source needs and allows
        if self.source == "recordings" and not self.path:
            raise ValueError("source='recordings' needs `path` (a file or folder of recordings)")
        self._resolve_class_names()
        self._check_grouping()
        self._check_train_locations()
        self.stft(self.synth.sample_rate)  # validates the STFT settings

    def _resolve_class_names(self) -> None:
        if self.source == "synthetic":
            names = synthetic_class_names(self.synth.mux)
            if self.class_names is not None and tuple(self.class_names) != names:
                raise ValueError(
                    f"synthetic data with mux={self.synth.mux!r} has the fixed classes "
                    f"synthetic_class_names({self.synth.mux!r}) = {names}; leave `class_names` unset "
                    "(None; with dataclasses.replace pass class_names=None), "
                    f"but got class_names={tuple(self.class_names)}"
                )
        else:
            names = CLASS_NAMES if self.class_names is None else self.class_names
        # Resolved once here, so the record (and the cache key) holds the names, as before the option.
        object.__setattr__(self, "class_names", names)

    def _check_grouping(self) -> None:
        if self.events_at_all_locations:
            if self.source != "synthetic":
                raise ValueError("`events_at_all_locations` is for synthetic data; recordings group with `group_by`")
            if self.examples_per_class % len(self.locations):
                raise ValueError(
                    "with events_at_all_locations, `examples_per_class` must be a multiple of len(locations), "
                    f"but got examples_per_class={self.examples_per_class}, len(locations)={len(self.locations)}"
                )
        if self.group_by is not None:
            if self.source != "recordings":
                raise ValueError(
                    f"`group_by` is for recordings (synthetic data groups with events_at_all_locations), "
                    f"but got group_by={self.group_by!r} with source={self.source!r}"
                )
            if self.group_by not in GROUP_BY:
                raise ValueError(f"unknown group_by {self.group_by!r}; known: {list(GROUP_BY)} or None")

    def _check_train_locations(self) -> None:
        train = self.train_locations
        if train is None:
            return
        if not train or len(set(train)) != len(train) or not set(train) < set(self.locations):
            raise ValueError(
                "`train_locations` must be a non-empty proper subset of `locations` without repeats, "
                f"but got train_locations={train}, locations={self.locations}"
            )

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
        if record.get(key) is not None:
            record[key] = tuple(record[key])
    if record.get("train_locations") is not None:
        record["train_locations"] = tuple(record["train_locations"])
    return DataConfig(**record)


PRESETS: dict[str, DataConfig] = {
    "default": DataConfig(),  # 3,072 spectrograms of 64x64: fits this 2-core machine
    "paper": DataConfig(examples_per_class=625, image_size=224),  # 10,000 of 224x224, as published
    "tiny": DataConfig(examples_per_class=12, image_size=32),  # for tests
    "easy": DataConfig(examples_per_class=24, image_size=32, locations=(0,)),  # clean injection point only
    "realistic": DataConfig(synth=SynthConfig(realism=True)),  # default + per-location interference, multipath
    # the designed study's CPU size (docs/study.md): the default set at 48x48, so that 45 ResNet-18
    # trials fit ~90 min on 2 cores while the first stage still sees 12x12 maps for the noise's shape
    "study": DataConfig(image_size=48),
    # the confirmatory study (docs/study.md, "Plan"): the study's generator, size and image, with
    # the train and validation splits of its size (2,144 / 464) and a test split of 2,000 (125 a
    # class) so that the test numbers' example noise is small against the seeds'
    "confirm": DataConfig(image_size=48, examples_per_class=288, split=(134 / 288, 29 / 288, 125 / 288)),
}
PRESET_RULE = Rule(str, choices=lambda: sorted(PRESETS), what="data preset", doc="a named DataConfig (PRESETS)")


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
    split_of: np.ndarray  # (N,) int8: index into SPLITS, UNUSED (-1) for an example in no split
    meta: dict
    group: np.ndarray = None  # type: ignore[assignment]  # (N,) int64 group ids; None -> the example index

    def __post_init__(self) -> None:
        if self.group is None:  # no groups (or a cache from before groups): each example is its own
            object.__setattr__(self, "group", np.arange(len(self.y), dtype=np.int64))

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
    """Load `cfg`'s data set from the cache, or build and cache it first.

    A cached set whose files no longer match the sizes and checksums recorded when it was
    written (a truncated or overwritten file) is reported in one line and rebuilt from its
    source (the generator, or the recordings)."""
    folder = _cache_root(cfg) / f"harmonic-{cache_key(cfg)[:20]}"
    if (folder / "meta.json").exists():
        problem = verify_folder(folder, checksums=True)
        if problem:
            print(f"data cache {folder} is corrupt ({problem}); rebuilding it", file=sys.stderr, flush=True)
            discard_folder(folder)
    if not (folder / "meta.json").exists():
        _build_into(folder, cfg, progress)
    return load(folder)


def verify_folder(folder: Path, *, checksums: bool = False) -> str | None:
    """What is wrong with a folder `write_folder_atomically` wrote, or None: a file missing, or
    its size (always) or sha256 (with `checksums`) not the one recorded. A folder written before
    the record existed (no "files" in meta.json) is taken as it is."""
    try:
        recorded = json.loads((folder / "meta.json").read_text()).get("files", {})
    except (OSError, ValueError) as err:
        return f"meta.json cannot be read: {err}"
    for name, want in recorded.items():
        path = folder / name
        if not path.exists():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != want["bytes"]:
            return f"{name} has {size} bytes, {want['bytes']} were written"
        if checksums and _sha256(path) != want["sha256"]:
            return f"{name}'s sha256 is not the one written"
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def discard_folder(folder: Path) -> None:
    """Move a corrupt folder aside (a reader holding it open keeps its files), then remove it."""
    aside = folder.with_name(f".corrupt-{folder.name}-{os.getpid()}")
    try:
        os.rename(folder, aside)
    except FileNotFoundError:  # another process moved it aside first (and rebuilds it)
        return
    shutil.rmtree(aside, ignore_errors=True)


def load(folder: str | os.PathLike) -> SpectrogramData:
    """Open a prepared data set folder (memory-mapped; nothing is copied).

    Raises:
        ValueError: a file is missing or has another size than was written (a truncated
            cache): its message names the file and the command that rebuilds the set.
    """
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    problem = verify_folder(folder)
    if problem:
        raise ValueError(f"data set {folder} is corrupt ({problem}); `python -m nsde.data prepare` with its "
                         f"preset (or any command that prepares it) rebuilds it")
    return SpectrogramData(
        path=folder,
        x=np.load(folder / "x.npy", mmap_mode="r"),
        y=np.load(folder / "y.npy"),
        location=np.load(folder / "location.npy"),
        split_of=np.load(folder / "split.npy"),
        meta=meta,
        group=np.load(folder / "group.npy") if (folder / "group.npy").exists() else None,
    )


def cache_key(cfg: DataConfig) -> str:
    """sha256 over the whole config (without cache_dir), the data version and recordings' stats."""
    record = dataclasses.asdict(cfg)
    record.pop("cache_dir")
    _drop_unset(record, _OPTIONAL_KEY_FIELDS)
    _drop_unset(record["synth"], _OPTIONAL_SYNTH_KEY_FIELDS)
    record["version"] = DATA_VERSION
    if cfg.source == "recordings":
        record["files"] = _file_stats(Path(cfg.path))
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def _drop_unset(record: dict, optional: dict) -> None:
    for name, unset in optional.items():
        if record[name] == unset:
            record.pop(name)


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
        x, y, location, group = _synthesise(cfg, progress)
        location_names = [loc.name for loc in LOCATIONS]
    else:
        x, y, location, group, location_names = _convert_recordings(cfg, progress)
    split_of = _assign_splits(cfg, y, location, group)
    counts = {s: int((split_of == i).sum()) for i, s in enumerate(SPLITS)}
    if (split_of == UNUSED).any():
        counts["unused"] = int((split_of == UNUSED).sum())
    meta = {
        "config": dataclasses.asdict(cfg),
        "class_names": list(cfg.class_names),
        "location_names": location_names,
        "counts": counts,
        "build_seconds": time.perf_counter() - start,
        "version": DATA_VERSION,
    }
    group = np.arange(len(y), dtype=np.int64) if group is None else group
    arrays = {"x.npy": x, "y.npy": y, "location.npy": location, "split.npy": split_of, "group.npy": group}
    write_folder_atomically(folder, arrays, meta)


def write_folder_atomically(folder: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """`arrays` (file name -> array) and meta.json into a private temporary folder, renamed into
    place (atomic on POSIX). When another process got there first, the rename fails and its
    folder is kept: a reader never sees a half-written folder."""
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        for name, array in arrays.items():
            np.save(tmp / name, array)
        # each file's size and checksum, so that a reader can tell a truncated or altered file
        files = {name: {"bytes": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)} for name in arrays}
        (tmp / "meta.json").write_text(json.dumps({**meta, "files": files}, indent=2, default=str))
        os.rename(tmp, folder)  # atomic; fails if another process got there first
    except OSError:
        if not (folder / "meta.json").exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _synthesise(cfg: DataConfig, progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """cfg's synthetic set: x (N, 1, S, S) float16, y (N,), location (N,), group (N,) or None."""
    y, location, group = _synthetic_layout(cfg)
    stft = cfg.stft(cfg.synth.sample_rate)
    x = np.empty((len(y), 1, cfg.image_size, cfg.image_size), dtype=np.float16)
    bar = tqdm(total=len(y), desc="synthesising spectrograms", unit="ex", disable=not progress)
    for sl, seed in _synthetic_batches(cfg, len(y)):
        waves = _synthesise_batch(cfg, y[sl], location[sl], None if group is None else group[sl], seed)
        x[sl] = spectrogram(waves, stft).numpy().astype(np.float16)
        bar.update(len(y[sl]))
    bar.close()
    return x, y, location, group


def _synthetic_layout(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(N,) int64 labels, locations and event groups (None: one event per example) of cfg's synthetic set."""
    n_classes = len(cfg.class_names)
    epc = cfg.examples_per_class
    y = np.repeat(np.arange(n_classes), epc).astype(np.int64)
    allowed = np.array(cfg.locations)
    if cfg.events_at_all_locations:
        # Each event recorded at every location in turn: exactly balanced, no RNG needed.
        n_events = n_classes * epc // len(allowed)
        location = np.tile(allowed, n_events).astype(np.int64)
        return y, location, np.repeat(np.arange(n_events), len(allowed)).astype(np.int64)
    rng = np.random.default_rng(cfg.seed)
    # Locations balanced within each class (exactly, when epc is a multiple of 6).
    location = np.concatenate([rng.permutation(allowed[np.arange(epc) % len(allowed)]) for _ in range(n_classes)])
    return y, location.astype(np.int64), None


def _synthetic_batches(cfg: DataConfig, n: int) -> list[tuple[slice, np.random.SeedSequence]]:
    """The batches of cfg's synthetic set and their seeds; whole events per batch."""
    size = _BATCH
    if cfg.events_at_all_locations:
        size = max(1, _BATCH // len(cfg.locations)) * len(cfg.locations)
    # One child seed per batch: the result does not depend on how batches are scheduled.
    seeds = np.random.SeedSequence(cfg.seed).spawn((n + size - 1) // size)
    return [(slice(b * size, (b + 1) * size), seed) for b, seed in enumerate(seeds)]


def _synthesise_batch(
    cfg: DataConfig,
    y: np.ndarray,
    location: np.ndarray,
    group: np.ndarray | None,
    seed: np.random.SeedSequence,
    *,
    return_signal_power: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """One batch's (B, T) waveforms (and (B,) signal powers), exactly as the data set was built."""
    return synthesize(
        y, location, cfg.synth, np.random.default_rng(seed), events=group, return_signal_power=return_signal_power
    )


def _convert_recordings(cfg: DataConfig, progress: bool):
    rec = _read_recordings(cfg)
    stft = cfg.stft(rec.sample_rate)
    x = np.empty((len(rec.labels), 1, cfg.image_size, cfg.image_size), dtype=np.float16)
    for start in tqdm(range(0, len(x), _BATCH), desc="converting recordings", disable=not progress):
        x[start : start + _BATCH] = spectrogram(rec.waveforms[start : start + _BATCH], stft).numpy()
    group = _recording_groups(rec, cfg.group_by)
    return x, rec.labels.astype(np.int64), rec.locations.astype(np.int64), group, [loc.name for loc in LOCATIONS]


def _read_recordings(cfg: DataConfig):
    from nsde.data.recordings import load_recordings

    return load_recordings(
        cfg.path,
        class_names=cfg.class_names,
        location_names=[loc.name for loc in LOCATIONS],
        window=cfg.window,
    )


def _recording_groups(rec, group_by: str | None) -> np.ndarray | None:
    """(N,) int64 group ids of the recordings' windows under `group_by`, or None."""
    if group_by is None:
        return None
    if group_by == "file":
        return np.unique(np.array(rec.sources), return_inverse=True)[1].reshape(-1).astype(np.int64)
    if group_by == "event":
        return rec.events
    if rec.groups is None:
        raise ValueError(
            "group_by='groups' needs a `groups` (N,) array in every simple-layout file, "
            "but the recordings have none (the channel layout has no such array)"
        )
    return rec.groups


def _assign_splits(cfg: DataConfig, y: np.ndarray, location: np.ndarray, group: np.ndarray | None) -> np.ndarray:
    if cfg.train_locations is not None:
        return location_shift_split(y, location, group, cfg.train_locations, cfg.split, cfg.seed)
    if group is not None:
        return grouped_split(y, group, cfg.split, cfg.seed)
    return stratified_split(y, cfg.split, cfg.seed)


def stratified_split(y: np.ndarray, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    """Per class: shuffle, then round(f_val n) (>= 1) val, round(f_test n) (>= 1) test, the rest train.

    A fraction of 0 gives that split nothing (used for the two-way split of a location shift).
    """
    rng = np.random.default_rng([seed, 1])  # a stream of its own: the split does not move with the data
    need = sum(f > 0 for f in fractions)
    split_of = np.empty(len(y), dtype=np.int8)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        if len(idx) < need:
            raise ValueError(
                f"every class needs >= {need} examples for a {'/'.join(s for s, f in zip(SPLITS, fractions) if f > 0)} "
                f"split, but class {c} has {len(idx)}"
            )
        n_val = max(1, int(round(fractions[1] * len(idx)))) if fractions[1] > 0 else 0
        n_test = max(1, int(round(fractions[2] * len(idx)))) if fractions[2] > 0 else 0
        n_train = len(idx) - n_val - n_test
        split_of[idx[:n_train]] = 0
        split_of[idx[n_train : n_train + n_val]] = 1
        split_of[idx[n_train + n_val :]] = 2
    return split_of


def grouped_split(y: np.ndarray, group: np.ndarray, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    """`stratified_split` over groups: every example of a group lands in its group's split.

    A group is stratified under its most frequent class (ties: the lower index); every class
    needs as many groups as there are non-empty splits.
    """
    ids, inverse = np.unique(group, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.zeros((len(ids), int(y.max()) + 1), dtype=np.int64)  # (groups, classes)
    np.add.at(counts, (inverse, y), 1)
    stratum = counts.argmax(axis=1)  # (G,)
    need = sum(f > 0 for f in fractions)
    for c in np.unique(y):
        if (stratum == c).sum() < need:
            raise ValueError(
                f"every class needs >= {need} groups for a grouped split, but class {c} is the main class of "
                f"{int((stratum == c).sum())} groups (it occurs in {int((counts[:, c] > 0).sum())})"
            )
    return stratified_split(stratum, fractions, seed)[inverse]  # (G,) -> (N,)


def location_shift_split(
    y: np.ndarray,
    location: np.ndarray,
    group: np.ndarray | None,
    train_locations: tuple[int, ...],
    fractions: tuple[float, float, float],
    seed: int,
) -> np.ndarray:
    """Train and val from `train_locations` (fractions renormalised), test from every other location.

    A group heard both at a train location and elsewhere (an event at every location) would
    otherwise sit in two splits; then groups are split three ways and each split keeps only
    its side (train/val the train locations, test the others); the rest is UNUSED.
    """
    near = np.isin(location, train_locations)
    if not near.any() or near.all():
        raise ValueError(
            f"a location shift needs examples at and away from train_locations={train_locations}, "
            f"but {int(near.sum())} of {len(near)} examples are at them"
        )
    if group is not None and _groups_span(group, near):
        split_of = grouped_split(y, group, fractions, seed)
        split_of[np.where(split_of == 2, near, ~near)] = UNUSED
        return split_of
    f_train, f_val, _ = fractions
    two_way = (f_train / (f_train + f_val), f_val / (f_train + f_val), 0.0)
    rows = np.flatnonzero(near)
    split_of = np.full(len(y), 2, dtype=np.int8)
    if group is None:
        split_of[rows] = stratified_split(y[rows], two_way, seed)
    else:
        split_of[rows] = grouped_split(y[rows], group[rows], two_way, seed)
    return split_of


def _groups_span(group: np.ndarray, near: np.ndarray) -> bool:
    """Whether some group has examples both where `near` holds and where it does not."""
    ids, inverse = np.unique(group, return_inverse=True)
    n_near = np.bincount(inverse.reshape(-1), weights=near, minlength=len(ids))
    n_all = np.bincount(inverse.reshape(-1), minlength=len(ids))
    return bool(((n_near > 0) & (n_near < n_all)).any())
