"""One training run: an NSDE (or plain, sigma = 0) classifier on a prepared spectrogram set.

    python -m nsde.train --backbone convnext_atto --sigma 0.1 --hurst 0.5 --epochs 15 --out runs/one

AdamW with linear warm-up then cosine decay (per step), optional label smoothing and
gradient clipping; bf16 autocast and channels_last on CUDA, fp32 on CPU; optional
torch.compile. Seeded: on CPU two runs with the same seed give the same weights, and a
run resumed from a checkpoint ends where the uninterrupted run ends (the data order of
every epoch is derived from (seed, epoch), and the checkpoint holds the optimiser,
schedule and every RNG state, the noise generator's included). A non-finite loss stops
the run with `NonFiniteLossError` naming the epoch and step.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.optim import param_groups_weight_decay
from tqdm.auto import tqdm

from nsde.data import PRESETS, DataConfig, Split, SpectrogramData, prepare
from nsde.models import (
    EVAL_MODES,
    SIGMA_MODES,
    ModelConfig,
    NoiseConfig,
    NSDEModel,
    build_model,
    list_backbones,
    model_config_from_dict,
    parse_depth,
    recalibrate_batchnorm,
)
from nsde.noise import ANCHORS

__all__ = [
    "TrainConfig",
    "EpochMetrics",
    "TrainResult",
    "NonFiniteLossError",
    "train",
    "predict",
    "accuracy",
    "resolve_device",
]

CHECKPOINT = "checkpoint.pt"
# Settings that may differ between a run and its resumption (they do not change the result).
_RESUMABLE_CHANGES = ("device", "compile", "eval_batch_size")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and run settings (None = decided by the device)."""

    epochs: int = 15
    batch_size: int = 64
    lr: float = 4e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    grad_clip: float | None = 1.0
    seed: int = 0
    device: str | None = None
    amp: bool | None = None  # bf16 autocast; default: on CUDA only
    channels_last: bool | None = None  # default: on CUDA only
    compile: bool = False
    eval_batch_size: int = 256
    # After the last epoch, BatchNorm statistics of a model evaluated with noise off are
    # recomputed on up to this many training batches without noise (0 = never).
    bn_recalibration: int = 64

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name} >= 1` must hold, but got {name}={getattr(self, name)}")
        if self.bn_recalibration < 0:
            raise ValueError(f"`bn_recalibration >= 0` (batches; 0 = off) must hold, but got {self.bn_recalibration}")
        if not self.lr > 0:
            raise ValueError(f"`lr > 0` must hold, but got lr={self.lr}")
        if self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ValueError(
                f"`weight_decay >= 0` and `warmup_epochs >= 0` must hold, but got "
                f"weight_decay={self.weight_decay}, warmup_epochs={self.warmup_epochs}"
            )
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"`0 <= label_smoothing < 1` must hold, but got {self.label_smoothing}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"`grad_clip > 0` (or None) must hold, but got {self.grad_clip}")


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


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, *, batch_size: int = 256, device=None, amp: bool = False):
    """Logits of `model` (in its current mode) for x (N, 1, S, S), batched: (N, K) float32 on CPU."""
    device = device or next(model.parameters()).device
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device, non_blocking=True).contiguous(memory_format=fmt)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out.append(model(xb).float().cpu())
    return torch.cat(out) if out else torch.empty(0)


def accuracy(model: torch.nn.Module, split: Split, *, batch_size: int = 256, amp: bool = False) -> float:
    """Top-1 accuracy of `model` in eval mode (its configured evaluation noise) on `split`."""
    was_training = model.training
    model.eval()
    try:
        logits = predict(model, split.x, batch_size=batch_size, amp=amp)
    finally:
        model.train(was_training)
    return float((logits.argmax(-1) == split.y).float().mean())


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
    fmt = _memory_format(cfg, device)
    rank, world = _distributed()
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    model = build_model(model_cfg).to(device, memory_format=fmt)
    noise_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1 + 1000 * rank)  # other noise per rank
    model.set_noise_generator(noise_gen)
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
        start_epoch, history = _restore(Path(resume_from), model, opt, sched, noise_gen, model_cfg, cfg)
        if world > 1:  # the checkpoint holds rank 0's noise state: give every rank its own again
            noise_gen.manual_seed(cfg.seed + 1 + 1000 * rank + 100_003 * start_epoch)
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
        metrics = _train_epoch(step_model, model, opt, sched, train_split, val_split, cfg, device, fmt, epoch, progress)
        history.append(metrics)
        if ckpt_dir is not None:  # rank 0 only
            ckpt_path = ckpt_dir / CHECKPOINT
            _save_atomic(_checkpoint(model, opt, sched, noise_gen, model_cfg, cfg, data, epoch, history), ckpt_path)
        if callback is not None:
            callback(metrics, ckpt_path)
    return TrainResult(model=model, history=history, checkpoint=ckpt_path)


def _train_epoch(step_model, model, opt, sched, train_split, val_split, cfg, device, fmt, epoch, progress):
    model.train()
    start = time.perf_counter()
    rank, world = _distributed()
    # every rank walks the same shuffled batches and trains on its slice of each
    batches = [idx[rank::world] for idx in _batches(len(train_split), cfg.batch_size, cfg.seed, epoch, world)]
    loss_sum = torch.zeros((), device=device)
    seen = 0
    bar = tqdm(batches, desc=f"epoch {epoch}/{cfg.epochs}", leave=False, disable=not progress)
    for step, idx in enumerate(bar, start=1):
        x = train_split.x[idx].to(device, non_blocking=True).contiguous(memory_format=fmt)
        y = train_split.y[idx].to(device, non_blocking=True)
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


def _checkpoint(model, opt, sched, noise_gen, model_cfg, cfg, data, epoch, history) -> dict:
    return {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "noise": noise_gen.get_state(),
        },
        "model_config": dataclasses.asdict(model_cfg),
        "train_config": dataclasses.asdict(cfg),
        "data": {"path": str(data.path), "config": data.meta["config"]},
        "history": [dataclasses.asdict(m) for m in history],
    }


def _restore(path, model, opt, sched, noise_gen, model_cfg, cfg) -> tuple[int, list[EpochMetrics]]:
    path = path / CHECKPOINT if path.is_dir() else path
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint to resume from at {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if ckpt["model_config"] != dataclasses.asdict(model_cfg):
        raise ValueError(f"checkpoint {path} was written for another model config: {ckpt['model_config']}")
    # The schedule and data order depend on these: resuming under others would not continue the run.
    changed = {k: (ckpt["train_config"][k], v) for k, v in dataclasses.asdict(cfg).items()
               if k not in _RESUMABLE_CHANGES and ckpt["train_config"].get(k) != v}
    if changed:
        raise ValueError(f"checkpoint {path} was written with other training settings (saved, asked): {changed}")
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    if ckpt["rng"]["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
    noise_gen.set_state(ckpt["rng"]["noise"])
    return ckpt["epoch"], [EpochMetrics(**m) for m in ckpt["history"]]


def load_checkpoint(path: str | os.PathLike, *, device: str | None = None) -> NSDEModel:
    """The model of a checkpoint file (or a folder holding `checkpoint.pt`), in eval mode."""
    path = Path(path)
    path = path / CHECKPOINT if path.is_dir() else path
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(model_config_from_dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    return model.to(resolve_device(device)).eval()


# --------------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    from nsde.metrics.evaluate import EVAL_PROFILES  # lazy: nsde.metrics imports this module
    p = argparse.ArgumentParser(
        prog="python -m nsde.train",
        description="Train and evaluate one baseline (sigma 0) or NSDE classifier on the spectrogram data set.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d, m, n, t = DataConfig(), ModelConfig(), NoiseConfig(), TrainConfig()
    g = p.add_argument_group("data")
    g.add_argument("--preset", choices=sorted(PRESETS), default="default", help="data preset to start from")
    g.add_argument("--examples-per-class", type=int, default=None, help="override the preset's count (synthetic)")
    g.add_argument("--image-size", type=int, default=None, help="override the preset's image side")
    g.add_argument("--data-seed", type=int, default=d.seed, help="seed of the generator and the split")
    g.add_argument("--recordings", default=None, help="folder/file of your recordings instead of synthetic data")
    g.add_argument("--window", type=int, default=None, help="samples per example cut from recordings")
    g.add_argument("--cache-dir", default=None, help="data cache (default: $NSDE_CACHE_DIR or ~/.cache/nsde)")
    g.add_argument("--train-locations", default=None,
                   help="location shift: train and validate on these location indices (e.g. '0,1,2'), "
                        "test on the others")
    g = p.add_argument_group("model")
    g.add_argument("--backbone", choices=list_backbones(), default=m.backbone)
    g.add_argument("--drop-path", type=float, default=m.drop_path_rate, help="stochastic-depth rate")
    g.add_argument("--shape", default=n.shape, help="noise shape: fbm, white or stationary")
    g.add_argument("--hurst", type=float, default=n.hurst, help="Hurst exponent in (0, 1) (fbm, stationary)")
    g.add_argument("--sigma", type=float, default=0.1, help="noise intensity; 0 = the deterministic baseline")
    g.add_argument("--depth", default="all", help="noisy blocks: k (first k), f in (0,1] (fraction), 'stages:0,1', 'all'")
    g.add_argument("--sigma-mode", choices=SIGMA_MODES, default=n.sigma_mode,
                   help="absolute: sigma * field; relative: sigma * RMS of the block's output * field")
    g.add_argument("--anchor", choices=ANCHORS, default=n.anchor,
                   help="mean: zero-mean fields; corner: the field's own law (fBm with B(0,0) = 0)")
    g.add_argument("--method", default=n.method, help="fBm method: exact, stein, dense or spectral")
    g.add_argument("--eval-mode", choices=EVAL_MODES, default=n.eval_mode, help="noise at evaluation")
    g.add_argument("--mc-samples", type=int, default=n.mc_samples, help="passes averaged by --eval-mode mc")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=t.epochs)
    g.add_argument("--batch-size", type=int, default=t.batch_size)
    g.add_argument("--lr", type=float, default=t.lr, help="peak AdamW learning rate")
    g.add_argument("--weight-decay", type=float, default=t.weight_decay)
    g.add_argument("--warmup-epochs", type=float, default=t.warmup_epochs)
    g.add_argument("--label-smoothing", type=float, default=t.label_smoothing)
    g.add_argument("--grad-clip", type=float, default=t.grad_clip, help="max gradient norm (<= 0: off)")
    g.add_argument("--seed", type=int, default=t.seed, help="seeds weights, data order and noise")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--bn-recalibration", type=int, default=t.bn_recalibration,
                   help="training batches to recompute BatchNorm statistics on without noise after the last "
                        "epoch, for a model evaluated with noise off (0: keep the statistics training collected)")
    g.add_argument("--out", default=None, help="output folder (default: runs/train-<time>)")
    g.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    g.add_argument("--evaluate", action="store_true",
                   help="after training, run every metric (noise sweep, APGD, ABC, stability) and print the tables")
    g.add_argument("--eval-profile", choices=sorted(EVAL_PROFILES), default="fast",
                   help="fast: fewer APGD steps, smaller subsets; full: the study's settings (slow on CPU)")
    g.add_argument("--eval-split", choices=("val", "test"), default="val",
                   help="the split --evaluate scores (select on val; report test once, for what you selected)")
    return p


def configs_from_args(args: argparse.Namespace) -> tuple[DataConfig, ModelConfig, TrainConfig]:
    """The three frozen configs that the command-line options describe."""
    data = PRESETS[args.preset]
    overrides = {"seed": args.data_seed, "cache_dir": args.cache_dir}
    if args.examples_per_class is not None:
        overrides["examples_per_class"] = args.examples_per_class
    if args.image_size is not None:
        overrides["image_size"] = args.image_size
    if args.recordings:
        overrides.update(source="recordings", path=args.recordings, window=args.window)
    if args.train_locations:
        try:
            overrides["train_locations"] = tuple(int(i) for i in args.train_locations.split(","))
        except ValueError:
            raise ValueError(f"--train-locations must be comma-separated location indices, but got "
                             f"{args.train_locations!r}") from None
    data = dataclasses.replace(data, **overrides)
    noise = NoiseConfig(
        shape=args.shape,
        hurst=args.hurst,
        sigma=args.sigma,
        sigma_mode=args.sigma_mode,
        anchor=args.anchor,
        depth=parse_depth(args.depth),
        method=args.method,
        eval_mode=args.eval_mode,
        mc_samples=args.mc_samples,
    )
    model = ModelConfig(backbone=args.backbone, num_classes=len(data.class_names), drop_path_rate=args.drop_path,
                        noise=noise)
    run = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_epochs=args.warmup_epochs,
        label_smoothing=args.label_smoothing,
        grad_clip=args.grad_clip if args.grad_clip and args.grad_clip > 0 else None,
        seed=args.seed,
        device=args.device,
        compile=args.compile,
        bn_recalibration=args.bn_recalibration,
    )
    return data, model, run


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        data_cfg, model_cfg, train_cfg = configs_from_args(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out or f"runs/train-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    data = prepare(data_cfg, progress=not args.quiet)
    print(f"data: {data.path} ({data.meta['counts']})")

    def report(m: EpochMetrics, _ckpt) -> None:
        nsr = "  noise/signal " + " ".join(f"{v:.2f}" for v in m.noise_to_signal.values()) if m.noise_to_signal else ""
        bn = f"  BatchNorm recalibrated on {m.bn_recalibrated} batches" if m.bn_recalibrated else ""
        print(
            f"epoch {m.epoch:3d}  loss {m.train_loss:.4f}  val acc {m.val_accuracy:.4f}  "
            f"lr {m.lr:.2e}  {m.examples_per_second:7.1f} ex/s  {m.seconds:6.1f} s{nsr}{bn}",
            flush=True,
        )

    resume = out / CHECKPOINT if args.resume else None
    result = train(model_cfg, data, train_cfg, callback=report, checkpoint_dir=out, resume_from=resume,
                   progress=not args.quiet)
    test_acc = accuracy(result.model, data.split("test"), batch_size=train_cfg.eval_batch_size)
    summary = {
        "model_config": dataclasses.asdict(model_cfg),
        "train_config": dataclasses.asdict(train_cfg),
        "data": {"path": str(data.path), "counts": data.meta["counts"], "config": data.meta["config"]},
        "history": [dataclasses.asdict(m) for m in result.history],
        "val_accuracy": result.history[-1].val_accuracy if result.history else None,
        "test_accuracy": test_acc,
        "checkpoint": str(result.checkpoint) if result.checkpoint else None,
    }
    print(f"test accuracy {test_acc:.4f} (n={len(data.indices('test'))})")
    if args.evaluate:
        from nsde.metrics import evaluate
        from nsde.metrics.__main__ import comparison_tables
        from nsde.metrics.evaluate import eval_config

        report = evaluate(result.model, data, eval_config(args.eval_profile), split=args.eval_split)
        (out / "eval_report.json").write_text(report.to_json())
        summary["objectives"] = report.objectives
        summary["objectives_split"] = report.split
        print(comparison_tables({out.name: report}))
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"summary: {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
