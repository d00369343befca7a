"""One training run: an NSDE (or plain, sigma = 0) classifier on a prepared spectrogram set.

    python -m nsde.train --backbone convnext_atto --sigma 0.1 --hurst 0.5 --epochs 15 --out runs/one

(the command is `nsde/train/__main__.py`, kept out of this module's imports because its
`--evaluate` needs `nsde.metrics`, which must not be imported by training).

AdamW with linear warm-up then cosine decay (per step), optional label smoothing and
gradient clipping; bf16 autocast and channels_last on CUDA, fp32 on CPU; optional
torch.compile. Seeded: on CPU two runs with the same seed give the same weights, and a
run resumed from a checkpoint ends where the uninterrupted run ends (the data order of
every epoch is derived from (seed, epoch), and the checkpoint holds the optimiser,
schedule and every RNG state, the noise generator's included). The global RNG is seeded
inside a fork of it, so a caller's RNG state is the same after `train` as before. A
non-finite loss stops the run with `NonFiniteLossError` naming the epoch and step.
`predict` and `accuracy` (from `nsde.predict`) are re-exported for existing callers.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.optim import param_groups_weight_decay
from tqdm.auto import tqdm

from nsde.data import SpectrogramData
from nsde.models import ModelConfig, NSDEModel, build_model, model_config_from_dict, recalibrate_batchnorm
from nsde.predict import accuracy, predict
from nsde.rules import Rule, check_fields, ruled
from nsde.train.augment import (
    AdversarialConfig,
    Adversary,
    AugmentConfig,
    Augmenter,
    adversarial_config_from_dict,
    augment_config_from_dict,
)
from nsde.train.convergence import ConvergenceRule, diagnose

__all__ = [
    "CHECKPOINT",
    "TrainConfig",
    "AugmentConfig",
    "AdversarialConfig",
    "ConvergenceRule",
    "diagnose",
    "EpochMetrics",
    "TrainResult",
    "NonFiniteLossError",
    "train",
    "predict",
    "accuracy",
    "resolve_device",
    "load_checkpoint",
    "read_checkpoint",
]

CHECKPOINT = "checkpoint.pt"
# Settings that may differ between a run and its resumption (they do not change the result).
_RESUMABLE_CHANGES = ("device", "compile", "eval_batch_size")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and run settings (None = decided by the device)."""

    epochs: int = ruled(15, Rule(int, 1))
    batch_size: int = ruled(64, Rule(int, 1))
    lr: float = ruled(4e-3, Rule(float, 0.0, open_low=True, doc="peak AdamW learning rate"))
    weight_decay: float = ruled(0.05, Rule(float, 0.0))
    warmup_epochs: float = ruled(1.0, Rule(float, 0.0))
    label_smoothing: float = ruled(0.0, Rule(float, 0.0, 1.0, open_high=True))
    grad_clip: float | None = ruled(1.0, Rule(float, 0.0, open_low=True, optional=True, doc="max gradient norm"))
    seed: int = ruled(0, Rule(int, 0, doc="seeds the weights, the data order and the noise"))
    device: str | None = None
    amp: bool | None = None  # bf16 autocast; default: on CUDA only
    channels_last: bool | None = None  # default: on CUDA only
    compile: bool = False
    eval_batch_size: int = ruled(256, Rule(int, 1))
    # After the last epoch, BatchNorm statistics of a model evaluated with noise off are
    # recomputed on up to this many training batches without noise (0 = never).
    bn_recalibration: int = ruled(64, Rule(int, 0))
    # what a practitioner tries instead of an NSDE (nsde.train.augment): off by default, and off draws nothing
    augment: AugmentConfig = AugmentConfig()
    adversarial: AdversarialConfig = AdversarialConfig()

    def __post_init__(self) -> None:
        check_fields(self)
        # a checkpoint, MLflow or JSON gives the nested configs as dicts
        object.__setattr__(self, "augment", augment_config_from_dict(self.augment))
        object.__setattr__(self, "adversarial", adversarial_config_from_dict(self.adversarial))


@dataclass(frozen=True)
class EpochMetrics:
    """What the per-epoch callback receives (and the checkpoint's history holds)."""

    epoch: int  # 1-based
    train_loss: float
    val_accuracy: float
    lr: float
    seconds: float
    examples_per_second: float
    # measured RMS(noise) / RMS(block output) per stage over the epoch ("stage0", ...)
    noise_to_signal: dict[str, float] = dataclasses.field(default_factory=dict)
    bn_recalibrated: int = 0  # training batches the BatchNorm statistics were recomputed on

    def flat(self) -> dict[str, float]:
        """The metrics as flat numbers (`nsr_stage0`, ...) for trackers that take scalars."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "noise_to_signal"}
        return {**out, **{f"nsr_{stage}": v for stage, v in self.noise_to_signal.items()}}


@dataclass
class TrainResult:
    model: NSDEModel
    history: list[EpochMetrics]
    checkpoint: Path | None


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or inf."""

    def __init__(self, epoch: int, step: int, loss: float) -> None:
        super().__init__(f"non-finite training loss {loss} at epoch {epoch}, step {step}; the run was stopped")
        self.epoch, self.step, self.loss = epoch, step, loss

    def __reduce__(self):  # Ray copies and pickles exceptions: rebuild from the fields, not the message
        return type(self), (self.epoch, self.step, self.loss)


# ---------------------------------------------------------------------------- helpers


def resolve_device(name: str | None) -> torch.device:
    if name:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for, but CUDA is not available")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _memory_format(cfg: TrainConfig, device: torch.device) -> torch.memory_format:
    use = cfg.channels_last if cfg.channels_last is not None else device.type == "cuda"
    return torch.channels_last if use else torch.contiguous_format


def _use_amp(cfg: TrainConfig, device: torch.device) -> bool:
    return cfg.amp if cfg.amp is not None else device.type == "cuda"


def _autocast(cfg: TrainConfig, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=_use_amp(cfg, device))


# Not timm's CosineLRScheduler: it holds the peak lr for one step where this schedule holds it for
# two (the last warm-up and the first cosine step), so its lrs differ (measured: up to 3 % of the peak).
def _lr_lambda(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    warmup = cfg.warmup_epochs * steps_per_epoch
    total = cfg.epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1.0, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _distributed() -> tuple[int, int]:
    """(rank, world size) of an initialised torch.distributed group, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _batches(n: int, batch_size: int, seed: int, epoch: int, world: int = 1) -> list[torch.Tensor]:
    """This epoch's shuffled batches, a function of (seed, epoch) only (so resume replays them).

    A short last batch is dropped when it cannot give each of the `world` ranks two examples
    (BatchNorm cannot train on one example; an empty slice has no loss).
    """
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) < 2 * world:
        batches.pop()
    return batches


def _save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------ train


def train(
    model_cfg: ModelConfig,
    data: SpectrogramData,
    cfg: TrainConfig,
    *,
    callback: Callable[[EpochMetrics, Path | None], None] | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume_from: str | os.PathLike | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train `model_cfg` on `data`'s train split, validating every epoch.

    Args:
        callback: called after every epoch with its metrics and the checkpoint path (the
            search reports to Ray Tune through it).
        checkpoint_dir: where `checkpoint.pt` is written after every epoch (atomically).
        resume_from: a checkpoint file or folder to continue from.

    Raises:
        NonFiniteLossError: the loss became NaN or inf.
    """
    if model_cfg.num_classes != len(data.class_names):
        raise ValueError(f"the model has num_classes={model_cfg.num_classes}, but the data set has "
                         f"{len(data.class_names)} classes ({data.class_names}); set ModelConfig.num_classes")
    device = resolve_device(cfg.device)
    # The run seeds the global RNG (initial weights, drop-path) and sets it on resume; forked,
    # the caller's RNG is left as it was.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        return _train(model_cfg, data, cfg, device, callback, checkpoint_dir, resume_from, progress)


def _train(model_cfg, data, cfg, device, callback, checkpoint_dir, resume_from, progress) -> TrainResult:
    fmt = _memory_format(cfg, device)
    rank, world = _distributed()
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    model = build_model(model_cfg).to(device, memory_format=fmt)
    noise_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1 + 1000 * rank)  # other noise per rank
    model.set_noise_generator(noise_gen)
    # the input noise's own stream (CPU: the batches are perturbed before they move), apart from the model's
    aug_gen = torch.Generator().manual_seed(cfg.seed + 2 + 1000 * rank + 7_919)
    perturb = _Perturb(cfg, data, aug_gen, model)
    train_split, val_split = data.split("train"), data.split("val")
    if cfg.batch_size < 2 * world:
        raise ValueError(f"`batch_size >= 2 * ranks` must hold for data-parallel training, but got "
                         f"batch_size={cfg.batch_size} with {world} ranks")
    steps_per_epoch = len(_batches(len(train_split), cfg.batch_size, cfg.seed, 0, world))
    # timm's grouping: no weight decay on 1-d parameters (norms, biases, layer scales)
    opt = torch.optim.AdamW(param_groups_weight_decay(model, cfg.weight_decay), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, steps_per_epoch))
    history: list[EpochMetrics] = []
    start_epoch = 0
    if resume_from is not None:
        start_epoch, history = _restore(Path(resume_from), model, opt, sched, noise_gen, model_cfg, cfg, aug_gen)
        if world > 1:  # the checkpoint holds rank 0's noise states: give every rank its own again
            noise_gen.manual_seed(cfg.seed + 1 + 1000 * rank + 100_003 * start_epoch)
            aug_gen.manual_seed(cfg.seed + 2 + 1000 * rank + 7_919 + 100_003 * start_epoch)
    step_model = model
    if world > 1:  # data-parallel: gradients averaged over the ranks (torch.distributed set up by the caller)
        step_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    step_model = torch.compile(step_model, dynamic=False) if cfg.compile else step_model
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None and rank == 0 else None
    if ckpt_dir is not None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = None
    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        metrics = _train_epoch(step_model, model, opt, sched, train_split, val_split, cfg, device, fmt, epoch,
                               progress, perturb)
        history.append(metrics)
        if ckpt_dir is not None:  # rank 0 only
            ckpt_path = ckpt_dir / CHECKPOINT
            _save_atomic(_checkpoint(model, opt, sched, noise_gen, model_cfg, cfg, data, epoch, history, aug_gen),
                         ckpt_path)
        if callback is not None:
            callback(metrics, ckpt_path)
    return TrainResult(model=model, history=history, checkpoint=ckpt_path)


class _Perturb:
    """A training batch's input perturbation: the augmentation, then the adversary (either may be off)."""

    def __init__(self, cfg: TrainConfig, data: SpectrogramData, generator: torch.Generator, model) -> None:
        self.augment = Augmenter(cfg.augment, data, generator) if cfg.augment.active else None
        self.adversary = Adversary(cfg.adversarial, model) if cfg.adversarial.active else None

    def inputs(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return self.augment(x, idx) if self.augment is not None else x

    def attack(self, x: torch.Tensor, y: torch.Tensor, epoch: int) -> torch.Tensor:
        return self.adversary(x, y, epoch) if self.adversary is not None else x


def _train_epoch(step_model, model, opt, sched, train_split, val_split, cfg, device, fmt, epoch, progress,
                 perturb: _Perturb):
    model.train()
    start = time.perf_counter()
    rank, world = _distributed()
    # every rank walks the same shuffled batches and trains on its slice of each
    batches = [idx[rank::world] for idx in _batches(len(train_split), cfg.batch_size, cfg.seed, epoch, world)]
    loss_sum = torch.zeros((), device=device)
    seen = 0
    bar = tqdm(batches, desc=f"epoch {epoch}/{cfg.epochs}", leave=False, disable=not progress)
    for step, idx in enumerate(bar, start=1):
        x = perturb.inputs(train_split.x[idx], idx).to(device, non_blocking=True).contiguous(memory_format=fmt)
        y = train_split.y[idx].to(device, non_blocking=True)
        x = perturb.attack(x, y, epoch)  # back in train mode after (torchattacks restores the mode)
        with _autocast(cfg, device):
            logits = step_model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        check = loss.detach().clone()
        if world > 1:  # a NaN on any rank stops every rank (else the others would wait forever)
            torch.distributed.all_reduce(check)
        if not torch.isfinite(check):  # one sync per step: cheap next to a training step
            raise NonFiniteLossError(epoch, step, float(check))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        loss_sum += loss.detach() * len(idx)
        seen += len(idx)
    if world > 1:  # the epoch's loss and count over all ranks
        totals = torch.stack([loss_sum, torch.tensor(float(seen), device=device)])
        torch.distributed.all_reduce(totals)
        loss_sum, seen = totals[0], int(totals[1])
    train_seconds = time.perf_counter() - start
    recalibrated = 0
    if epoch == cfg.epochs and cfg.bn_recalibration and model.needs_bn_recalibration:
        recalibrated = _recalibrate(model, train_split, cfg, device, fmt)
    val_acc = accuracy(model, val_split, batch_size=cfg.eval_batch_size, amp=_use_amp(cfg, device))
    return EpochMetrics(
        epoch=epoch,
        train_loss=float(loss_sum) / max(seen, 1),
        val_accuracy=val_acc,
        lr=sched.get_last_lr()[0],
        seconds=time.perf_counter() - start,
        examples_per_second=seen / train_seconds,
        noise_to_signal=model.noise_to_signal(),
        bn_recalibrated=recalibrated,
    )


def _recalibrate(model, train_split, cfg, device, fmt) -> int:
    """BatchNorm statistics without noise, from the first `bn_recalibration` batches of a fixed
    order. Every rank uses the same whole batches (not its slice), so the ranks agree."""
    order = _batches(len(train_split), cfg.batch_size, cfg.seed, cfg.epochs + 1)[: cfg.bn_recalibration]

    batches = (train_split.x[idx].to(device, non_blocking=True).contiguous(memory_format=fmt) for idx in order)
    with _autocast(cfg, device):
        return recalibrate_batchnorm(model, batches)


# ------------------------------------------------------------------------ checkpoints


def _checkpoint(model, opt, sched, noise_gen, model_cfg, cfg, data, epoch, history, aug_gen) -> dict:
    return {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "noise": noise_gen.get_state(),
            "augment": aug_gen.get_state(),
        },
        "model_config": dataclasses.asdict(model_cfg),
        "train_config": dataclasses.asdict(cfg),
        "data": {"path": str(data.path), "config": data.meta["config"]},
        "history": [dataclasses.asdict(m) for m in history],
    }


def _restore(path, model, opt, sched, noise_gen, model_cfg, cfg, aug_gen) -> tuple[int, list[EpochMetrics]]:
    path = path / CHECKPOINT if path.is_dir() else path
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint to resume from at {path}")
    ckpt = read_checkpoint(path)
    if ckpt["model_config"] != dataclasses.asdict(model_cfg):
        raise ValueError(f"checkpoint {path} was written for another model config: {ckpt['model_config']}")
    # The schedule and data order depend on these: resuming under others would not continue the run.
    # (a checkpoint from before a setting existed was written with its default)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    saved = dataclasses.asdict(TrainConfig(**{k: v for k, v in ckpt["train_config"].items() if k in known}))
    changed = {k: (saved[k], v) for k, v in dataclasses.asdict(cfg).items()
               if k not in _RESUMABLE_CHANGES and saved.get(k) != v}
    if changed:
        raise ValueError(f"checkpoint {path} was written with other training settings (saved, asked): {changed}")
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    if ckpt["rng"]["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
    noise_gen.set_state(ckpt["rng"]["noise"])
    if "augment" in ckpt["rng"]:
        aug_gen.set_state(ckpt["rng"]["augment"])
    return ckpt["epoch"], [EpochMetrics(**m) for m in ckpt["history"]]


def read_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint file's contents.

    Raises:
        ValueError: the file cannot be read (truncated, overwritten, not a checkpoint), naming it
            and the way out.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"checkpoint {path} cannot be read ({why}); remove it to train from scratch") from None
    if not isinstance(ckpt, dict) or "model_config" not in ckpt:
        raise ValueError(f"checkpoint {path} is not a checkpoint of nsde.train; remove it to train from scratch")
    return ckpt


def load_checkpoint(path: str | os.PathLike, *, device: str | None = None) -> NSDEModel:
    """The model of a checkpoint file (or a folder holding `checkpoint.pt`), in eval mode."""
    path = Path(path)
    path = path / CHECKPOINT if path.is_dir() else path
    ckpt = read_checkpoint(path)
    model = build_model(model_config_from_dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    return model.to(resolve_device(device)).eval()
