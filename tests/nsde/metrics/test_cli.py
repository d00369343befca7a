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


def test_the_published_configuration_evaluates_as_published_and_certifies(tmp_path):
    """Absolute sigma, noise on at test (mean softmax of passes): scored with EOT APGD, its
    adaptive checks (the EOT check among them) and randomized smoothing (the certify profile)."""
    from nsde.data import load
    from nsde.metrics import eval_config, evaluate
    from nsde.train import load_checkpoint

    out = tmp_path / "published"
    assert train_main(["--preset", "tiny", "--examples-per-class", "4", "--cache-dir", str(tmp_path / "cache"),
                       "--backbone", "resnet18", "--epochs", "1", "--batch-size", "16", "--quiet",
                       "--shape", "fbm", "--hurst", "0.5", "--sigma", "0.3", "--sigma-mode", "absolute",
                       "--depth", "stages:0,1", "--eval-mode", "mc", "--mc-samples", "2",
                       "--out", str(out)]) == 0
    data = load(json.loads((out / "summary.json").read_text())["data"]["path"])
    cfg = eval_config("certify", attack_subset=8, apgd_steps=3, abc_subset=8, abc_samples=4, ig_steps=4,
                      stability_subset=4, smoothing_n0=10, smoothing_n=50, smoothing_subset=8, snr_levels=(10.0,))
    report = evaluate(load_checkpoint(out), data, cfg)
    assert report.stochastic and report.settings["eot_iter"] == 2
    assert "eot" in report.checks and report.checks["eot"].get("passed") is not None
    assert set(report.smoothing) == {0.0, 0.1, 0.25, 0.5, 1.0}
    values = [report.smoothing[r].value for r in sorted(report.smoothing)]
    assert values == sorted(values, reverse=True)  # certified accuracy falls with the radius
    assert report.objectives["certified_accuracy"] == report.smoothing[0.25].value
    assert len(report.per_example["smoothing"]["radius"]) == len(report.per_example["smoothing"]["index"])
