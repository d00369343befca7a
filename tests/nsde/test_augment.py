"""nsde.train.augment: the input noise has the configured RMS, SNR and H; the same seed gives the
same batches; validation and test are never perturbed; off is plain; PGD training runs and
resumes; bad settings are one-line errors."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

from nsde.data import PRESETS, prepare
from nsde.data.snr import split_waveforms
from nsde.models import ModelConfig, NoiseConfig
from nsde.noise import estimate_hurst
from nsde.train import AdversarialConfig, AugmentConfig, TrainConfig, train
from nsde.train.__main__ import main
from nsde.train.augment import Augmenter, colored_noise


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = dataclasses.replace(PRESETS["tiny"], examples_per_class=6, cache_dir=str(tmp_path_factory.mktemp("cache")))
    return prepare(cfg, progress=False)


PLAIN = ModelConfig(backbone="resnet18", noise=NoiseConfig(sigma=0.0))


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_gaussian_input_noise_has_the_configured_rms_per_example():
    x = torch.full((400, 1, 16, 16), 0.5)  # mid-range: clipping at [0, 1] never bites at these intensities
    aug = Augmenter(AugmentConfig(kind="gaussian", low=0.02, high=0.08), None, _gen())
    out, s = aug(x, torch.arange(400), return_draws=True)
    rms = (out - x).flatten(1).pow(2).mean(1).sqrt()
    assert float(s.min()) >= 0.02 and float(s.max()) <= 0.08
    assert float(s.std()) > 0.01  # drawn per example, uniform over the range (sd 0.0173)
    np.testing.assert_allclose(rms.numpy(), s.numpy(), rtol=0.2)  # 256 pixels an example: sd of the RMS 4.4 %
    np.testing.assert_allclose(float((rms / s).mean()), 1.0, atol=0.01)
    fixed = Augmenter(AugmentConfig(kind="gaussian", low=0.05, high=0.05), None, _gen())(x, torch.arange(400))
    assert abs(float((fixed - x).std()) - 0.05) < 0.001


def test_fbm_input_noise_has_the_configured_hurst_exponent():
    x = torch.full((64, 1, 32, 32), 0.5)
    for hurst in (0.2, 0.8):
        out, s = Augmenter(AugmentConfig(kind="fbm", low=0.01, high=0.01, hurst=hurst), None, _gen(1))(
            x, torch.arange(64), return_draws=True)
        assert abs(estimate_hurst((out - x) / 0.01) - hurst) < 0.1


def test_colored_noise_has_unit_power_and_its_spectral_slope():
    for color in (0.0, 1.0, 2.0):
        noise = colored_noise(2000, 512, color, generator=_gen(2))
        assert abs(float(noise.pow(2).mean()) - 1.0) < 0.03
        power = torch.fft.rfft(noise.double(), dim=1).abs().pow(2).mean(0)[1:]
        f = torch.fft.rfftfreq(512, dtype=torch.float64)[1:]
        slope = np.polyfit(np.log(f.numpy()), np.log(power.numpy()), 1)[0]
        assert abs(slope + color) < 0.1


def test_signal_noise_has_the_configured_snr_against_the_reference_power(tiny):
    cfg = AugmentConfig(kind="signal", snr_low=0.0, snr_high=10.0)
    aug = Augmenter(cfg, tiny, _gen(3))
    waves, power = split_waveforms(tiny, "train")
    idx = torch.arange(len(waves))
    # the noise added to the waveform, recovered by drawing it again from the same generator state
    g = _gen(3)
    snr = cfg.snr_low + (cfg.snr_high - cfg.snr_low) * torch.rand(len(idx), generator=g, dtype=torch.float64)
    noise = colored_noise(len(idx), waves.shape[1], 0.0, generator=g)
    scale = torch.sqrt(torch.from_numpy(np.asarray(power)) / 10 ** (snr / 10))
    measured = 10 * np.log10(np.asarray(power) / (scale**2 * noise.double().pow(2).mean(1)).numpy())
    np.testing.assert_allclose(measured, snr.numpy(), atol=0.3)  # thousands of samples a waveform
    out, drawn = aug(tiny.split("train").x[idx], idx, return_draws=True)
    np.testing.assert_array_equal(drawn.numpy(), snr.numpy())
    # ... and the batch is the data set's own spectrogram pipeline on exactly those noisy waveforms
    from nsde.data.dataset import data_config_from_dict
    from nsde.data.snr import waveform_sample_rate
    from nsde.data.spectrogram import spectrogram

    stft = data_config_from_dict(tiny.meta["config"]).stft(waveform_sample_rate(tiny, "train"))
    expected = spectrogram(torch.from_numpy(np.asarray(waves)) + scale.float()[:, None] * noise, stft)
    assert torch.equal(out, expected.to(torch.float16).float().view(out.shape))
    assert out.shape == tiny.split("train").x.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    # noisier than the clean spectrogram, and each example noisier at 0 dB than at 20 dB
    clean = tiny.split("train").x

    def change(db: float) -> np.ndarray:
        noisy = Augmenter(AugmentConfig(kind="signal", snr_low=db, snr_high=db), tiny, _gen(3))(clean, idx)
        return (noisy - clean).flatten(1).abs().mean(1).numpy()

    assert (change(20.0) > 0).all() and (change(0.0) > change(20.0)).all()
    assert float((Augmenter(AugmentConfig(kind="signal", snr_low=100.0, snr_high=100.0), tiny, _gen(3))(clean, idx)
                  - clean).abs().max()) < 1e-3  # no noise to speak of: the clean spectrogram, float16 apart


@pytest.mark.parametrize("augment", [AugmentConfig(kind="gaussian", low=0.0, high=0.2),
                                     AugmentConfig(kind="signal", snr_low=-5.0, snr_high=20.0, color=1.0)])
def test_same_seed_same_batches_and_the_evaluation_splits_are_never_augmented(tiny, augment):
    cfg = TrainConfig(epochs=2, batch_size=16, seed=4, augment=augment)
    a = train(PLAIN, tiny, cfg, progress=False)
    b = train(PLAIN, tiny, cfg, progress=False)
    assert _same(a.model, b.model)
    plain = train(PLAIN, tiny, dataclasses.replace(cfg, augment=AugmentConfig()), progress=False)
    assert not _same(a.model, plain.model)
    # the validation accuracy each epoch is of the clean split: recomputing it gives the same number
    from nsde.predict import accuracy

    assert accuracy(a.model, tiny.split("val")) == a.history[-1].val_accuracy


def test_the_augmentation_sees_every_training_batch_and_nothing_else(tiny, monkeypatch):
    from nsde.train import augment as augment_mod

    seen = []
    original = augment_mod.Augmenter.__call__

    def spy(self, x, idx, **kw):
        seen.append(idx.clone())
        return original(self, x, idx, **kw)

    monkeypatch.setattr(augment_mod.Augmenter, "__call__", spy)
    cfg = TrainConfig(epochs=2, batch_size=16, seed=4, augment=AugmentConfig(kind="gaussian", high=0.2))
    train(PLAIN, tiny, cfg, progress=False)
    n_train = len(tiny.indices("train"))
    per_epoch = -(-n_train // 16)
    assert len(seen) == 2 * per_epoch  # once a training batch; validation and BatchNorm recalibration: never
    for epoch in range(2):
        rows = torch.cat(seen[epoch * per_epoch:(epoch + 1) * per_epoch])
        assert sorted(rows.tolist()) == list(range(n_train))  # rows of the train split, each once an epoch


def test_augmentation_off_is_the_plain_run_and_draws_nothing(tiny):
    cfg = TrainConfig(epochs=1, batch_size=16, seed=5)
    off = dataclasses.replace(cfg, augment=AugmentConfig(kind="none", low=0.1, high=0.3),
                              adversarial=AdversarialConfig(eps=0.0, steps=9))
    a, b = train(PLAIN, tiny, cfg, progress=False), train(PLAIN, tiny, off, progress=False)
    assert _same(a.model, b.model)


def test_off_builds_neither_the_augmenter_nor_the_adversary(tiny, monkeypatch):
    from nsde.train import augment as augment_mod

    def refuse(*args, **kwargs):
        raise AssertionError("built although off")

    monkeypatch.setattr(augment_mod.Augmenter, "__init__", refuse)
    monkeypatch.setattr(augment_mod.Adversary, "__init__", refuse)
    state = torch.get_rng_state()
    train(PLAIN, tiny, TrainConfig(epochs=1, batch_size=16, seed=5), progress=False)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG as it was


def test_adversarial_training_runs_ramps_and_resumes_exactly(tiny, tmp_path, monkeypatch):
    import torchattacks

    cfg = TrainConfig(epochs=2, batch_size=16, seed=6, adversarial=AdversarialConfig(eps=0.5, steps=2, ramp_epochs=2))
    assert cfg.adversarial.eps_at(1) == 0.25 and cfg.adversarial.eps_at(2) == 0.5
    calls, original = [], torchattacks.PGDL2

    class Recorder(original):
        def __call__(self, x, y):
            out = super().__call__(x, y)
            calls.append((self.eps, self.alpha, self.model.training, float((out - x).flatten(1).norm(dim=1).max())))
            return out

    monkeypatch.setattr(torchattacks, "PGDL2", Recorder)
    train(PLAIN, tiny, cfg, progress=False)
    per_epoch = len(calls) // 2
    assert {c[0] for c in calls[:per_epoch]} == {0.25} and {c[0] for c in calls[per_epoch:]} == {0.5}
    assert calls[0][1] == pytest.approx(2.5 * 0.25 / 2)  # Madry's step size
    assert all(c[2] for c in calls)  # back in train mode for the training step
    assert all(c[3] <= c[0] + 1e-5 for c in calls)  # inside the L2 ball
    monkeypatch.setattr(torchattacks, "PGDL2", original)
    whole = train(PLAIN, tiny, cfg, progress=False)
    plain = train(PLAIN, tiny, dataclasses.replace(cfg, adversarial=AdversarialConfig()), progress=False)
    assert not _same(whole.model, plain.model)  # the attacked batches trained another model
    # resume: epoch 1 in one call, epoch 2 from its checkpoint, equal to the uninterrupted run
    with pytest.raises(_Stop):
        train(PLAIN, tiny, cfg, checkpoint_dir=tmp_path, progress=False, callback=lambda m, ckpt: _stop_after(m, 1))
    resumed = train(PLAIN, tiny, cfg, checkpoint_dir=tmp_path, resume_from=tmp_path, progress=False)
    assert _same(whole.model, resumed.model)


def _same(a, b) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


class _Stop(Exception):
    pass


def _stop_after(m, epoch: int) -> None:
    if m.epoch == epoch:
        raise _Stop


def test_augmented_run_resumes_exactly(tiny, tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=16, seed=7, augment=AugmentConfig(kind="fbm", low=0.05, high=0.1))
    whole = train(PLAIN, tiny, cfg, progress=False)
    with pytest.raises(_Stop):
        train(PLAIN, tiny, cfg, checkpoint_dir=tmp_path, progress=False, callback=lambda m, ckpt: _stop_after(m, 1))
    resumed = train(PLAIN, tiny, cfg, checkpoint_dir=tmp_path, resume_from=tmp_path, progress=False)
    assert _same(whole.model, resumed.model)


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="gaussian", low=-0.1), "`low >= 0.0` must hold, but got -0.1"),
    (dict(kind="signal", snr_low=10.0, snr_high=0.0), "`snr_low <= snr_high` must hold"),
    (dict(kind="gaussian", low=0.3, high=0.1), "`low <= high` must hold"),
    (dict(kind="speckle"), "unknown augmentation kind 'speckle'"),
    (dict(kind="fbm", hurst=1.5), "hurst"),
])
def test_bad_augmentation_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        AugmentConfig(**kwargs)


def test_bad_settings_on_the_command_line_are_one_line_errors(capsys):
    assert main(["--preset", "tiny", "--augment", "signal", "--augment-snr", "20", "0", "--quiet"]) == 2
    assert "snr_low <= snr_high" in capsys.readouterr().err
    assert main(["--preset", "tiny", "--adv-eps", "-1", "--quiet"]) == 2
    assert "`eps >= 0.0` must hold, but got -1" in capsys.readouterr().err
