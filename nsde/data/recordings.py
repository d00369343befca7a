"""Users' own waveform recordings -> a labelled set of fixed-length waveform windows.

This module only reads, validates and windows the waveforms; turning the windows into
spectrograms is another module's job. Nothing half-loaded is ever returned: every file
is validated fully, and the first problem raises a :class:`DataFormatError` that names
the file and states the rule it broke together with the value received.

Two layouts are understood, detected per folder:

* **Simple layout** (a single file, or a folder *without* ``labels.csv``): each ``.npz``
  / ``.h5`` / ``.hdf5`` file holds the arrays ``waveforms`` (N, T) float, ``sample_rate``
  (scalar; in HDF5 also accepted as a root attribute), ``labels`` (N,) class indices or
  class names, and optionally ``locations`` (N,) location indices (-1 = unknown) or
  location names, and ``groups`` (N,) integer ids or strings (rows that must stay in one
  split; equal values are one group, compared as text, across files; in every file or in
  none). Any other array is rejected, so that a typo such as ``location`` is
  reported instead of silently ignored. With ``window`` given, every row is cut into
  windows of ``window`` samples every ``hop`` samples (default ``hop = window``).

* **Channel layout** (a folder *with* ``labels.csv``), as the public ORNL "harmonic
  signals" recordings are reported to be: each file holds one 1-D array per sensor
  channel (all of the same length; in HDF5 at any group depth) and a ``sample_rate``
  (scalar array, or an HDF5 root attribute). ``labels.csv`` has the header
  ``file,start,end,label``; each row says that class ``label`` was present during
  samples [start, end) of ``file``. Windows of ``window`` samples every ``hop`` samples
  are cut fully inside each interval, from every channel of that file. A channel's
  location is the longest entry of ``location_names`` that is a prefix of the channel's
  (dataset's base) name, or -1 if none is.

Order is deterministic: files sorted by name; in the simple layout row by row, then
window by window; in the channel layout channel by channel (sorted by dataset path),
then interval by interval (sorted by start), then window by window.

Every window also carries its *event*: the (file, row) it was cut from in the simple
layout, the (file, labelled interval) in the channel layout, shared by every channel
(the same injection heard by several sensors).
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["DataFormatError", "Recordings", "load_recordings", "LABELS_CSV", "DATA_EXTENSIONS"]

LABELS_CSV = "labels.csv"
DATA_EXTENSIONS = (".npz", ".h5", ".hdf5")
_HDF5_EXTENSIONS = (".h5", ".hdf5")
_CSV_COLUMNS = ("file", "start", "end", "label")
_SIMPLE_KEYS = ("waveforms", "sample_rate", "labels", "locations", "groups")
# Sample rates stored as float32 in one file and float64 in another must still compare
# equal (44100.1 differs by ~2e-8 relative between the two), so equality is relative.
_RATE_RTOL = 1e-6


class DataFormatError(ValueError):
    """A recording file (or ``labels.csv``) breaks the expected format.

    The message always starts with the offending file's path.

    Args:
        path: the file (or folder) at fault.
        problem: what is wrong, with the rule and the value received.
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True, eq=False)  # eq=False: `==` on ndarray fields has no single truth value
class Recordings:
    """A labelled set of fixed-length waveform windows.

    Attributes:
        waveforms: (N, T) float32, all finite.
        sample_rate: samples per second (> 0), shared by every window.
        labels: (N,) int64 indices into the ``class_names`` given to the loader.
        locations: (N,) int64 indices into the ``location_names`` given to the loader,
            -1 where the location is unknown.
        sources: (N,) the file each window came from.
        events: (N,) int64 event of each window: its (file, row) in the simple layout, its
            (file, labelled interval) in the channel layout; None: each window its own.
        groups: (N,) int64 ids of the files' ``groups`` values (in order of first
            appearance), or None where the files have no ``groups`` array.
    """

    waveforms: np.ndarray
    sample_rate: float
    labels: np.ndarray
    locations: np.ndarray
    sources: tuple[str, ...]
    events: np.ndarray | None = None
    groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        # Other modules may build a Recordings directly; check the invariants they rely on. These
        # are array invariants across fields (dtypes, one length N), not value rules (nsde.rules).
        w = self.waveforms
        if not isinstance(w, np.ndarray) or w.ndim != 2 or w.dtype != np.float32:
            raise ValueError(f"waveforms must be a 2-D float32 ndarray, got {_describe(w)}")
        n = w.shape[0]
        if self.events is None:
            object.__setattr__(self, "events", np.arange(n, dtype=np.int64))
        for name in ("labels", "locations", "events") + (("groups",) if self.groups is not None else ()):
            a = getattr(self, name)
            if not isinstance(a, np.ndarray) or a.dtype != np.int64 or a.shape != (n,):
                raise ValueError(f"{name} must be an int64 ndarray of shape ({n},), got {_describe(a)}")
        if len(self.sources) != n:
            raise ValueError(f"sources must have {n} entries (one per window), got {len(self.sources)}")
        if not (math.isfinite(self.sample_rate) and self.sample_rate > 0):
            raise ValueError(f"sample_rate must be finite and > 0, got {self.sample_rate!r}")
        if not np.isfinite(w).all():
            raise ValueError("waveforms must be finite, but contain NaN or inf")

    def __len__(self) -> int:
        """Number of windows N."""
        return int(self.waveforms.shape[0])


def load_recordings(
    path: str | os.PathLike,
    *,
    class_names: Sequence[str],
    location_names: Sequence[str],
    window: int | None = None,
    hop: int | None = None,
) -> Recordings:
    """Read, validate and window recordings from a folder or a single file.

    Args:
        path: a folder (its files are read in name order; files starting with '.' are
            ignored) or a single ``.npz`` / ``.h5`` / ``.hdf5`` file (always simple layout).
            A folder containing ``labels.csv`` is read in the channel layout.
        class_names: the class of index i is ``class_names[i]``; non-empty, unique.
        location_names: the location of index i is ``location_names[i]``; unique,
            may be empty (then every location is -1 unless given as an index).
        window: samples per example. Required in the channel layout; in the simple
            layout optional (then T is taken from the files, which must all agree).
        hop: step between window starts (default ``window``, i.e. no overlap).
            Needs ``window``.

    Returns:
        The windows with their labels, locations, sources and the common sample rate.

    Raises:
        DataFormatError: a file or ``labels.csv`` is malformed (the message names it).
        ValueError: bad ``window`` / ``hop`` / ``class_names`` / ``location_names``.
        FileNotFoundError: ``path`` does not exist.
        ImportError: an HDF5 file is met and h5py is not installed.
    """
    classes = _check_names(class_names, "class_names", allow_empty=False)
    locations = _check_names(location_names, "location_names", allow_empty=True)
    window, hop = _check_window(window, hop)
    root = Path(path)
    if root.is_dir():
        files = _list_data_files(root)
        if (root / LABELS_CSV).is_file():
            if window is None:
                raise ValueError(f"window is required for the channel layout ({root / LABELS_CSV} exists), got None")
            return _load_channel_layout(root, files, classes, locations, window, hop)
        return _load_simple_layout(files, classes, locations, window, hop)
    if root.is_file():
        if root.suffix.lower() not in DATA_EXTENSIONS:
            raise DataFormatError(root, f"unsupported file extension {root.suffix!r}; supported: {DATA_EXTENSIONS}")
        return _load_simple_layout([root], classes, locations, window, hop)
    raise FileNotFoundError(f"recordings path does not exist: {root}")


# ----------------------------------------------------------------------- argument checks


def _check_names(names: Sequence[str], what: str, *, allow_empty: bool) -> tuple[str, ...]:
    """Validate a list of class or location names: strings, non-empty, unique."""
    # A bare string is a Sequence[str] too, and would silently become one name per letter.
    if isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
        raise ValueError(f"{what} must be a sequence of strings, got {type(names).__name__} {names!r}")
    out = tuple(names)
    if not out and not allow_empty:
        raise ValueError(f"{what} must not be empty, got {out!r}")
    for name in out:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{what} must hold non-empty strings, got {name!r} in {out!r}")
    if len(set(out)) != len(out):
        dupes = sorted({n for n in out if out.count(n) > 1})
        raise ValueError(f"{what} must be unique, got duplicates {dupes} in {out!r}")
    return out


def _check_window(window: int | None, hop: int | None) -> tuple[int | None, int | None]:
    """Validate window / hop; return hop defaulted to window."""

    def positive_int(value: Any, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{what} must be a positive integer, got {type(value).__name__} {value!r}")
        if value <= 0:
            raise ValueError(f"{what} must be a positive integer (> 0), got {value!r}")
        return int(value)

    if window is None:
        if hop is not None:
            raise ValueError(f"hop needs window (hop is the step between windows), got window=None, hop={hop!r}")
        return None, None
    window = positive_int(window, "window")
    hop = window if hop is None else positive_int(hop, "hop")
    return window, hop


# ------------------------------------------------------------------------ folder & files


def _list_data_files(folder: Path) -> list[Path]:
    """The data files of `folder`, sorted by name; anything unexpected is an error."""
    files = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or entry.name == LABELS_CSV:
            continue
        if entry.is_dir():
            # Not read recursively: a silently skipped sub-folder would be silently lost data.
            raise DataFormatError(entry, "sub-folders are not read; move its files up or remove it")
        if entry.suffix.lower() not in DATA_EXTENSIONS:
            raise DataFormatError(
                entry, f"unsupported file extension {entry.suffix!r}; supported: {DATA_EXTENSIONS} (and {LABELS_CSV})"
            )
        files.append(entry)
    if not files:
        raise DataFormatError(folder, f"empty folder: no {'/'.join(DATA_EXTENSIONS)} files")
    return files


@contextmanager
def _open_arrays(path: Path) -> Iterator[tuple[dict[str, Any], Mapping[str, Any]]]:
    """Open a data file as (arrays by name, root attributes).

    The arrays are ndarrays (npz) or h5py datasets (read lazily, sliced on demand);
    both offer ``.shape``, ``.dtype`` and ``[...]``. HDF5 datasets are collected at any
    group depth under their path without the leading '/'.
    """
    if path.suffix.lower() in _HDF5_EXTENSIONS:
        try:
            import h5py  # lazily: only users with HDF5 files need it
        except ImportError as err:
            raise ImportError(f"reading {path} needs h5py, which is not installed: pip install h5py") from err
        try:
            handle = h5py.File(path, "r")
        except OSError as err:
            raise DataFormatError(path, f"cannot be opened as HDF5 ({err})") from err
        with handle:
            arrays: dict[str, Any] = {}

            def collect(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    arrays[name] = obj

            handle.visititems(collect)
            yield arrays, dict(handle.attrs)
        return
    try:
        # allow_pickle=False: an .npz must never be able to run code; object arrays fail here.
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise DataFormatError(path, "is a single .npy array, not an .npz archive of named arrays")
            arrays = {name: archive[name] for name in archive.files}
    except DataFormatError:
        raise
    except Exception as err:  # zipfile / pickle / header errors: all mean "not a valid .npz"
        raise DataFormatError(path, f"cannot be read as .npz ({type(err).__name__}: {err})") from err
    yield arrays, {}


def _read_sample_rate(path: Path, arrays: dict[str, Any], attrs: Mapping[str, Any]) -> float:
    """The file's sample rate, from a scalar array and/or a root attribute `sample_rate`."""
    found = []
    if "sample_rate" in arrays:
        found.append(("array 'sample_rate'", np.asarray(arrays["sample_rate"][()])))
    if "sample_rate" in attrs:
        found.append(("root attribute 'sample_rate'", np.asarray(attrs["sample_rate"])))
    if not found:
        raise DataFormatError(
            path, "missing sample_rate: expected a scalar array (or HDF5 root attribute) 'sample_rate'"
        )
    rates = []
    for where, value in found:
        if value.size != 1 or value.ndim > 1:
            raise DataFormatError(path, f"{where} must be a scalar, got shape {value.shape}")
        if value.dtype.kind not in "iuf":
            raise DataFormatError(path, f"{where} must be a real number, got dtype {value.dtype}: {value!r}")
        rate = float(value.reshape(()))
        if not (math.isfinite(rate) and rate > 0):
            raise DataFormatError(path, f"{where} must be finite and > 0 Hz, got {rate!r}")
        rates.append(rate)
    if len(rates) == 2 and not math.isclose(rates[0], rates[1], rel_tol=_RATE_RTOL):
        raise DataFormatError(
            path, f"array sample_rate {rates[0]!r} and root attribute sample_rate {rates[1]!r} differ"
        )
    return rates[0]


def _common_rate(path: Path, rate: float, first: tuple[Path, float] | None) -> tuple[Path, float]:
    """Check `rate` against the first file's; return the reference (first file, rate)."""
    if first is None:
        return path, rate
    if not math.isclose(rate, first[1], rel_tol=_RATE_RTOL):
        raise DataFormatError(
            path, f"sample_rate must be the same for every file: got {rate!r} Hz, but {first[0]} has {first[1]!r} Hz"
        )
    return first


# ------------------------------------------------------------------ values -> indices


def _as_strings(values: np.ndarray) -> list[str] | None:
    """The values as Python strings if they are text (unicode, bytes, HDF5 vlen str), else None."""
    if values.dtype.kind == "U":
        return [str(v) for v in values]
    if values.dtype.kind in "SO":
        out = []
        for v in values:
            if isinstance(v, bytes):
                out.append(v.decode("utf-8", errors="replace"))
            elif isinstance(v, str):
                out.append(v)
            else:
                return None
        return out
    return None


def _to_indices(
    path: Path, values: np.ndarray, names: tuple[str, ...], what: str, *, allow_unknown: bool
) -> np.ndarray:
    """Turn a 1-D array of indices or names into int64 indices into `names`.

    `allow_unknown` admits the index -1 (used for an unknown location).
    """
    lowest = -1 if allow_unknown else 0
    if values.dtype.kind in "iu":
        idx = values.astype(np.int64)
        bad = (idx < lowest) | (idx >= len(names))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataFormatError(
                path, f"{what}[{i}] = {idx[i]} is out of range: indices must be in [{lowest}, {len(names)}) ({names})"
            )
        return idx
    strings = _as_strings(values)
    if strings is None:
        raise DataFormatError(path, f"{what} must be integer indices or name strings, got dtype {values.dtype}")
    lookup = {name: i for i, name in enumerate(names)}
    out = np.empty(len(strings), dtype=np.int64)
    for i, s in enumerate(strings):
        if s not in lookup:
            raise DataFormatError(path, f"{what}[{i}] = {s!r} is not a known name; known: {list(names)}")
        out[i] = lookup[s]
    return out


def _location_of(channel: str, location_names: tuple[str, ...]) -> int:
    """Index of the longest location name that prefixes the channel's base name, else -1."""
    base = channel.rsplit("/", 1)[-1]
    best, best_len = -1, -1
    for i, name in enumerate(location_names):
        if base.startswith(name) and len(name) > best_len:
            best, best_len = i, len(name)
    return best


# ----------------------------------------------------------------------------- windows


def _float_dtype_ok(path: Path, dtype: np.dtype, what: str) -> None:
    """Waveforms must be real floats: integer ADC counts or text are rejected, not guessed at."""
    if dtype.kind != "f":
        raise DataFormatError(path, f"{what} must have a float dtype (float32/float64), got {dtype}")


def _cut(
    path: Path, rows: np.ndarray, window: int, hop: int, row_names: Sequence[str], offset: int = 0
) -> np.ndarray:
    """Cut each row of `rows` (R, L) into windows (R * n, window), checking they are finite.

    `row_names[r]` and `offset` (the first sample's index in the recording) only serve the
    error message, which points at the first non-finite sample used.
    """
    # Converting first, then checking, so float64 values beyond float32's range count as inf
    # (the overflow is reported below as a DataFormatError, so numpy's warning is silenced).
    with np.errstate(over="ignore"):
        rows = np.asarray(rows, dtype=np.float32)
    if rows.shape[1] < window:
        raise DataFormatError(path, f"{row_names[0]}: {rows.shape[1]} samples is shorter than window={window}")
    windows = sliding_window_view(rows, window, axis=1)[:, ::hop, :]  # (R, n, window) view
    finite = np.isfinite(windows)
    if not finite.all():
        r, k, j = (int(v) for v in np.argwhere(~finite)[0])
        raise DataFormatError(
            path,
            f"waveforms must be finite, but {row_names[r]} sample {offset + k * hop + j} is {windows[r, k, j]}",
        )
    return np.ascontiguousarray(windows).reshape(-1, window)


@dataclass
class _Parts:
    """Per-file pieces accumulated in order and joined once at the end."""

    waveforms: list[np.ndarray]
    labels: list[np.ndarray]
    locations: list[np.ndarray]
    sources: list[str]
    events: list[np.ndarray]
    group_keys: list[str]  # per window, the text of its `groups` value (simple layout only)
    n_events: int = 0  # events so far: the next file's events are numbered from here

    @classmethod
    def empty(cls) -> _Parts:
        return cls([], [], [], [], [], [])

    def add(
        self, path: Path, waveforms: np.ndarray, labels: np.ndarray, locations: np.ndarray, events: np.ndarray
    ) -> None:
        """Add windows; `events` (per window) counts from 0 within the file."""
        self.waveforms.append(waveforms)
        self.labels.append(labels.astype(np.int64, copy=False))
        self.locations.append(locations.astype(np.int64, copy=False))
        self.sources.extend([str(path)] * len(waveforms))
        self.events.append(self.n_events + events.astype(np.int64, copy=False))

    def join(self, sample_rate: float) -> Recordings:
        return Recordings(
            waveforms=np.concatenate(self.waveforms, axis=0),
            sample_rate=sample_rate,
            labels=np.concatenate(self.labels),
            locations=np.concatenate(self.locations),
            sources=tuple(self.sources),
            events=np.concatenate(self.events),
            groups=_ids_in_order(self.group_keys) if self.group_keys else None,
        )


def _ids_in_order(keys: list[str]) -> np.ndarray:
    """(N,) keys -> (N,) int64 ids numbered in order of first appearance."""
    _, first, inverse = np.unique(np.array(keys), return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.reshape(-1)]


# ----------------------------------------------------------------------- simple layout


def _load_simple_layout(
    files: list[Path], classes: tuple[str, ...], locations: tuple[str, ...], window: int | None, hop: int | None
) -> Recordings:
    """Read every file of the simple layout (arrays waveforms / sample_rate / labels / locations)."""
    parts = _Parts.empty()
    rate_ref: tuple[Path, float] | None = None
    length_ref: tuple[Path, int] | None = None
    groups_ref: tuple[Path, bool] | None = None
    for path in files:
        with _open_arrays(path) as (arrays, attrs):
            waveforms, labels, locs = _read_simple_file(path, arrays, classes, locations)
            keys = _read_groups(path, arrays, len(labels))
            rate_ref = _common_rate(path, _read_sample_rate(path, arrays, attrs), rate_ref)
        groups_ref = _common_groups(path, keys is not None, groups_ref)
        n, t = waveforms.shape
        if window is not None and t < window:
            raise DataFormatError(path, f"waveforms rows have T={t} samples, fewer than window={window}")
        if window is None:
            if length_ref is not None and t != length_ref[1]:
                raise DataFormatError(
                    path,
                    f"all files must have the same row length T when window is None: got T={t}, "
                    f"but {length_ref[0]} has T={length_ref[1]} (pass window= to cut them to one length)",
                )
            length_ref = length_ref or (path, t)
            win, step = t, t
        else:
            win, step = window, hop
        row_names = [f"row {i}" for i in range(n)]
        cut = _cut(path, waveforms, win, step, row_names)
        per_row = len(cut) // n
        parts.add(path, cut, np.repeat(labels, per_row), np.repeat(locs, per_row), np.repeat(np.arange(n), per_row))
        parts.n_events += n
        if keys is not None:
            parts.group_keys.extend(np.repeat(np.array(keys, dtype=object), per_row).tolist())
    assert rate_ref is not None  # files is never empty
    return parts.join(rate_ref[1])


def _read_groups(path: Path, arrays: dict[str, Any], n: int) -> list[str] | None:
    """The file's `groups` (N,) as text keys (integer ids or strings), or None if it has none."""
    if "groups" not in arrays:
        return None
    groups = np.asarray(arrays["groups"][()])
    if groups.shape != (n,):
        raise DataFormatError(path, f"groups must have shape (N,) = ({n},), got {groups.shape}")
    if groups.dtype.kind in "iu":
        return [str(int(g)) for g in groups]
    strings = _as_strings(groups)
    if strings is None:
        raise DataFormatError(path, f"groups must be integer ids or strings, got dtype {groups.dtype}")
    return strings


def _common_groups(path: Path, has: bool, first: tuple[Path, bool] | None) -> tuple[Path, bool]:
    """Check that `groups` is in every file or in none; return the reference (first file, has groups)."""
    if first is None:
        return path, has
    if has != first[1]:
        raise DataFormatError(
            path,
            f"`groups` must be in every file or in none, but this file has {'a' if has else 'no'} `groups` "
            f"array and {first[0]} has {'one' if first[1] else 'none'}",
        )
    return first


def _read_simple_file(
    path: Path, arrays: dict[str, Any], classes: tuple[str, ...], locations: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate one simple-layout file; return (waveforms (N, T), labels (N,), locations (N,))."""
    if not arrays:
        raise DataFormatError(path, "empty file: it holds no arrays")
    if "waveforms" not in arrays:
        raise DataFormatError(
            path,
            f"missing array 'waveforms' (N, T); found {sorted(arrays)}"
            f" (a folder with {LABELS_CSV} is read in the channel layout)",
        )
    if "labels" not in arrays:
        raise DataFormatError(path, f"missing labels: no array 'labels' (N,); found {sorted(arrays)}")
    unexpected = sorted(set(arrays) - set(_SIMPLE_KEYS))
    if unexpected:
        raise DataFormatError(
            path, f"unexpected arrays {unexpected} in the simple layout; allowed: {list(_SIMPLE_KEYS)}"
        )
    w = arrays["waveforms"]
    if len(w.shape) != 2:
        raise DataFormatError(path, f"waveforms must be 2-D (N, T), got shape {tuple(w.shape)}")
    _float_dtype_ok(path, w.dtype, "waveforms")
    n, t = w.shape
    if n == 0 or t == 0:
        raise DataFormatError(path, f"empty file: waveforms has shape {tuple(w.shape)} (N and T must be > 0)")
    labels = np.asarray(arrays["labels"][()])
    if labels.shape != (n,):
        raise DataFormatError(path, f"labels must have shape (N,) = ({n},), got {labels.shape}")
    label_idx = _to_indices(path, labels, classes, "labels", allow_unknown=False)
    if "locations" in arrays:
        locs = np.asarray(arrays["locations"][()])
        if locs.shape != (n,):
            raise DataFormatError(path, f"locations must have shape (N,) = ({n},), got {locs.shape}")
        loc_idx = _to_indices(path, locs, locations, "locations", allow_unknown=True)
    else:
        loc_idx = np.full(n, -1, dtype=np.int64)
    return np.asarray(w[()]), label_idx, loc_idx


# ---------------------------------------------------------------------- channel layout


@dataclass(frozen=True)
class _Interval:
    """One labels.csv row: class `label` during samples [start, end) of `file`."""

    file: str
    start: int
    end: int
    label: int
    row: int  # line number in labels.csv, for error messages


def _read_labels_csv(csv_path: Path, file_names: set[str], classes: tuple[str, ...]) -> dict[str, list[_Interval]]:
    """Parse labels.csv into the intervals of each file, sorted by start."""
    by_file: dict[str, list[_Interval]] = {}
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:  # -sig: tolerate Excel's BOM
        reader = csv.DictReader(fh)
        header = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in _CSV_COLUMNS if c not in header]
        if missing:
            raise DataFormatError(
                csv_path, f"missing columns {missing}: the header must contain {list(_CSV_COLUMNS)}, got {header}"
            )
        reader.fieldnames = header  # stripped, so ' start' still finds its column
        for record in reader:
            row = reader.line_num
            iv = _parse_interval(csv_path, row, record, classes)
            if iv.file not in file_names:
                raise DataFormatError(
                    csv_path, f"row {row} names file {iv.file!r}, which does not exist in {csv_path.parent}"
                )
            by_file.setdefault(iv.file, []).append(iv)
    for intervals in by_file.values():
        intervals.sort(key=lambda iv: iv.start)
        for a, b in zip(intervals, intervals[1:]):
            if b.start < a.end:
                # Overlaps would label the same samples twice (or with two classes).
                raise DataFormatError(
                    csv_path,
                    f"rows {a.row} and {b.row} overlap in file {a.file!r}: "
                    f"[{a.start}, {a.end}) and [{b.start}, {b.end}); intervals of one file must be disjoint",
                )
    return by_file


def _parse_interval(csv_path: Path, row: int, record: dict[str, Any], classes: tuple[str, ...]) -> _Interval:
    """Validate one labels.csv row."""
    values = {}
    for column in _CSV_COLUMNS:
        text = record.get(column)
        if text is None or not str(text).strip():
            raise DataFormatError(csv_path, f"row {row}: empty value in column {column!r}")
        values[column] = str(text).strip()
    bounds = {}
    for column in ("start", "end"):
        if not re.fullmatch(r"[0-9]+", values[column]):
            raise DataFormatError(
                csv_path, f"row {row}: {column} must be a non-negative integer sample index, got {values[column]!r}"
            )
        bounds[column] = int(values[column])
    if bounds["start"] >= bounds["end"]:
        raise DataFormatError(
            csv_path,
            f"row {row}: start must be < end (end is exclusive), got start={bounds['start']}, end={bounds['end']}",
        )
    if values["label"] not in classes:
        raise DataFormatError(csv_path, f"row {row}: unknown class name {values['label']!r}; known: {list(classes)}")
    return _Interval(values["file"], bounds["start"], bounds["end"], classes.index(values["label"]), row)


def _load_channel_layout(
    folder: Path,
    files: list[Path],
    classes: tuple[str, ...],
    locations: tuple[str, ...],
    window: int,
    hop: int,
) -> Recordings:
    """Read a folder of multi-channel files labelled by intervals in labels.csv."""
    csv_path = folder / LABELS_CSV
    intervals = _read_labels_csv(csv_path, {p.name for p in files}, classes)
    parts = _Parts.empty()
    rate_ref: tuple[Path, float] | None = None
    for path in files:
        with _open_arrays(path) as (arrays, attrs):
            # Every file is validated, even one without labelled intervals.
            channels = _check_channels(path, arrays)
            rate_ref = _common_rate(path, _read_sample_rate(path, arrays, attrs), rate_ref)
            file_intervals = intervals.get(path.name, [])
            for name, data in channels:
                loc = _location_of(name, locations)
                for event, iv in enumerate(file_intervals):  # one event per interval, heard by every channel
                    _add_interval(parts, path, csv_path, name, data, iv, loc, window, hop, event)
            parts.n_events += len(file_intervals)
    if not parts.waveforms:
        raise DataFormatError(csv_path, "zero windows: labels.csv has no rows, so no file is labelled")
    assert rate_ref is not None
    return parts.join(rate_ref[1])


def _check_channels(path: Path, arrays: dict[str, Any]) -> list[tuple[str, Any]]:
    """The file's channels (name, 1-D float array-like) sorted by name, all of one length."""
    channels = sorted((name, a) for name, a in arrays.items() if name != "sample_rate")
    if not channels:
        raise DataFormatError(path, "empty file: it holds no channel arrays (one 1-D array per sensor channel)")
    for name, data in channels:
        if len(data.shape) != 1:
            raise DataFormatError(
                path, f"channel {name!r} must be 1-D in the channel layout, got shape {tuple(data.shape)}"
            )
        _float_dtype_ok(path, data.dtype, f"channel {name!r}")
    lengths = {name: int(data.shape[0]) for name, data in channels}
    if len(set(lengths.values())) != 1:
        raise DataFormatError(path, f"all channels must have the same length, got {lengths}")
    if next(iter(lengths.values())) == 0:
        raise DataFormatError(path, "empty file: its channels have 0 samples")
    return channels


def _add_interval(
    parts: _Parts,
    path: Path,
    csv_path: Path,
    name: str,
    data: Any,
    iv: _Interval,
    loc: int,
    window: int,
    hop: int,
    event: int,
) -> None:
    """Cut the windows of one labelled interval of one channel into `parts`."""
    length = int(data.shape[0])
    where = f"{csv_path.name} row {iv.row}: interval [{iv.start}, {iv.end})"
    if iv.end > length:
        raise DataFormatError(path, f"{where} lies outside the recording of {length} samples (end must be <= {length})")
    if iv.end - iv.start < window:
        # No window would fit: the labelled samples would be silently lost.
        raise DataFormatError(
            path, f"{where} has {iv.end - iv.start} samples, fewer than window={window}: zero windows"
        )
    segment = np.asarray(data[iv.start : iv.end])  # h5py reads just this slice
    cut = _cut(path, segment[None, :], window, hop, [f"channel {name!r}"], offset=iv.start)
    parts.add(path, cut, np.full(len(cut), iv.label), np.full(len(cut), loc), np.full(len(cut), event))


def _describe(a: Any) -> str:
    """Short description of an array-ish value for error messages."""
    if isinstance(a, np.ndarray):
        return f"ndarray of shape {a.shape} and dtype {a.dtype}"
    return type(a).__name__
