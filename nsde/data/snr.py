"""Data for an SNR sweep: white Gaussian noise added to the waveforms, before the STFT.

The robustness sweep elsewhere adds noise to the dB image; this module raises the noise
floor where a sensor would see it, in the signal. For a split of a prepared data set it
recovers the waveforms as the sensors recorded them (re-synthesising the split's batches
exactly, or re-reading the recordings), adds white Gaussian noise over the full band at

    SNR = 10 log10(P_ref / P_noise)   i.e.   P_noise = P_ref / 10^(snr_db / 10),

and runs the same spectrogram pipeline. P_ref is the power of the injected signal as it
arrives at the sensor (after gain and response, before any noise) for synthetic data, and
the recorded window's power (signal and noise alike) for recordings. The noise of example
i is seeded by (data seed, i, snr_db), so a row does not depend on the split or on which
rows are asked for. Everything is cached under `data.path / "snr"`, each file or folder
written whole and renamed into place (atomic on POSIX), like `nsde.data.dataset.prepare`.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from nsde.data.dataset import (
    _BATCH,
    DATA_VERSION,
    DataConfig,
    SpectrogramData,
    _read_recordings,
    _synthesise_batch,
    _synthetic_batches,
    data_config_from_dict,
    discard_folder,
    verify_folder,
    write_folder_atomically,
)
from nsde.data.spectrogram import spectrogram

__all__ = ["SNR_LEVELS_DB", "snr_spectrograms", "split_waveforms", "waveform_sample_rate", "add_white_noise"]

SNR_LEVELS_DB: tuple[float, ...] = (20.0, 10.0, 5.0, 0.0, -5.0, -10.0)
_NOISE_STREAM = 2  # seeds [seed, 2, index, snr]: apart from the split's [seed, 1]


def snr_spectrograms(data: SpectrogramData, split: str, snr_db: float, *, progress: bool = False) -> np.ndarray:
    """(N, 1, S, S) float32 in [0, 1]: `split`'s examples (rows in the order of data.indices(split))
    with white Gaussian noise added to their waveforms before the STFT at `snr_db`, then the same pipeline.

    Values are float16-exact, as `data.x`. Cached per (split, snr_db) under `data.path / "snr"`.

    Raises:
        ValueError: unknown `split`, or `snr_db` not a finite number.
    """
    snr_db = _check_snr(snr_db)
    index = data.indices(split)  # validates split
    path = _cache_folder(data) / f"{split}_snr{snr_db:+}dB.npy"
    if path.exists():
        try:
            x = np.load(path)
            if x.shape == (len(index), 1, data.x.shape[-2], data.x.shape[-1]):
                return x.astype(np.float32)
            problem = f"shape {x.shape}, expected {(len(index), 1, *data.x.shape[-2:])}"
        except (ValueError, OSError, EOFError) as err:  # a truncated .npy: numpy cannot read it whole
            problem = str(err).splitlines()[0]
        print(f"SNR cache {path} is corrupt ({problem}); rebuilding it", file=sys.stderr, flush=True)
        path.unlink(missing_ok=True)
    waves, power = split_waveforms(data, split, progress=progress)
    x = _noisy_spectrograms(data, split, waves, power, index, snr_db, progress)
    _save_atomically(path, x)
    return np.load(path).astype(np.float32)


def split_waveforms(data: SpectrogramData, split: str, *, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(N, T) float32 waveforms as the sensors recorded them and (N,) reference powers.

    Rows in the order of data.indices(split); the waveforms are memory-mapped (read-only).
    Reference power (float64): synthetic, the injected signal's power at the sensor (after
    gain and response, before any noise); recordings, the window's power.
    """
    index = data.indices(split)  # validates split
    folder = _cache_folder(data) / f"{split}_waveforms"
    problem = verify_folder(folder, checksums=True) if (folder / "meta.json").exists() else None
    if problem:
        print(f"waveform cache {folder} is corrupt ({problem}); rebuilding it", file=sys.stderr, flush=True)
        discard_folder(folder)
    if not (folder / "meta.json").exists():
        waves, power, sample_rate = _recover(data, index, progress)
        write_folder_atomically(folder, {"waveforms.npy": waves, "power.npy": power}, {"sample_rate": sample_rate})
    return np.load(folder / "waveforms.npy", mmap_mode="r"), np.load(folder / "power.npy")


def waveform_sample_rate(data: SpectrogramData, split: str) -> float:
    """The sample rate of `split_waveforms(data, split)` (which it caches first if need be)."""
    if not (_cache_folder(data) / f"{split}_waveforms" / "meta.json").exists():
        split_waveforms(data, split)
    return json.loads((_cache_folder(data) / f"{split}_waveforms" / "meta.json").read_text())["sample_rate"]


def add_white_noise(
    waves: np.ndarray, power: np.ndarray, snr_db: float, *, seed: int, index: np.ndarray
) -> np.ndarray:
    """(B, T) waveforms + white Gaussian noise of power `power / 10^(snr_db / 10)` per row: (B, T) float32.

    Row b's noise is drawn from its own generator seeded by (seed, index[b], snr_db).
    """
    sigma = np.sqrt(np.asarray(power, dtype=np.float64) / 10 ** (snr_db / 10)).astype(np.float32)  # (B,)
    t = waves.shape[1]
    noise = np.stack([_noise_rng(seed, int(i), snr_db).standard_normal(t, dtype=np.float32) for i in index])
    return np.asarray(waves, dtype=np.float32) + sigma[:, None] * noise  # (B, T)


# --------------------------------------------------------------------------- internals


def _check_snr(snr_db: float) -> float:
    real = isinstance(snr_db, (int, float, np.integer, np.floating)) and not isinstance(snr_db, (bool, np.bool_))
    if not real or not math.isfinite(snr_db):
        raise ValueError(f"`snr_db` must be a finite number of dB, but got snr_db={snr_db!r}")
    return float(snr_db) + 0.0  # + 0.0: -0.0 and 0.0 are one level (one seed, one file)


def _noise_rng(seed: int, index: int, snr_db: float) -> np.random.Generator:
    snr_bits = int(np.float64(snr_db).view(np.uint64))  # the exact float as a non-negative int
    return np.random.default_rng([seed, _NOISE_STREAM, index, snr_bits])


def _cache_folder(data: SpectrogramData) -> Path:
    folder = data.path / "snr"
    folder.mkdir(exist_ok=True)
    return folder


def _recover(data: SpectrogramData, index: np.ndarray, progress: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """The waveforms, reference powers and sample rate of the examples `index`."""
    cfg = data_config_from_dict(data.meta["config"])
    if cfg.source == "synthetic":
        return (*_resynthesise(data, cfg, index, progress), cfg.synth.sample_rate)
    return _reread(data, cfg, index)


def _resynthesise(
    data: SpectrogramData, cfg: DataConfig, index: np.ndarray, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Re-run every batch that holds an example of `index`; keep those examples."""
    if data.meta.get("version") != DATA_VERSION:
        raise ValueError(
            f"re-synthesising needs the generator that built the data (version {DATA_VERSION}), "
            f"but {data.path} has version {data.meta.get('version')}; prepare it again"
        )
    row_of = np.full(len(data.y), -1)
    row_of[index] = np.arange(len(index))  # example -> its row in the output
    waves = np.empty((len(index), cfg.synth.samples), dtype=np.float32)
    power = np.empty(len(index), dtype=np.float64)
    bar = tqdm(total=len(index), desc="re-synthesising waveforms", unit="ex", disable=not progress)
    for sl, seed in _synthetic_batches(cfg, len(data.y)):
        keep = np.flatnonzero(row_of[sl] >= 0)  # positions within the batch
        if not len(keep):
            continue
        group = data.group[sl] if cfg.events_at_all_locations else None
        w, p = _synthesise_batch(cfg, data.y[sl], data.location[sl], group, seed, return_signal_power=True)
        waves[row_of[sl][keep]] = w[keep].numpy()
        power[row_of[sl][keep]] = p[keep].double().numpy()
        bar.update(len(keep))
    bar.close()
    return waves, power


def _reread(data: SpectrogramData, cfg: DataConfig, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    rec = _read_recordings(cfg)
    if len(rec.labels) != len(data.y) or not np.array_equal(rec.labels, data.y):
        raise ValueError(
            f"the recordings at {cfg.path} no longer match the prepared data set {data.path} "
            f"({len(rec.labels)} windows now, {len(data.y)} then, or other labels); prepare it again"
        )
    waves = rec.waveforms[index]
    return waves, np.mean(waves.astype(np.float64) ** 2, axis=1), rec.sample_rate  # (N, T) -> (N,)


def _noisy_spectrograms(
    data: SpectrogramData,
    split: str,
    waves: np.ndarray,
    power: np.ndarray,
    index: np.ndarray,
    snr_db: float,
    progress: bool,
) -> np.ndarray:
    cfg = data_config_from_dict(data.meta["config"])
    stft = cfg.stft(waveform_sample_rate(data, split))
    x = np.empty((len(index), 1, cfg.image_size, cfg.image_size), dtype=np.float16)
    for start in tqdm(range(0, len(index), _BATCH), desc=f"{split} at {snr_db:+} dB", disable=not progress):
        sl = slice(start, start + _BATCH)
        noisy = add_white_noise(waves[sl], power[sl], snr_db, seed=cfg.seed, index=index[sl])
        x[sl] = spectrogram(noisy, stft).numpy()
    return x


def _save_atomically(path: Path, array: np.ndarray) -> None:
    """np.save to a private temporary file, then rename it into place (a concurrent writer writes the same)."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
