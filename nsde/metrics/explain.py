"""Explanations: Captum attributions, attribution-based confidence (ABC) and attribution stability.

ABC is Algorithm 1 of S. Jha, S. Raj, S. Fernandes, S. K. Jha, S. Jha, B. Jalaian,
G. Verma, A. Swami (2019), "Attribution-based confidence metric for deep neural networks",
NeurIPS: with Integrated-Gradients attributions A against a baseline b, feature j is chosen
with probability P_j proportional to |A_j / (x_j - b_j)|, which for IG is the absolute
*path-averaged gradient* (computed directly, with Captum's `multiply_by_inputs=False`, so no
division by x_j = 0 ever happens); each of S samples sets `mutate` features drawn from P
(without replacement) to their baseline value; ABC is the fraction of samples whose
prediction is unchanged. Attributions are taken for the predicted class.
"""

from __future__ import annotations

import numpy as np
import torch

from nsde.metrics.robustness import predict_labels
from nsde.metrics.stats import Estimate, auroc, bootstrap, bootstrap_mean

__all__ = [
    "integrated_gradients",
    "path_averaged_gradient",
    "noise_tunnel",
    "saliency",
    "abc_scores",
    "abc_summary",
    "attribution_stability",
    "attribution_figure",
    "attribution_maps",
    "ATTRIBUTION_CAPTION",
]


def _predicted(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(-1)


def integrated_gradients(model, x, target=None, *, steps: int = 32, baseline: float = 0.0) -> torch.Tensor:
    """Captum Integrated Gradients for `target` (default: the predicted class), shape of x."""
    from captum.attr import IntegratedGradients

    target = _predicted(model, x) if target is None else target
    return IntegratedGradients(model).attribute(x, baselines=baseline, target=target, n_steps=steps)


def path_averaged_gradient(model, x, target=None, *, steps: int = 32, baseline: float = 0.0) -> torch.Tensor:
    """The gradient averaged along IG's straight path: IG without the (x - b) factor."""
    from captum.attr import IntegratedGradients

    target = _predicted(model, x) if target is None else target
    ig = IntegratedGradients(model, multiply_by_inputs=False)
    return ig.attribute(x, baselines=baseline, target=target, n_steps=steps)


def noise_tunnel(model, x, target=None, *, steps: int = 16, samples: int = 10, stdev: float = 0.01) -> torch.Tensor:
    """SmoothGrad (Captum NoiseTunnel) over Integrated Gradients, stdev 0.01 as published."""
    from captum.attr import IntegratedGradients, NoiseTunnel

    target = _predicted(model, x) if target is None else target
    nt = NoiseTunnel(IntegratedGradients(model))
    return nt.attribute(x, nt_type="smoothgrad", nt_samples=samples, stdevs=stdev, target=target, n_steps=steps)


def saliency(model, x, target=None) -> torch.Tensor:
    """Absolute input gradient (Captum Saliency)."""
    from captum.attr import Saliency

    target = _predicted(model, x) if target is None else target
    return Saliency(model).attribute(x, target=target, abs=True)


@torch.no_grad()
def _mutated_predictions(model, x, probs, pred, *, samples, mutate, baseline, generator) -> torch.Tensor:
    """(B,) fraction of `samples` mutated copies whose prediction stays `pred`."""
    b = x.shape[0]
    flat = x.flatten(1)  # (B, ...) -> (B, D)
    # (B, D) probabilities -> (B*S, mutate) feature indices, drawn without replacement per sample.
    idx = torch.multinomial(probs.repeat_interleave(samples, 0), mutate, replacement=False, generator=generator)
    copies = flat.repeat_interleave(samples, 0).clone()  # (B*S, D)
    copies.scatter_(1, idx, baseline)
    out = predict_labels(model, copies.view(b * samples, *x.shape[1:]), b * samples).to(pred.device).view(b, samples)
    return (out == pred[:, None]).float().mean(1)


def abc_scores(
    model: torch.nn.Module,
    x: torch.Tensor,
    *,
    samples: int = 64,
    mutate: float | int = 0.01,
    ig_steps: int = 32,
    baseline: float = 0.0,
    seed: int = 0,
    batch_size: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """ABC of every example of x (N, ...), and the model's predictions (N,).

    Args:
        samples: S, mutated copies per example.
        mutate: features set to the baseline per copy: an int count, or a fraction of all
            features (at least 1); capped at the features not already at the baseline.
    """
    model.eval()
    device = next(model.parameters()).device
    n_features = int(np.prod(x.shape[1:]))
    k = mutate if isinstance(mutate, int) else max(1, int(round(mutate * n_features)))
    if not 1 <= k <= n_features:
        raise ValueError(f"`mutate` must select between 1 and {n_features} features, but selects {k}")
    gen = torch.Generator(device=device).manual_seed(seed)
    scores, preds = [], []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        pred = predict_labels(model, xb, len(xb)).to(device)  # the model's evaluation-mode prediction
        weight = path_averaged_gradient(model, xb, pred, steps=ig_steps, baseline=baseline).abs().flatten(1)
        # A feature already at the baseline has A_j / (x_j - b_j) = 0/0 and mutating it
        # changes nothing: it is never chosen (else it would use up a mutation).
        eligible = xb.flatten(1) != baseline
        weight = torch.where(eligible, weight, torch.zeros_like(weight))
        # No preference left (zero gradient on every eligible feature): uniform over eligible.
        weight = torch.where(weight.sum(1, keepdim=True) > 0, weight, eligible.to(weight.dtype))
        k_b = min(k, int(eligible.sum(1).min()))
        if k_b == 0:  # an input equal to the baseline everywhere: nothing to mutate
            scores.append(torch.ones(len(xb)))
            preds.append(pred.cpu())
            continue
        probs = weight / weight.sum(1, keepdim=True)
        scores.append(_mutated_predictions(model, xb, probs, pred, samples=samples, mutate=k_b, baseline=baseline,
                                           generator=gen).cpu())
        preds.append(pred.cpu())
    return torch.cat(scores).numpy(), torch.cat(preds).numpy()


def abc_summary(scores: np.ndarray, correct: np.ndarray, *, resamples: int = 2000, seed: int = 0) -> dict:
    """Mean ABC over correct and incorrect predictions, and the AUROC of ABC as a predictor of a
    correct prediction, each an Estimate with a percentile-bootstrap 95 % interval (resampling
    examples; bounded by [0, 1]).

    A constant classifier has ABC 1 everywhere: its `mean_correct` is 1, its AUROC 0.5. The
    AUROC is undefined (nan) when the examples hold no correct or no incorrect prediction;
    "auroc_note" then says so (else it is None).
    """
    scores = np.asarray(scores, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    n_ok, n_bad = int(correct.sum()), int((~correct).sum())
    note = None
    if n_ok == 0 or n_bad == 0:
        note = (f"undefined: all {len(correct)} evaluated predictions are "
                f"{'incorrect' if n_ok == 0 else 'correct'}; use a larger abc_subset")
        area = Estimate(float("nan"), len(correct), float("nan"), float("nan"))
    else:
        area = bootstrap(lambda idx: auroc(scores[idx], correct[idx]), len(scores), resamples=resamples, seed=seed)
    return {
        "mean_correct": bootstrap_mean(scores[correct], resamples=resamples, seed=seed),
        "mean_incorrect": bootstrap_mean(scores[~correct], resamples=resamples, seed=seed),
        "auroc": area,
        "auroc_note": note,
    }


def attribution_stability(
    model: torch.nn.Module,
    x: torch.Tensor,
    *,
    draws: int = 4,
    stdev: float = 0.01,
    ig_steps: int = 32,
    seed: int = 0,
    batch_size: int = 16,
) -> tuple[Estimate, np.ndarray]:
    """Relative change of IG under input noise; lower is more stable.

    Per example: sum_j |IG(x + delta)_j - IG(x)_j| / sum_j |IG(x)_j|, delta ~ N(0, stdev^2)
    (the noisy input clipped to [0, 1]), averaged over `draws`. IG is linear in the logit
    scale, so the ratio does not depend on it: a model with 10x larger logits (the same
    decisions) gets the same value (the former log(sum |IG(x + delta) - IG(x)|) rose by
    log 10). 0 = the map does not move; 1 = it moves by as much mass as it holds. The target
    class is the clean prediction for both maps.

    Returns:
        (Estimate, values): the mean over examples with its percentile-bootstrap 95 % interval
        (`bootstrap_mean`, seeded with `seed`), and the (N,) per-example values. An example
        whose clean IG is zero everywhere (e.g. an input equal to the baseline) has no
        relative change: its value is nan and the Estimate leaves it out.
    """
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    values = []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        pred = predict_labels(model, xb, len(xb)).to(device)  # the clean evaluation-mode prediction
        ref = integrated_gradients(model, xb, pred, steps=ig_steps).detach()
        norm = ref.abs().flatten(1).sum(1).double()  # (B,) sum_j |IG(x)_j|
        per_draw = []
        for _ in range(draws):
            noisy = (xb + stdev * torch.randn(xb.shape, generator=gen, device=device)).clamp(0.0, 1.0)
            change = (integrated_gradients(model, noisy, pred, steps=ig_steps).detach() - ref).abs().flatten(1).sum(1)
            per_draw.append(change.double() / norm)  # 0/0 -> nan, x/0 -> inf: both made nan below
        rel = torch.stack(per_draw).mean(0)
        values.append(torch.where(norm > 0, rel, torch.full_like(rel, float("nan"))).cpu())
    per_example = torch.cat(values).numpy() if values else np.zeros(0)
    return bootstrap_mean(per_example[np.isfinite(per_example)], seed=seed), per_example


def _lattice_note(model: torch.nn.Module) -> str:
    """'name: feature strides 4/8/16/32 px' for a timm backbone (the lattice its maps can show), else ''."""
    backbone = getattr(model, "backbone", model)
    info = getattr(backbone, "feature_info", None)
    try:
        strides = "/".join(str(int(f["reduction"])) for f in info)
    except (TypeError, KeyError, ValueError):
        return ""
    cfg = getattr(model, "cfg", None)
    return f"{getattr(cfg, 'backbone', type(backbone).__name__)}: feature strides {strides} px" if strides else ""


ATTRIBUTION_CAPTION = (
    "|attribution| of the predicted class (zero baseline), each map scaled to its own maximum. A regular "
    "grid is the backbone's downsampling lattice, not the spectrogram: ResNet's 1x1 stride-2 shortcuts pass "
    "gradient from every 2nd position only (blobs every 16-32 px), ConvNeXt's non-overlapping stem and "
    "downsampling give a 4-px texture and block edges every 16-32 px (docs/metrics.md, 'Attribution maps')."
)


def attribution_maps(models: dict[str, torch.nn.Module], x: torch.Tensor, *, ig_steps: int = 32,
                     nt_samples: int = 10, stdev: float = 0.01) -> dict[str, np.ndarray]:
    """The attribution panels of `attribution_figure`, exactly as drawn.

    Returns "name: IG" and "name: NoiseTunnel" per model -> (N, S, S) float arrays in [0, 1]:
    |attribution| of the predicted class (zero baseline; NoiseTunnel = SmoothGrad over IG with
    `nt_samples` draws of stdev `stdev` and ig_steps // 2 steps), divided by each map's maximum.
    """
    panels = {}
    for name, model in models.items():
        model.eval()
        device = next(model.parameters()).device
        xb = x.to(device)
        ig = integrated_gradients(model, xb, steps=ig_steps)
        nt = noise_tunnel(model, xb, steps=max(1, ig_steps // 2), samples=nt_samples, stdev=stdev)
        for kind, m in (("IG", ig), ("NoiseTunnel", nt)):
            a = m.detach().float().cpu()[:, 0].abs()  # (N, S, S): rows = frequency, columns = time
            panels[f"{name}: {kind}"] = (a / a.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]).numpy()
    return panels


def attribution_figure(models: dict[str, torch.nn.Module], x: torch.Tensor, path, *, ig_steps: int = 32,
                       nt_samples: int = 10, stdev: float = 0.01):
    """The study's Figure 4: for each example, the input, then IG and NoiseTunnel per model.

    The panels are `attribution_maps`; a caption under them (`ATTRIBUTION_CAPTION`, and each
    model's feature strides when it is a timm backbone) says how they are scaled and that a
    regular grid in them is the backbone's downsampling lattice (docs/metrics.md).

    Args:
        models: name -> model (e.g. {"baseline": ..., "NSDE": ...}); x: (N, 1, S, S) on CPU.
        path: where the PNG is written.
    """
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = attribution_maps(models, x, ig_steps=ig_steps, nt_samples=nt_samples, stdev=stdev)
    columns = ["input", *panels]
    width = 2.2 * len(columns)
    notes = [n for n in (_lattice_note(m) for m in models.values()) if n]
    caption = textwrap.fill(ATTRIBUTION_CAPTION + (" " + "; ".join(dict.fromkeys(notes)) + "." if notes else ""),
                            width=max(60, int(width * 17)))
    lines = caption.count("\n") + 1
    fig, axes = plt.subplots(len(x), len(columns), figsize=(width, 2.2 * len(x) + 0.12 * lines + 0.1),
                             squeeze=False)
    for i in range(len(x)):
        axes[i, 0].imshow(x[i, 0].float().cpu(), cmap="magma", vmin=0, vmax=1)
        for j, maps in enumerate(panels.values(), start=1):
            axes[i, j].imshow(maps[i], cmap="inferno", vmin=0, vmax=1)
    for j, title in enumerate(columns):
        axes[0, j].set_title(title, fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.text(0.01, 0.005, caption, fontsize=6.5, va="bottom", ha="left")
    fig.tight_layout(rect=(0, (0.12 * lines + 0.1) / fig.get_figheight(), 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
