"""Every command a user types ends a bad input in one line, `error: ...`, and exit code 2."""

from __future__ import annotations

import pytest

from analysis.report import main as report_main
from analysis.study import main as study_main
from nsde.cli import TRACEBACK_ENV
from nsde.data.__main__ import main as data_main
from nsde.metrics.__main__ import main as metrics_main
from nsde.train.__main__ import main as train_main
from search.run import main as search_main


@pytest.mark.parametrize("main, args, message", [
    (train_main, ["--recordings", "{tmp}/nope"], "recordings path does not exist"),
    (train_main, ["--augment", "gaussian", "--augment-low", "-1"], "`low >= 0.0` must hold, but got -1.0"),
    (train_main, ["--preset", "tiny", "--epochs", "1", "--cache-dir", "{tmp}/cache", "--out", "{tmp}/run"],
     "use a larger input image (--image-size) or a `depth` that leaves it out, e.g. 'stages:0,1,2'"),
    (metrics_main, ["{tmp}/nope"], "no checkpoint.pt"),
    (data_main, ["figure", "--image-size", "0", "--out", "{tmp}/x.png"], "`image_size >= 8` must hold, but got 0"),
    (search_main, ["--space", "{tmp}/nope.yaml"], "does not exist"),
    (report_main, ["--tune-dir", "{tmp}/nope"], "is not a Tune experiment folder"),
    (study_main, ["--from-record", "{tmp}/nope.json"], "No such file or directory"),
])
def test_a_bad_input_is_one_line_and_exit_code_2(main, args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(TRACEBACK_ENV, raising=False)
    assert main([a.format(tmp=tmp_path) for a in args] + (["--quiet"] if main is train_main else [])) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_the_traceback_is_there_for_a_developer_who_asks(tmp_path, monkeypatch):
    monkeypatch.setenv(TRACEBACK_ENV, "1")
    with pytest.raises(FileNotFoundError, match="recordings path does not exist"):
        train_main(["--recordings", str(tmp_path / "nope"), "--quiet"])
