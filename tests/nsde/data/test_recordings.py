"""nsde.data.recordings: real .npz / .h5 files in tmp_path -> validated, windowed recordings."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from nsde.data.recordings import DataFormatError, Recordings, load_recordings

CLASSES = ("normal", "fault_a", "fault_b")
# "transformer" and "transformer_frp2" both prefix "transformer_frp2_ct_480": the longer wins.
LOCATIONS = ("transformer", "transformer_frp2", "outlet_strip", "signal_injection", "main_power")
RATE = 800_000.0


# ------------------------------------------------------------------------------ helpers


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _h5(path: Path, datasets: dict, attrs: dict | None = None) -> Path:
    with h5py.File(path, "w") as f:
        for name, data in datasets.items():
            f.create_dataset(name, data=data)
        for name, value in (attrs or {}).items():
            f.attrs[name] = value
    return path


def _csv(folder: Path, rows: list[str], header: str = "file,start,end,label") -> Path:
    path = folder / "labels.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _load(path: Path, **kwargs) -> Recordings:
    return load_recordings(path, class_names=CLASSES, location_names=LOCATIONS, **kwargs)


def _simple(path: Path, n: int = 2, t: int = 8, **overrides) -> Path:
    """A valid simple-layout .npz, with any array replaced (or removed with None)."""
    arrays = {
        "waveforms": np.arange(n * t, dtype=np.float64).reshape(n, t),
        "sample_rate": np.float64(RATE),
        "labels": np.arange(n) % len(CLASSES),
    }
    arrays.update(overrides)
    return _npz(path, **{k: v for k, v in arrays.items() if v is not None})


# ------------------------------------------------------------------------ simple layout


def test_simple_npz_round_trip_with_int_labels(tmp_path):
    rng = np.random.default_rng(0)
    waves = rng.standard_normal((3, 16))  # float64 in the file, float32 out
    path = _npz(tmp_path / "a.npz", waveforms=waves, sample_rate=np.float64(RATE), labels=np.array([2, 0, 1]))

    for rec in (_load(tmp_path), _load(path)):  # a folder and a single file read alike
        assert rec.waveforms.dtype == np.float32 and rec.waveforms.shape == (3, 16)
        np.testing.assert_array_equal(rec.waveforms, waves.astype(np.float32))
        assert rec.sample_rate == RATE and isinstance(rec.sample_rate, float)
        assert rec.labels.dtype == np.int64 and rec.labels.tolist() == [2, 0, 1]
        assert rec.locations.dtype == np.int64 and rec.locations.tolist() == [-1, -1, -1]
        assert rec.sources == (str(path),) * 3
        assert len(rec) == 3


def test_simple_h5_round_trip_with_names_and_locations(tmp_path):
    waves = np.arange(24, dtype=np.float32).reshape(3, 8)
    path = _h5(
        tmp_path / "rec.h5",
        {
            "waveforms": waves,
            "labels": np.array(["fault_b", "normal", "fault_a"], dtype=h5py.string_dtype()),  # variable-length str
            "locations": np.array([b"main_power", b"transformer", b"outlet_strip"]),  # fixed-length bytes
        },
        attrs={"sample_rate": 44_100},  # an int root attribute is accepted as the rate
    )
    rec = _load(path)
    np.testing.assert_array_equal(rec.waveforms, waves)
    assert rec.sample_rate == 44_100.0
    assert rec.labels.tolist() == [2, 0, 1]
    assert rec.locations.tolist() == [4, 0, 2]
    assert rec.sources == (str(path),) * 3


def test_simple_locations_by_index_allow_minus_one(tmp_path):
    _simple(tmp_path / "a.npz", n=3, locations=np.array([-1, 0, 4]))
    assert _load(tmp_path).locations.tolist() == [-1, 0, 4]


def test_simple_windowing_cuts_each_row(tmp_path):
    rows = np.arange(20, dtype=np.float64).reshape(2, 10)
    _simple(tmp_path / "a.npz", waveforms=rows, labels=np.array([1, 2]), locations=np.array([3, -1]))

    rec = _load(tmp_path, window=4)  # hop = window: starts 0, 4 (8 + 4 > 10)
    np.testing.assert_array_equal(rec.waveforms, [[0, 1, 2, 3], [4, 5, 6, 7], [10, 11, 12, 13], [14, 15, 16, 17]])
    assert rec.labels.tolist() == [1, 1, 2, 2]
    assert rec.locations.tolist() == [3, 3, -1, -1]

    rec = _load(tmp_path, window=4, hop=3)  # starts 0, 3, 6
    np.testing.assert_array_equal(rec.waveforms[:3], [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])
    np.testing.assert_array_equal(rec.waveforms[3:], rec.waveforms[:3] + 10)
    assert rec.labels.tolist() == [1, 1, 1, 2, 2, 2]

    assert _load(tmp_path, window=10).waveforms.shape == (2, 10)  # T == window: one window per row


def test_simple_window_lets_files_differ_in_length(tmp_path):
    _simple(tmp_path / "a.npz", t=8)
    _simple(tmp_path / "b.npz", t=12)
    assert _load(tmp_path, window=4).waveforms.shape == (2 * 2 + 2 * 3, 4)
    with pytest.raises(DataFormatError, match=r"b\.npz.*same row length.*T=12.*a\.npz.*T=8"):
        _load(tmp_path)


def test_simple_folder_order_is_by_name_and_deterministic(tmp_path):
    _simple(tmp_path / "b.npz", n=1, labels=np.array([1]))
    _h5(tmp_path / "a.h5", {"waveforms": np.zeros((1, 8)), "labels": [2], "sample_rate": RATE})
    (tmp_path / ".DS_Store").write_text("ignored: hidden")
    first, second = _load(tmp_path), _load(tmp_path)
    assert [Path(s).name for s in first.sources] == ["a.h5", "b.npz"]
    assert first.labels.tolist() == [2, 1]
    np.testing.assert_array_equal(first.waveforms, second.waveforms)
    assert first.sources == second.sources


# ----------------------------------------------------------------------- channel layout

REC1_CHANNELS = (  # dataset names as reported for the ORNL harmonic-signals recordings
    "main_power_frp2_rogowski_480",
    "mystery_sensor_7",  # no location prefixes it -> -1
    "signal_injection_frp2_ct_120",
    "transformer_frp2_ct_480",
    "transformer_frp2_rogowski_240",
)


def _channel_folder(tmp_path: Path) -> Path:
    """rec1.h5 (5 channels, 100 samples), rec2.npz (1 channel, 20), rec3.h5 (unlabelled)."""
    # Channel c holds 1000 * c + sample index, so every window says where it was cut from.
    _h5(
        tmp_path / "rec1.h5",
        {name: 1000.0 * c + np.arange(100) for c, name in enumerate(REC1_CHANNELS)},
        attrs={"sample_rate": RATE},
    )
    _npz(tmp_path / "rec2.npz", outlet_strip_frp1_ct_120=np.arange(20, dtype=np.float32), sample_rate=RATE)
    _h5(tmp_path / "rec3.h5", {"transformer_frp2_ct_480": np.full(30, np.nan), "sample_rate": RATE})
    # Rows out of order on purpose: intervals are read back sorted by start.
    _csv(tmp_path, ["rec1.h5,50,61,normal", "rec2.npz,0,8,fault_b", "rec1.h5,10,30,fault_a"])
    return tmp_path


def _expected_channel_windows(window: int, hop: int) -> tuple[list[list[float]], list[int], list[int], list[str]]:
    """The windows worked out by hand: file -> channel (sorted) -> interval (by start) -> window."""
    loc_of = {
        "main_power_frp2_rogowski_480": 4,
        "mystery_sensor_7": -1,
        "signal_injection_frp2_ct_120": 3,
        "transformer_frp2_ct_480": 1,  # "transformer_frp2" beats the shorter prefix "transformer"
        "transformer_frp2_rogowski_240": 1,
    }
    waves, labels, locs, files = [], [], [], []
    for c, name in enumerate(REC1_CHANNELS):
        for start, end, label in ((10, 30, 1), (50, 61, 0)):
            for s in range(start, end - window + 1, hop):
                waves.append([1000.0 * c + i for i in range(s, s + window)])
                labels.append(label)
                locs.append(loc_of[name])
                files.append("rec1.h5")
    for s in range(0, 8 - window + 1, hop):
        waves.append([float(i) for i in range(s, s + window)])
        labels.append(2)
        locs.append(2)  # outlet_strip
        files.append("rec2.npz")
    return waves, labels, locs, files


@pytest.mark.parametrize("hop", [None, 3])
def test_channel_layout_windows_labels_locations(tmp_path, hop):
    folder = _channel_folder(tmp_path)
    rec = _load(folder, window=5, hop=hop)

    # By hand, hop 5: rec1 [10, 30) -> 4 and [50, 61) -> 2 windows per channel, 5 channels;
    # rec2 [0, 8) -> 1. Hop 3: (20 - 5) // 3 + 1 = 6, (11 - 5) // 3 + 1 = 3, (8 - 5) // 3 + 1 = 2.
    assert len(rec) == (5 * (4 + 2) + 1 if hop is None else 5 * (6 + 3) + 2)
    waves, labels, locs, files = _expected_channel_windows(5, hop or 5)
    np.testing.assert_array_equal(rec.waveforms, np.array(waves, dtype=np.float32))
    assert rec.labels.tolist() == labels
    assert rec.locations.tolist() == locs
    assert [Path(s).name for s in rec.sources] == files
    assert rec.sample_rate == RATE
    # rec3.h5 has no labels.csv row: it contributes nothing, so its NaNs are never used.
    assert not any(s.endswith("rec3.h5") for s in rec.sources)


def test_channel_layout_is_deterministic_and_reads_nested_hdf5(tmp_path):
    _h5(
        tmp_path / "x.hdf5",
        {"sensors/transformer_a": np.arange(12.0), "sensors/other": np.arange(12.0) + 100, "sample_rate": RATE},
    )
    _csv(tmp_path, ["x.hdf5,2,8,fault_a"])
    rec, again = _load(tmp_path, window=3), _load(tmp_path, window=3)
    # Sorted by dataset path ("sensors/other" < "sensors/transformer_a"); location from the base name.
    np.testing.assert_array_equal(rec.waveforms, [[102, 103, 104], [105, 106, 107], [2, 3, 4], [5, 6, 7]])
    assert rec.locations.tolist() == [-1, -1, 0, 0]
    np.testing.assert_array_equal(rec.waveforms, again.waveforms)
    assert rec.sources == again.sources


def test_channel_layout_needs_window(tmp_path):
    with pytest.raises(ValueError, match="window is required"):
        _load(_channel_folder(tmp_path))


# -------------------------------------------------------------------- malformed input
# Each case writes a broken folder and returns (path to load, load kwargs, name the error
# must mention, a fragment of the problem).

Case = Callable[[Path], tuple[Path, dict, str, str]]


def _missing_labels(d):
    return _simple(d / "a.npz", labels=None), {}, "a.npz", "missing labels"


def _csv_names_missing_file(d):
    _h5(d / "r.h5", {"ch": np.zeros(10), "sample_rate": RATE})
    _csv(d, ["r.h5,0,5,normal", "gone.h5,0,5,normal"])
    return d, {"window": 5}, "labels.csv", "'gone.h5', which does not exist"


def _waveforms_1d(d):
    return _simple(d / "a.npz", waveforms=np.zeros(8)), {}, "a.npz", "must be 2-D"


def _labels_wrong_length(d):
    return _simple(d / "a.npz", n=3, labels=np.array([0, 1])), {}, "a.npz", "labels must have shape (N,) = (3,)"


def _locations_wrong_length(d):
    return _simple(d / "a.npz", n=3, locations=np.array([0])), {}, "a.npz", "locations must have shape"


def _channels_differ_in_length(d):
    _h5(d / "r.h5", {"a": np.zeros(10), "b": np.zeros(11)}, attrs={"sample_rate": RATE})
    _csv(d, ["r.h5,0,5,normal"])
    return d, {"window": 5}, "r.h5", "same length"


def _channel_2d(d):
    _npz(d / "r.npz", a=np.zeros(10), b=np.zeros((2, 10)), sample_rate=RATE)
    _csv(d, ["r.npz,0,5,normal"])
    return d, {"window": 5}, "r.npz", "channel 'b' must be 1-D"


def _int_waveforms(d):
    return _simple(d / "a.npz", waveforms=np.zeros((2, 8), dtype=np.int16)), {}, "a.npz", "float dtype"


def _string_waveforms(d):
    return _simple(d / "a.npz", waveforms=np.full((2, 8), "x")), {}, "a.npz", "float dtype"


def _int_channel(d):
    _h5(d / "r.h5", {"a": np.zeros(10, dtype=np.int32), "sample_rate": RATE})
    _csv(d, ["r.h5,0,5,normal"])
    return d, {"window": 5}, "r.h5", "channel 'a' must have a float dtype"


def _nan_simple(d):
    w = np.zeros((2, 8))
    w[1, 5] = np.nan
    return _simple(d / "a.npz", waveforms=w), {}, "a.npz", "row 1 sample 5 is nan"


def _inf_in_interval(d):
    ch = np.zeros(40)
    ch[3] = np.nan  # outside every interval: not used, so allowed
    ch[27] = -np.inf
    _npz(d / "r.npz", ch=ch, sample_rate=RATE)
    _csv(d, ["r.npz,20,30,normal"])
    return d, {"window": 5}, "r.npz", "channel 'ch' sample 27 is -inf"


def _float64_beyond_float32(d):
    w = np.zeros((2, 8))
    w[0, 2] = 1e300  # finite in float64, inf once stored as float32
    return _simple(d / "a.npz", waveforms=w), {}, "a.npz", "row 0 sample 2 is inf"


def _npz_without_arrays(d):
    return _npz(d / "a.npz"), {}, "a.npz", "empty file"


def _zero_rows(d):
    return _simple(d / "a.npz", n=0, labels=np.zeros(0, dtype=np.int64)), {}, "a.npz", "empty file"


def _channel_file_without_channels(d):
    _h5(d / "r.h5", {}, attrs={"sample_rate": RATE})
    _csv(d, [])
    return d, {"window": 5}, "r.h5", "empty file"


def _interval_shorter_than_window(d):
    _npz(d / "r.npz", ch=np.zeros(40), sample_rate=RATE)
    _csv(d, ["r.npz,0,4,normal"])
    return d, {"window": 5}, "r.npz", "zero windows"


def _csv_without_rows(d):
    _npz(d / "r.npz", ch=np.zeros(40), sample_rate=RATE)
    _csv(d, [])
    return d, {"window": 5}, "labels.csv", "zero windows"


def _unknown_class_name(d):
    return _simple(d / "a.npz", labels=np.array(["normal", "boom"])), {}, "a.npz", "labels[1] = 'boom'"


def _unknown_class_in_csv(d):
    _npz(d / "r.npz", ch=np.zeros(40), sample_rate=RATE)
    _csv(d, ["r.npz,0,10,boom"])
    return d, {"window": 5}, "labels.csv", "unknown class name 'boom'"


def _class_index_too_big(d):
    return _simple(d / "a.npz", labels=np.array([0, 3])), {}, "a.npz", "labels[1] = 3 is out of range"


def _class_index_negative(d):
    return _simple(d / "a.npz", labels=np.array([-1, 0])), {}, "a.npz", "labels[0] = -1 is out of range"


def _float_labels(d):
    return _simple(d / "a.npz", labels=np.array([0.0, 1.0])), {}, "a.npz", "integer indices or name strings"


def _unknown_location_name(d):
    return _simple(d / "a.npz", locations=np.array(["attic", "transformer"])), {}, "a.npz", "'attic'"


def _rates_differ(d):
    _simple(d / "a.npz")
    _simple(d / "b.npz", sample_rate=np.float64(RATE / 2))
    return d, {}, "b.npz", "same for every file"


def _rates_differ_channel(d):
    _npz(d / "a.npz", ch=np.zeros(10), sample_rate=RATE)
    _h5(d / "b.h5", {"ch": np.zeros(10)}, attrs={"sample_rate": 1000.0})
    _csv(d, ["a.npz,0,5,normal"])
    return d, {"window": 5}, "b.h5", "same for every file"


def _rate_zero(d):
    return _simple(d / "a.npz", sample_rate=np.float64(0.0)), {}, "a.npz", "> 0 Hz, got 0.0"


def _rate_negative(d):
    _h5(d / "r.h5", {"ch": np.zeros(10)}, attrs={"sample_rate": -5.0})
    _csv(d, ["r.h5,0,5,normal"])
    return d, {"window": 5}, "r.h5", "> 0 Hz, got -5.0"


def _rate_missing(d):
    return _simple(d / "a.npz", sample_rate=None), {}, "a.npz", "missing sample_rate"


def _rate_not_scalar(d):
    return _simple(d / "a.npz", sample_rate=np.array([RATE, RATE])), {}, "a.npz", "must be a scalar"


def _interval_past_end(d):
    _npz(d / "r.npz", ch=np.zeros(40), sample_rate=RATE)
    _csv(d, ["r.npz,30,41,normal"])
    return d, {"window": 5}, "r.npz", "outside the recording of 40 samples"


def _interval_start_not_before_end(d):
    _npz(d / "r.npz", ch=np.zeros(40), sample_rate=RATE)
    _csv(d, ["r.npz,10,10,normal"])
    return d, {"window": 5}, "labels.csv", "start must be < end"


def _interval_negative_start(d):
    _npz(d / "r.npz", ch=np.zeros(40), sample_rate=RATE)
    _csv(d, ["r.npz,-5,10,normal"])
    return d, {"window": 5}, "labels.csv", "non-negative integer"


def _intervals_overlap(d):
    _npz(d / "r.npz", ch=np.zeros(40), sample_rate=RATE)
    _csv(d, ["r.npz,0,10,normal", "r.npz,8,20,fault_a"])
    return d, {"window": 5}, "labels.csv", "overlap"


def _csv_missing_columns(d):
    _npz(d / "r.npz", ch=np.zeros(40), sample_rate=RATE)
    _csv(d, ["r.npz,0,10"], header="file,start,end")
    return d, {"window": 5}, "labels.csv", "missing columns ['label']"


def _csv_short_row(d):
    _npz(d / "r.npz", ch=np.zeros(40), sample_rate=RATE)
    _csv(d, ["r.npz,0"])
    return d, {"window": 5}, "labels.csv", "row 2: empty value in column 'end'"


def _empty_folder(d):
    (d / ".hidden.npz").write_bytes(b"")  # hidden files do not count
    return d, {}, str(d), "empty folder"


def _unsupported_extension(d):
    _simple(d / "a.npz")
    (d / "notes.txt").write_text("hello")
    return d, {}, "notes.txt", "unsupported file extension '.txt'"


def _unsupported_single_file(d):
    path = d / "a.mat"
    path.write_bytes(b"")
    return path, {}, "a.mat", "unsupported file extension"


def _subfolder(d):
    _simple(d / "a.npz")
    (d / "more").mkdir()
    return d, {}, "more", "sub-folders are not read"


def _corrupt_npz(d):
    path = d / "a.npz"
    path.write_bytes(b"this is not a zip archive")
    return path, {}, "a.npz", "cannot be read as .npz"


def _corrupt_h5(d):
    path = d / "a.h5"
    path.write_bytes(b"this is not hdf5")
    return path, {}, "a.h5", "cannot be opened as HDF5"


def _unexpected_array(d):
    return _simple(d / "a.npz", location=np.array([0, 1])), {}, "a.npz", "unexpected arrays ['location']"


def _row_shorter_than_window(d):
    return _simple(d / "a.npz", t=8), {"window": 9}, "a.npz", "T=8 samples, fewer than window=9"


def _later_file_bad(d):
    # Nothing half-loaded: a valid first file does not stop the second from failing the load.
    _simple(d / "a.npz")
    _simple(d / "b.npz", labels=np.array([0, 7]))
    return d, {}, "b.npz", "out of range"


MALFORMED: dict[str, Case] = {
    f.__name__.lstrip("_"): f
    for f in (
        _missing_labels,
        _csv_names_missing_file,
        _waveforms_1d,
        _labels_wrong_length,
        _locations_wrong_length,
        _channels_differ_in_length,
        _channel_2d,
        _int_waveforms,
        _string_waveforms,
        _int_channel,
        _nan_simple,
        _inf_in_interval,
        _float64_beyond_float32,
        _npz_without_arrays,
        _zero_rows,
        _channel_file_without_channels,
        _interval_shorter_than_window,
        _csv_without_rows,
        _unknown_class_name,
        _unknown_class_in_csv,
        _class_index_too_big,
        _class_index_negative,
        _float_labels,
        _unknown_location_name,
        _rates_differ,
        _rates_differ_channel,
        _rate_zero,
        _rate_negative,
        _rate_missing,
        _rate_not_scalar,
        _interval_past_end,
        _interval_start_not_before_end,
        _interval_negative_start,
        _intervals_overlap,
        _csv_missing_columns,
        _csv_short_row,
        _empty_folder,
        _unsupported_extension,
        _unsupported_single_file,
        _subfolder,
        _corrupt_npz,
        _corrupt_h5,
        _unexpected_array,
        _row_shorter_than_window,
        _later_file_bad,
    )
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_names_the_file(tmp_path, case):
    path, kwargs, file_name, problem = MALFORMED[case](tmp_path)
    with pytest.raises(DataFormatError) as info:
        _load(path, **kwargs)
    message = str(info.value)
    assert file_name in message and file_name in info.value.path
    assert problem in message


def test_h5_waveforms_3d_rejected(tmp_path):
    _h5(tmp_path / "a.h5", {"waveforms": np.zeros((2, 2, 4)), "labels": [0, 1], "sample_rate": RATE})
    with pytest.raises(DataFormatError, match=r"a\.h5: waveforms must be 2-D \(N, T\), got shape \(2, 2, 4\)"):
        _load(tmp_path)


def test_data_format_error_is_a_value_error():
    assert issubclass(DataFormatError, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 0}, r"window must be a positive integer \(> 0\), got 0"),
        ({"window": -4}, "got -4"),
        ({"window": 4, "hop": 0}, r"hop must be a positive integer \(> 0\), got 0"),
        ({"window": 4, "hop": -1}, "got -1"),
        ({"window": 2.5}, "window must be a positive integer, got float"),
        ({"hop": 2}, "hop needs window"),
    ],
)
def test_bad_window_or_hop_is_value_error(tmp_path, kwargs, match):
    _simple(tmp_path / "a.npz")
    with pytest.raises(ValueError, match=match) as info:
        _load(tmp_path, **kwargs)
    assert not isinstance(info.value, DataFormatError)  # an argument error, not a file's


@pytest.mark.parametrize(
    ("classes", "locations", "match"),
    [
        ((), LOCATIONS, "class_names must not be empty"),
        ("normal", LOCATIONS, "sequence of strings"),
        (("a", "a"), LOCATIONS, "must be unique"),
        (CLASSES, ("",), "non-empty strings"),  # "" would prefix every channel
    ],
)
def test_bad_name_lists_are_value_errors(tmp_path, classes, locations, match):
    _simple(tmp_path / "a.npz")
    with pytest.raises(ValueError, match=match):
        load_recordings(tmp_path, class_names=classes, location_names=locations)


def test_missing_path_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        _load(tmp_path / "nowhere")


def test_missing_h5py_says_how_to_install(tmp_path, monkeypatch):
    _h5(tmp_path / "a.h5", {"waveforms": np.zeros((1, 4)), "labels": [0], "sample_rate": RATE})
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes `import h5py` raise ImportError
    with pytest.raises(ImportError, match="pip install h5py"):
        _load(tmp_path)


def test_recordings_checks_its_invariants():
    good = {
        "waveforms": np.zeros((2, 4), dtype=np.float32),
        "sample_rate": RATE,
        "labels": np.zeros(2, dtype=np.int64),
        "locations": np.full(2, -1, dtype=np.int64),
        "sources": ("a", "b"),
    }
    Recordings(**good)
    for field, bad in [
        ("waveforms", np.zeros((2, 4))),  # float64
        ("labels", np.zeros(3, dtype=np.int64)),
        ("sources", ("a",)),
        ("sample_rate", 0.0),
        ("waveforms", np.full((2, 4), np.nan, dtype=np.float32)),
    ]:
        with pytest.raises(ValueError):
            Recordings(**{**good, field: bad})


# ------------------------------------------------------------------- events and groups


def test_events_are_rows_in_the_simple_layout_and_intervals_in_the_channel_layout(tmp_path):
    simple = tmp_path / "simple"
    simple.mkdir()
    _simple(simple / "a.npz", n=2, t=8)
    _simple(simple / "b.npz", n=3, t=8)
    rec = _load(simple, window=4)  # 2 windows per row
    assert rec.events.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert rec.groups is None
    channels = tmp_path / "channels"
    channels.mkdir()
    rec = _load(_channel_folder(channels), window=5)
    # rec1: 5 channels x (4 windows of [10, 30) then 2 of [50, 61)); rec2: one window of its interval.
    assert rec.events.tolist() == [0, 0, 0, 0, 1, 1] * 5 + [2]


def test_groups_array_is_read_as_text_across_files(tmp_path):
    _simple(tmp_path / "a.npz", n=2, groups=np.array([7, 8]))
    _simple(tmp_path / "b.npz", n=2, groups=np.array(["8", "9"]))  # "8" is the 8 of a.npz
    assert _load(tmp_path).groups.tolist() == [0, 1, 1, 2]


def test_groups_array_must_be_in_every_file_or_none(tmp_path):
    _simple(tmp_path / "a.npz", n=2, groups=np.array([0, 1]))
    _simple(tmp_path / "b.npz", n=2)
    with pytest.raises(DataFormatError, match=r"b\.npz.*`groups` must be in every file or in none"):
        _load(tmp_path)
    _simple(tmp_path / "b.npz", n=2, groups=np.array([0.5, 1.5]))
    with pytest.raises(DataFormatError, match=r"b\.npz.*groups must be integer ids or strings"):
        _load(tmp_path)
