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

from nsde.metrics.stats import Estimate, auroc, mean_estimate

__all__ = [
    "integrated_gradients",
    "path_averaged_gradient",
    "noise_tunnel",
    "saliency",
    "abc_scores",
    "abc_summary",
    "attribution_stability",
    "attribution_figure",
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
    out = model(copies.view(b * samples, *x.shape[1:])).argmax(-1).view(b, samples)
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
        pred = _predicted(model, xb)
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


def abc_summary(scores: np.ndarray, correct: np.ndarray) -> dict[str, Estimate | float]:
    """Mean ABC over correct and incorrect predictions, and the AUROC of ABC for correctness."""
    correct = np.asarray(correct, dtype=bool)
    return {
        "mean_correct": mean_estimate(scores[correct]),
        "mean_incorrect": mean_estimate(scores[~correct]),
        "auroc": auroc(scores, correct),
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
) -> Estimate:
    """log(sum |IG(x + delta) - IG(x)|), delta ~ N(0, stdev^2), averaged over draws; lower is more stable.

    The target class is the clean prediction for both maps; one value per example.
    """
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    values = []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        pred = _predicted(model, xb)
        ref = integrated_gradients(model, xb, pred, steps=ig_steps)
        per_draw = []
        for _ in range(draws):
            noisy = (xb + stdev * torch.randn(xb.shape, generator=gen, device=device)).clamp(0.0, 1.0)
            change = (integrated_gradients(model, noisy, pred, steps=ig_steps) - ref).abs().flatten(1).sum(1)
            per_draw.append(torch.log(change.clamp_min(1e-30)))
        values.append(torch.stack(per_draw).mean(0).detach().cpu())
    return mean_estimate(torch.cat(values).numpy()) if values else mean_estimate([])


def attribution_figure(models: dict[str, torch.nn.Module], x: torch.Tensor, path, *, ig_steps: int = 32,
                       nt_samples: int = 10, stdev: float = 0.01):
    """The study's Figure 4: for each example, the input, then IG and NoiseTunnel per model.

    Args:
        models: name -> model (e.g. {"baseline": ..., "NSDE": ...}); x: (N, 1, S, S) on CPU.
        path: where the PNG is written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["input"] + [f"{name}: {kind}" for name in models for kind in ("IG", "NoiseTunnel")]
    fig, axes = plt.subplots(len(x), len(columns), figsize=(2.2 * len(columns), 2.2 * len(x)), squeeze=False)
    maps = []
    for name, model in models.items():
        model.eval()
        device = next(model.parameters()).device
        xb = x.to(device)
        maps.append(integrated_gradients(model, xb, steps=ig_steps).detach().cpu())
        maps.append(noise_tunnel(model, xb, steps=ig_steps // 2, samples=nt_samples, stdev=stdev).detach().cpu())
    for i in range(len(x)):
        axes[i, 0].imshow(x[i, 0], cmap="magma", vmin=0, vmax=1)
        for j, m in enumerate(maps, start=1):
            a = m[i, 0].abs()
            axes[i, j].imshow(a / a.max().clamp_min(1e-12), cmap="inferno", vmin=0, vmax=1)
    for j, title in enumerate(columns):
        axes[0, j].set_title(title, fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
