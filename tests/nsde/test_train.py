"""nsde.train: learns an easy task, resumes exactly, stops on a non-finite loss, CLI writes its outputs."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from nsde.data import PRESETS, prepare
from nsde.models import ModelConfig, NoiseConfig
from nsde.train import NonFiniteLossError, TrainConfig, _lr_lambda, accuracy, load_checkpoint, train
from nsde.train.__main__ import main


@pytest.fixture(scope="module")
def easy(tmp_path_factory):
    # The clean injection point only, 32x32: a task a tiny model learns in a few epochs.
    cfg = dataclasses.replace(PRESETS["easy"], cache_dir=str(tmp_path_factory.mktemp("cache")))
    return prepare(cfg, progress=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = dataclasses.replace(PRESETS["tiny"], examples_per_class=6, cache_dir=str(tmp_path_factory.mktemp("cache")))
    return prepare(cfg, progress=False)


NSDE = ModelConfig(backbone="resnet18", noise=NoiseConfig(shape="fbm", hurst=0.5, sigma=0.1, depth=2))


@pytest.fixture(scope="module")
def trained(easy):
    seen = []
    cfg = TrainConfig(epochs=8, batch_size=32, lr=2e-3, seed=0)
    result = train(NSDE, easy, cfg, callback=lambda m, ckpt: seen.append(m), progress=False)
    return result, seen


def test_tiny_model_clearly_beats_chance_on_easy_data(easy, trained):
    result, seen = trained
    assert [m.epoch for m in seen] == list(range(1, 9))
    assert all(m.seconds > 0 and m.examples_per_second > 0 for m in seen)
    assert seen[-1].train_loss < seen[0].train_loss
    test_acc = accuracy(result.model, easy.split("test"))
    assert test_acc > 0.3, f"test accuracy {test_acc} is not clearly above chance (0.0625)"
    # a ResNet NSDE evaluated with noise off: BatchNorm recalibrated after the last epoch only
    assert [m.bn_recalibrated for m in seen] == [0] * 7 + [len(easy.indices("train")) // 32]
    # noise in the first two blocks (stage 0), measured every epoch
    assert all(set(m.noise_to_signal) == {"stage0"} and m.noise_to_signal["stage0"] > 0 for m in seen)
    assert seen[-1].flat()["nsr_stage0"] == seen[-1].noise_to_signal["stage0"]


def test_accuracy_falls_as_the_snr_of_the_waveform_falls(easy, trained):
    from nsde.data.snr import snr_spectrograms
    from nsde.metrics.robustness import correct_predictions

    model, test = trained[0].model, easy.split("test")
    clean = float(correct_predictions(model, test.x, test.y, 64).mean())
    acc = {level: float(correct_predictions(model, torch.from_numpy(snr_spectrograms(easy, "test", level)), test.y,
                                            64).mean()) for level in (40.0, 20.0, -10.0)}
    # measured (64 test examples): clean 0.41, +40 dB 0.42, +20 dB 0.23, 0 dB 0.06, -10 dB 0.08 (chance 0.06)
    assert acc[40.0] >= clean - 0.1, (clean, acc)  # the injection point's own noise is 25-40 dB down
    assert acc[40.0] > acc[20.0] + 0.05 and acc[20.0] > acc[-10.0] + 0.05, acc
    assert acc[-10.0] < 0.15, acc


def test_batchnorm_recalibration_can_be_switched_off(tiny):
    cfg = TrainConfig(epochs=1, batch_size=16, seed=1)
    on = train(NSDE, tiny, cfg, progress=False)
    off = train(NSDE, tiny, dataclasses.replace(cfg, bn_recalibration=0), progress=False)
    assert on.history[-1].bn_recalibrated > 0 and off.history[-1].bn_recalibrated == 0
    bn_on, bn_off = on.model.backbone.bn1, off.model.backbone.bn1
    assert torch.equal(on.model.backbone.conv1.weight, off.model.backbone.conv1.weight)  # same training
    assert not torch.allclose(bn_on.running_var, bn_off.running_var)
    with pytest.raises(ValueError, match="bn_recalibration >= 0"):
        TrainConfig(bn_recalibration=-1)


def _params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class _Stop(Exception):
    pass


def test_resume_reaches_the_uninterrupted_result(tiny, tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=16, seed=4)
    straight = train(NSDE, tiny, cfg, checkpoint_dir=tmp_path / "a", progress=False)

    def stop_after_first(metrics, ckpt):
        if metrics.epoch == 1:
            raise _Stop

    with pytest.raises(_Stop):
        train(NSDE, tiny, cfg, checkpoint_dir=tmp_path / "b", callback=stop_after_first, progress=False)
    resumed = train(NSDE, tiny, cfg, checkpoint_dir=tmp_path / "b", resume_from=tmp_path / "b", progress=False)
    assert [m.epoch for m in resumed.history] == [1, 2, 3]
    a, b = _params(straight.model), _params(resumed.model)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # The saved checkpoint loads back into the same model.
    loaded = _params(load_checkpoint(tmp_path / "b"))
    assert all(torch.equal(loaded[k], b[k]) for k in b)


def test_resume_refuses_another_model_or_schedule(tiny, tmp_path):
    train(NSDE, tiny, TrainConfig(epochs=1, batch_size=16), checkpoint_dir=tmp_path, progress=False)
    other = dataclasses.replace(NSDE, noise=NoiseConfig(sigma=0.3))
    with pytest.raises(ValueError, match="another model config"):
        train(other, tiny, TrainConfig(epochs=1, batch_size=16), resume_from=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"other training settings.*'epochs': \(1, 2\)"):
        train(NSDE, tiny, TrainConfig(epochs=2, batch_size=16), resume_from=tmp_path, progress=False)


def test_non_finite_loss_stops_with_epoch_and_step(tiny):
    x = np.array(tiny.x, dtype=np.float32)
    x[tiny.indices("train")] = np.nan  # corrupted inputs -> NaN loss on the first step
    corrupted = dataclasses.replace(tiny, x=x)
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step 1") as err:
        train(NSDE, corrupted, TrainConfig(epochs=2, batch_size=16), progress=False)
    assert err.value.epoch == 1 and err.value.step == 1


def test_training_leaves_the_callers_global_rng_as_it_was(tiny):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    train(NSDE, tiny, TrainConfig(epochs=1, batch_size=16, seed=5), progress=False)
    assert torch.equal(torch.get_rng_state(), before)


def test_schedule_warms_up_linearly_then_decays_by_cosine():
    # 3 epochs of 4 steps, 1 warm-up epoch: the peak holds for two steps (3 and 4), which
    # timm's CosineLRScheduler does not reproduce (see nsde.train._lr_lambda)
    factor = _lr_lambda(TrainConfig(epochs=3, warmup_epochs=1.0), 4)
    assert [factor(s) for s in range(5)] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    assert factor(8) == pytest.approx(0.5) and factor(12) == pytest.approx(0.0)
    assert _lr_lambda(TrainConfig(epochs=2, warmup_epochs=0.0), 4)(0) == 1.0


@pytest.mark.parametrize("module, forbidden", [("nsde.train", "nsde.metrics"), ("nsde.metrics", "nsde.train")])
def test_training_and_metrics_do_not_import_each_other(module, forbidden):
    """No cycle: the metrics predict through nsde.predict, and `--evaluate` lives in the
    command (nsde/train/__main__.py), above both."""
    code = (f"import sys, {module}; "
            f"bad = sorted(m for m in sys.modules if m.split('.')[:2] == {forbidden!r}.split('.')); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_bad_train_config_raises():
    with pytest.raises(ValueError, match="epochs >= 1"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="lr > 0"):
        TrainConfig(lr=0.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainConfig(label_smoothing=1.0)


def test_cli_trains_and_writes_checkpoint_and_summary(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--preset", "tiny", "--examples-per-class", "4", "--cache-dir", str(tmp_path / "cache"),
            "--backbone", "convnext_atto", "--sigma", "0.2", "--depth", "stages:0", "--epochs", "2",
            "--batch-size", "16", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["history"]) == 2 and 0.0 <= summary["test_accuracy"] <= 1.0
    assert summary["model_config"]["noise"]["depth"] == "stages:0"
    assert (out / "checkpoint.pt").exists()
    assert "test accuracy" in capsys.readouterr().out
    assert main([*argv[:-1], "--hurst", "1.5"]) == 2  # bad input: a clear error, exit code 2
    assert "0 < hurst < 1" in capsys.readouterr().err


def _ddp_rank(rank: int, world: int, port: int, data_path: str, out: str) -> None:
    import os

    from nsde.data import load

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        cfg = ModelConfig(backbone="resnet18", noise=NoiseConfig(sigma=0.1, depth=2))
        result = train(cfg, load(data_path), TrainConfig(epochs=2, batch_size=16, seed=0), progress=False,
                       checkpoint_dir=f"{out}/rank{rank}")
        torch.save({k: v.detach().clone() for k, v in result.model.state_dict().items()}, f"{out}/weights{rank}.pt")
        torch.save(result.history, f"{out}/history{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_data_parallel_ranks_stay_in_step_and_only_rank_0_checkpoints(tiny, tmp_path):
    """torch.distributed (gloo, 2 processes): DDP keeps the replicas identical, each rank trains
    on its half of every batch, and only rank 0 writes checkpoints."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_rank, args=(2, port, str(tiny.path), str(tmp_path)), nprocs=2, join=True)
    w0, w1 = (torch.load(tmp_path / f"weights{r}.pt") for r in (0, 1))
    for name in w0:
        if "running_" not in name and "num_batches" not in name:  # BatchNorm statistics stay per rank
            assert torch.equal(w0[name], w1[name]), name
    assert (tmp_path / "rank0" / "checkpoint.pt").exists() and not (tmp_path / "rank1").exists()
    h0 = torch.load(tmp_path / "history0.pt", weights_only=False)
    assert h0[-1].train_loss == torch.load(tmp_path / "history1.pt", weights_only=False)[-1].train_loss  # all-reduced


def test_cli_options_for_the_new_noise_and_data_settings():
    from nsde.train.__main__ import _parser, configs_from_args

    data, model, run = configs_from_args(_parser().parse_args(
        ["--sigma-mode", "relative", "--anchor", "corner", "--train-locations", "0,1,2", "--bn-recalibration", "8"]))
    assert model.noise.sigma_mode == "relative" and model.noise.anchor == "corner"
    assert data.train_locations == (0, 1, 2) and run.bn_recalibration == 8
    assert model.num_classes == len(data.class_names)
    with pytest.raises(ValueError, match="--train-locations must be comma-separated"):
        configs_from_args(_parser().parse_args(["--train-locations", "near"]))
