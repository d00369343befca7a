"""`python -m nsde.train`: train one classifier, report its test accuracy and, with `--evaluate`, every metric.

    python -m nsde.train --backbone convnext_atto --sigma 0.1 --hurst 0.5 --epochs 15 --out runs/one

Writes checkpoint.pt (after every epoch) and summary.json to --out. This command sits above
both `nsde.train` and `nsde.metrics`: training itself never imports the metrics.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from nsde.cli import user_errors
from nsde.data import PRESETS, DataConfig, prepare
from nsde.metrics import EVAL_PROFILES, eval_config, evaluate
from nsde.metrics.__main__ import comparison_tables
from nsde.models import EVAL_MODES, SIGMA_MODES, ModelConfig, NoiseConfig, list_backbones, parse_depth
from nsde.noise import ANCHORS
from nsde.train import CHECKPOINT, ConvergenceRule, EpochMetrics, TrainConfig, accuracy, diagnose, train
from nsde.train.augment import AUGMENT_KINDS, AdversarialConfig, AugmentConfig


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nsde.train",
        description="Train and evaluate one baseline (sigma 0) or NSDE classifier on the spectrogram data set.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d, m, n, t, a, v = DataConfig(), ModelConfig(), NoiseConfig(), TrainConfig(), AugmentConfig(), AdversarialConfig()
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
    g = p.add_argument_group("what a practitioner tries instead (nsde.train.augment)")
    g.add_argument("--augment", choices=AUGMENT_KINDS, default=a.kind,
                   help="noise on the training inputs: gaussian or fbm on the spectrogram, signal on the waveform")
    g.add_argument("--augment-low", type=float, default=a.low, help="lowest image-noise intensity (per-pixel std)")
    g.add_argument("--augment-high", type=float, default=a.high, help="highest image-noise intensity")
    g.add_argument("--augment-hurst", type=float, default=a.hurst, help="Hurst exponent of --augment fbm")
    g.add_argument("--augment-snr", type=float, nargs=2, default=(a.snr_low, a.snr_high), metavar=("LOW", "HIGH"),
                   help="SNR range in dB of --augment signal")
    g.add_argument("--augment-color", type=float, default=a.color, help="--augment signal: power ~ 1/f^color")
    g.add_argument("--adv-eps", type=float, default=v.eps, help="PGD-L2 adversarial training radius (0: off)")
    g.add_argument("--adv-steps", type=int, default=v.steps, help="PGD steps per batch")
    g.add_argument("--adv-alpha", type=float, default=v.alpha, help="PGD step size (default 2.5 eps / steps)")
    g.add_argument("--adv-ramp-epochs", type=int, default=v.ramp_epochs, help="epochs eps ramps up over")
    g = p.add_argument_group("output")
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
        augment=AugmentConfig(kind=args.augment, low=args.augment_low, high=args.augment_high,
                              hurst=args.augment_hurst, snr_low=args.augment_snr[0], snr_high=args.augment_snr[1],
                              color=args.augment_color),
        adversarial=AdversarialConfig(eps=args.adv_eps, steps=args.adv_steps, alpha=args.adv_alpha,
                                      ramp_epochs=args.adv_ramp_epochs),
    )
    return data, model, run


@user_errors
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
    resume = out / CHECKPOINT if args.resume else None
    result = train(model_cfg, data, train_cfg, callback=_print_epoch, checkpoint_dir=out, resume_from=resume,
                   progress=not args.quiet)
    test_acc = accuracy(result.model, data.split("test"), batch_size=train_cfg.eval_batch_size)
    summary = {
        "model_config": dataclasses.asdict(model_cfg),
        "train_config": dataclasses.asdict(train_cfg),
        "data": {"path": str(data.path), "counts": data.meta["counts"], "config": data.meta["config"]},
        "history": [dataclasses.asdict(m) for m in result.history],
        "val_accuracy": result.history[-1].val_accuracy if result.history else None,
        "convergence": diagnose([m.val_accuracy for m in result.history]) if result.history else None,
        "test_accuracy": test_acc,
        "checkpoint": str(result.checkpoint) if result.checkpoint else None,
    }
    print(f"test accuracy {test_acc:.4f} (n={len(data.indices('test'))})")
    if summary["convergence"]:
        print(_convergence_line(summary["convergence"]))
    if args.evaluate:
        summary.update(_evaluate(result.model, data, args, out))
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"summary: {out / 'summary.json'}")
    return 0


def _convergence_line(c: dict) -> str:
    rule = f"rule: {ConvergenceRule().describe()}; docs/training.md"
    if c["val_slope"] != c["val_slope"]:  # NaN: fewer epochs than the tail needs
        return f"convergence: too few epochs to tell (the slope needs {c['tail_epochs']}); {rule}"
    verdict = "converged" if c["converged"] else "NOT converged (still learning: compare at convergence)"
    return (f"convergence: validation slope {100 * c['val_slope']:+.2f} points/epoch over the last "
            f"{c['tail_epochs']} epochs, best epoch {c['best_epoch']}, {verdict}; {rule}")


def _print_epoch(m: EpochMetrics, _checkpoint) -> None:
    nsr = "  noise/signal " + " ".join(f"{v:.2f}" for v in m.noise_to_signal.values()) if m.noise_to_signal else ""
    bn = f"  BatchNorm recalibrated on {m.bn_recalibrated} batches" if m.bn_recalibrated else ""
    print(
        f"epoch {m.epoch:3d}  loss {m.train_loss:.4f}  val acc {m.val_accuracy:.4f}  "
        f"lr {m.lr:.2e}  {m.examples_per_second:7.1f} ex/s  {m.seconds:6.1f} s{nsr}{bn}",
        flush=True,
    )


def _evaluate(model, data, args: argparse.Namespace, out: Path) -> dict:
    """--evaluate: every metric on --eval-split, written to eval_report.json and printed as tables;
    returns the summary's objective entries."""
    report = evaluate(model, data, eval_config(args.eval_profile), split=args.eval_split)
    (out / "eval_report.json").write_text(report.to_json())
    print(comparison_tables({out.name: report}))
    return {"objectives": report.objectives, "objectives_split": report.split}


if __name__ == "__main__":
    sys.exit(main())
