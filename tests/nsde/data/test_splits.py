"""nsde.data splits: no group in two splits (synthetic events, recordings), location shift."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from nsde.data import DataConfig, SynthConfig, data_config_from_dict, prepare, spectrogram, split_waveforms
from nsde.data.dataset import UNUSED, grouped_split, location_shift_split, stratified_split
from nsde.data.synthetic import clean_waveform, synthesize

# Short waveforms and a small STFT: the splits are the subject, not the spectrograms.
SMALL = dict(image_size=8, synth=SynthConfig(samples=2048), n_fft=256, hop=64)
RATE = 800_000.0


def _assert_no_group_in_two_splits(group: np.ndarray, split_of: np.ndarray) -> None:
    for g in np.unique(group):
        assert len(np.unique(split_of[group == g])) == 1, f"group {g} is in splits {np.unique(split_of[group == g])}"


def _per_class_counts(y: np.ndarray, split_of: np.ndarray, split: int) -> list[int]:
    return np.bincount(y[split_of == split], minlength=int(y.max()) + 1).tolist()


# ----------------------------------------------------------------- synthetic events


@pytest.mark.parametrize("realism", [False, True])
def test_one_event_recorded_at_every_location(tmp_path, realism):
    small = dict(SMALL, synth=SynthConfig(samples=2048, realism=realism))
    cfg = DataConfig(examples_per_class=6, locations=(0, 5), events_at_all_locations=True, seed=3, **small)
    data = prepare(dataclasses.replace(cfg, cache_dir=str(tmp_path)), progress=False)
    assert len(data.y) == 96 and len(np.unique(data.group)) == 48  # 3 events per class, each at 2 locations
    for g in np.unique(data.group):
        rows = data.group == g
        assert sorted(data.location[rows].tolist()) == [0, 5] and len(np.unique(data.y[rows])) == 1
    _assert_no_group_in_two_splits(data.group, data.split_of)
    for split, per_class in ((0, 2), (1, 2), (2, 2)):  # one event (two examples) per class in val and test
        assert _per_class_counts(data.y, data.split_of, split) == [per_class] * 16
    assert np.array_equal(np.load(data.path / "group.npy"), data.group)
    assert data_config_from_dict(data.meta["config"]) == dataclasses.replace(cfg, cache_dir=str(tmp_path))
    # The SNR sweep re-synthesises whole events per batch: the same spectrograms come back.
    waves, _ = split_waveforms(data, "test")
    images = spectrogram(np.array(waves), cfg.stft(cfg.synth.sample_rate)).numpy().astype(np.float16)
    assert np.array_equal(images, np.asarray(data.x[data.indices("test")]))


def test_rows_of_one_event_share_their_source():
    cfg = SynthConfig(samples=2048)
    labels, locations = np.array([1, 1, 1, 1]), np.zeros(4, dtype=int)  # squares at the injection point
    waves = synthesize(labels, locations, cfg, np.random.default_rng(0), events=np.array([7, 7, 2, 2]))
    corr = torch.corrcoef(waves.float())
    assert corr[0, 1] > 0.99 and corr[2, 3] > 0.99  # one source, each row its own 25-40 dB noise
    assert not torch.equal(waves[0], waves[1])
    assert abs(corr[0, 2]) < 0.5  # another event: another fundamental and phase
    with pytest.raises(ValueError, match="rows of one event must have one label"):
        synthesize(np.array([0, 1]), np.zeros(2, dtype=int), cfg, np.random.default_rng(0), events=np.array([0, 0]))


def test_events_need_examples_per_class_a_multiple_of_the_locations():
    with pytest.raises(ValueError, match=r"multiple of len\(locations\).*examples_per_class=7, len\(locations\)=6"):
        DataConfig(examples_per_class=7, events_at_all_locations=True)
    with pytest.raises(ValueError, match="`events_at_all_locations` is for synthetic data"):
        DataConfig(source="recordings", path="x", events_at_all_locations=True)
    with pytest.raises(ValueError, match="group_by"):
        DataConfig(group_by="file")  # recordings only
    with pytest.raises(ValueError, match="unknown group_by 'session'"):
        DataConfig(source="recordings", path="x", group_by="session")


def test_every_class_needs_three_groups():
    y = np.repeat([0, 1], 6)
    group = np.array([0, 0, 0, 1, 1, 1, 2, 3, 4, 5, 6, 7])  # class 0 in 2 groups
    with pytest.raises(ValueError, match=r"needs >= 3 groups.*class 0 is the main class of 2 groups"):
        grouped_split(y, group, (0.7, 0.15, 0.15), seed=0)


def test_grouped_split_with_one_example_per_group_is_the_stratified_split():
    y = np.repeat(np.arange(4), 9)
    fractions = (0.7, 0.15, 0.15)
    assert np.array_equal(grouped_split(y, np.arange(len(y)), fractions, 5), stratified_split(y, fractions, 5))


# ----------------------------------------------------------------------- recordings


def _tone(i: int, t: int = 1024) -> np.ndarray:
    return 0.5 * clean_waveform("sine", 5_000.0 * (i + 1), SynthConfig(samples=t)).numpy()


def _recordings_config(folder: Path, tmp_path: Path, **kwargs) -> DataConfig:
    return DataConfig(
        source="recordings", path=str(folder), class_names=("a", "b"), cache_dir=str(tmp_path / "cache"),
        image_size=8, n_fft=256, hop=64, **kwargs,
    )


def test_recordings_grouped_by_file(tmp_path):
    folder = tmp_path / "rec"
    folder.mkdir()
    for f in range(8):  # 8 files of one class each (4 per class), 3 rows each
        np.savez(folder / f"f{f}.npz", waveforms=np.stack([_tone(f + r) for r in range(3)]), sample_rate=RATE,
                 labels=np.full(3, f % 2))
    data = prepare(_recordings_config(folder, tmp_path, group_by="file"), progress=False)
    assert len(np.unique(data.group)) == 8 and np.bincount(data.group).tolist() == [3] * 8
    _assert_no_group_in_two_splits(data.group, data.split_of)
    for split, per_class in ((0, 6), (1, 3), (2, 3)):  # 4 files per class: 2 train, 1 val, 1 test
        assert _per_class_counts(data.y, data.split_of, split) == [per_class] * 2
    ungrouped = prepare(_recordings_config(folder, tmp_path), progress=False)
    assert np.array_equal(ungrouped.group, np.arange(24))  # without group_by each window is its own


def test_recordings_grouped_by_event_in_the_channel_layout(tmp_path):
    folder = tmp_path / "rec"
    folder.mkdir()
    np.savez(folder / "run.npz", signal_injection_ct=np.concatenate([_tone(i, 2048) for i in range(12)]),
             main_power_ct=0.1 * np.concatenate([_tone(i, 2048) for i in range(12)]), sample_rate=RATE)
    rows = [f"run.npz,{i * 2048},{(i + 1) * 2048},{'ab'[i % 2]}" for i in range(12)]  # 6 intervals per class
    (folder / "labels.csv").write_text("\n".join(["file,start,end,label", *rows]) + "\n")
    data = prepare(_recordings_config(folder, tmp_path, group_by="event", window=1024), progress=False)
    # 12 intervals x 2 channels x 2 windows; an event is an interval, heard on both channels.
    assert len(data.y) == 48 and len(np.unique(data.group)) == 12
    for g in np.unique(data.group):
        assert sorted(data.location[data.group == g].tolist()) == [0, 0, 5, 5]
    _assert_no_group_in_two_splits(data.group, data.split_of)
    for split, per_class in ((0, 16), (1, 4), (2, 4)):  # 6 events per class: 4 train, 1 val, 1 test
        assert _per_class_counts(data.y, data.split_of, split) == [per_class] * 2


def test_recordings_grouped_by_their_groups_array_across_files(tmp_path):
    folder = tmp_path / "rec"
    folder.mkdir()
    rows = np.arange(12)
    sessions = np.array([f"s{r // 2}" for r in rows])  # 6 sessions of 2 rows, 3 per class, in both files
    for f in range(2):
        np.savez(folder / f"f{f}.npz", waveforms=np.stack([_tone(r) for r in rows]), sample_rate=RATE,
                 labels=(rows // 2) % 2, groups=sessions)
    data = prepare(_recordings_config(folder, tmp_path, group_by="groups"), progress=False)
    assert len(np.unique(data.group)) == 6
    assert np.array_equal(data.group[:12], data.group[12:])  # one session name is one group across files
    _assert_no_group_in_two_splits(data.group, data.split_of)
    for split in (0, 1, 2):  # 3 sessions (4 windows each) per class: one per split
        assert _per_class_counts(data.y, data.split_of, split) == [4, 4]


def test_group_by_groups_needs_the_array(tmp_path):
    folder = tmp_path / "rec"
    folder.mkdir()
    np.savez(folder / "f0.npz", waveforms=np.stack([_tone(r) for r in range(6)]), sample_rate=RATE,
             labels=np.arange(6) % 2)
    with pytest.raises(ValueError, match="group_by='groups' needs a `groups`"):
        prepare(_recordings_config(folder, tmp_path, group_by="groups"), progress=False)


# ------------------------------------------------------------------- location shift


def test_location_shift_trains_near_and_tests_far(tmp_path):
    cfg = DataConfig(examples_per_class=6, train_locations=(0, 1), **SMALL)
    data = prepare(dataclasses.replace(cfg, cache_dir=str(tmp_path)), progress=False)
    near = np.isin(data.location, (0, 1))
    assert set(data.split_of[near].tolist()) == {0, 1} and (data.split_of[~near] == 2).all()
    # 2 near examples per class: renormalised fractions 0.82 / 0.18 give 1 train and 1 val (>= 1 each).
    assert _per_class_counts(data.y, data.split_of, 0) == [1] * 16
    assert _per_class_counts(data.y, data.split_of, 1) == [1] * 16
    assert data.meta["counts"] == {"train": 16, "val": 16, "test": 64}


def test_location_shift_fractions_are_renormalised():
    y = np.repeat([0, 1], 40)
    location = np.tile([0, 1, 2, 3], 20)
    split_of = location_shift_split(y, location, None, (0, 1), (0.6, 0.2, 0.2), seed=0)
    # 20 near examples per class: val round(0.2 / 0.8 * 20) = 5, train 15.
    assert _per_class_counts(y, split_of, 0) == [15, 15] and _per_class_counts(y, split_of, 1) == [5, 5]
    assert (split_of[location >= 2] == 2).all()


def test_location_shift_over_groups_heard_everywhere_keeps_groups_apart():
    # 30 events per class, each heard at locations 0, 1, 2: the near side goes to train/val, the far to test.
    y = np.repeat([0, 1], 90)
    location = np.tile([0, 1, 2], 60)
    group = np.repeat(np.arange(60), 3)
    split_of = location_shift_split(y, location, group, (0,), (0.7, 0.15, 0.15), seed=1)
    used = split_of != UNUSED
    _assert_no_group_in_two_splits(group[used], split_of[used])
    assert set(location[(split_of == 0) | (split_of == 1)].tolist()) == {0}
    assert set(location[split_of == 2].tolist()) == {1, 2}
    assert all(n > 0 for s in (0, 1, 2) for n in _per_class_counts(y, split_of, s))


@pytest.mark.parametrize("train", [(), (6,), (0, 0), tuple(range(6))])
def test_bad_train_locations_are_rejected(train):
    with pytest.raises(ValueError, match=r"`train_locations` must be a non-empty proper subset of `locations`"):
        DataConfig(train_locations=train)
