"""`python -m nsde.metrics` compares trained runs side by side; `nsde.train --evaluate` reports objectives."""

from __future__ import annotations

import json

from nsde.metrics.__main__ import main as compare
from nsde.train.__main__ import main as train_main


def test_train_evaluate_then_compare(tmp_path, capsys):
    common = ["--preset", "tiny", "--examples-per-class", "4", "--cache-dir", str(tmp_path / "cache"),
              "--backbone", "resnet18", "--epochs", "1", "--batch-size", "16", "--quiet"]
    assert train_main([*common, "--sigma", "0", "--out", str(tmp_path / "base")]) == 0
    assert train_main([*common, "--sigma", "0.2", "--depth", "2", "--eval-mode", "on", "--out", str(tmp_path / "nsde"),
                       "--evaluate"]) == 0
    summary = json.loads((tmp_path / "nsde" / "summary.json").read_text())
    assert {"clean_accuracy", "sweep_area", "apgd_accuracy", "abc_auroc"} <= set(summary["objectives"])
    assert summary["objectives_split"] == "val"
    capsys.readouterr()
    figure = tmp_path / "fig.png"
    assert compare([str(tmp_path / "base"), str(tmp_path / "nsde"), "--names", "baseline", "NSDE",
                    "--apgd-steps", "2", "--figure", str(figure)]) == 0
    out = capsys.readouterr().out
    for title in ("Table 1", "Table 2", "Table 3", "Table 4"):
        assert title in out
    assert "| baseline" in out and "NSDE" in out and figure.exists()
    report = json.loads((tmp_path / "base" / "eval_report.json").read_text())
    assert report["settings"]["apgd_steps"] == 2 and report["stochastic"] is False
