"""A truncated or altered cache file is detected, reported in one line and rebuilt; an unreadable
checkpoint is named on --resume and a search trial restarts from scratch, never silently."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from nsde.data import PRESETS, load, prepare
from nsde.data.dataset import verify_folder
from nsde.data.snr import snr_spectrograms


@pytest.fixture
def tiny(tmp_path):
    cfg = dataclasses.replace(PRESETS["tiny"], examples_per_class=4, cache_dir=str(tmp_path / "cache"))
    return cfg, prepare(cfg, progress=False)


def test_a_truncated_array_is_refused_by_load_and_rebuilt_by_prepare(tiny, capsys):
    cfg, data = tiny
    x, group = np.array(data.x), np.array(data.group)
    path = data.path / "group.npy"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # cut in half, as a crash would
    with pytest.raises(ValueError, match=r"group.npy has \d+ bytes, \d+ were written.*rebuilds it"):
        load(data.path)
    capsys.readouterr()
    again = prepare(cfg, progress=False)
    assert "is corrupt (group.npy has" in capsys.readouterr().err
    assert np.array_equal(again.group, group) and np.array_equal(np.asarray(again.x), x)
    assert verify_folder(again.path, checksums=True) is None


def test_an_altered_byte_is_caught_by_the_checksum(tiny, capsys):
    cfg, data = tiny
    path = data.path / "x.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF  # same size, other content
    path.write_bytes(bytes(raw))
    assert verify_folder(data.path) is None  # the size is right: a load goes on
    assert "sha256" in verify_folder(data.path, checksums=True)
    capsys.readouterr()
    prepare(cfg, progress=False)
    assert "x.npy's sha256 is not the one written" in capsys.readouterr().err


def test_a_cache_written_before_the_record_is_taken_as_it_is(tiny):
    _, data = tiny
    meta = json.loads((data.path / "meta.json").read_text())
    meta.pop("files")
    (data.path / "meta.json").write_text(json.dumps(meta))
    assert verify_folder(data.path, checksums=True) is None and len(load(data.path).y) == len(data.y)


def test_a_truncated_snr_cache_is_rebuilt(tiny, capsys):
    _, data = tiny
    first = snr_spectrograms(data, "val", 10.0)
    path = data.path / "snr" / "val_snr+10.0dB.npy"
    path.write_bytes(path.read_bytes()[:200])
    capsys.readouterr()
    again = snr_spectrograms(data, "val", 10.0)
    assert "SNR cache" in capsys.readouterr().err and np.array_equal(first, again)


def test_an_unreadable_checkpoint_is_named_on_resume_and_a_trial_restarts_from_scratch(tmp_path, capsys):
    from ray import tune

    from nsde.train import read_checkpoint
    from nsde.train.__main__ import main as train_main
    from search.trainable import RESTARTED_FILE, restart_metrics, restore_checkpoint

    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read .*remove it to train from scratch"):
        read_checkpoint(out / "checkpoint.pt")
    assert train_main(["--preset", "tiny", "--cache-dir", str(tmp_path / "cache"), "--sigma", "0", "--epochs", "1",
                       "--out", str(out), "--resume", "--quiet"]) == 2
    assert "checkpoint.pt cannot be read" in capsys.readouterr().err
    # a search trial given a corrupt checkpoint (by a retry or --resume) trains again from epoch 1, and says so
    torch.save({"epoch": 1}, tmp_path / "other.pt")  # readable, but no checkpoint of nsde.train
    work = tmp_path / "work"
    work.mkdir()
    assert restore_checkpoint(work, tune.Checkpoint.from_directory(str(out))) is None
    assert "restarts from scratch" in capsys.readouterr().err
    assert (work / RESTARTED_FILE).exists() and not (work / "checkpoint.pt").exists()
    assert restart_metrics(work) == {"restarted_from_scratch": 1.0}
    with pytest.raises(ValueError, match="is not a checkpoint of nsde.train"):
        read_checkpoint(tmp_path / "other.pt")
