"""Robustness: accuracy under added input noise (the sweep) and under APGD-CE L2 attacks.

APGD is Croce & Hein (2020), "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks", run through torchattacks. A stochastic model
(an NSDE whose evaluation draws noise) is attacked with expectation over transformation
(`eot_iter` gradient samples per step; Athalye et al. 2018), otherwise its noisy gradients
overstate robustness. The injected noise draws from the model's own generator, so the
`torch.manual_seed(seed)` that torchattacks calls at the start of every attack does not
freeze it (checked in the tests).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from nsde.metrics.stats import Estimate, paired_difference, proportion
from nsde.noise import HURST_RULE, sample_noise
from nsde.predict import predict

__all__ = [
    "AttackResult",
    "adaptive_checks",
    "apgd_attack",
    "apgd_robust_accuracy",
    "correct_predictions",
    "is_stochastic",
    "noise_off_twin",
    "noisy_inputs",
    "parse_sweep_kind",
    "predict_labels",
    "sweep_accuracy",
    "sweep_area",
    "sweep_correct",
]

SWEEP_KINDS = ("gaussian", "fbm")  # "fbm:<H>" names an fBm sweep at its own Hurst exponent, e.g. "fbm:0.1"


def parse_sweep_kind(kind: str, hurst: float) -> tuple[str, float]:
    """(noise, Hurst exponent) of a sweep kind: "gaussian", "fbm" (at `hurst`, the sweep's
    default) or "fbm:<H>" (at H, 0 < H < 1).

    Raises:
        ValueError: an unknown kind or a Hurst exponent outside (0, 1), naming the kind.
    """
    noise, sep, value = str(kind).partition(":")
    if noise not in SWEEP_KINDS or (sep and noise != "fbm"):
        raise ValueError(f"unknown sweep noise {kind!r}; known kinds: {list(SWEEP_KINDS)} and 'fbm:<H>', e.g. 'fbm:0.1'")
    if not sep:
        return noise, hurst
    try:
        h = float(value)
        HURST_RULE.check(h, "H")
    except ValueError:
        raise ValueError(f"sweep kind {kind!r}: the Hurst exponent after 'fbm:' must satisfy "
                         f"{HURST_RULE.interval('H')}") from None
    return noise, h


def is_stochastic(model: torch.nn.Module) -> bool:
    """Whether `model` in eval mode draws noise (an NSDE with eval_mode 'on' or 'mc')."""
    was = model.training
    model.eval()
    try:
        return bool(getattr(model, "stochastic", False))
    finally:
        model.train(was)


def noisy_inputs(x: torch.Tensor, kind: str, intensity: float, *, hurst: float, generator: torch.Generator) -> torch.Tensor:
    """x + intensity * xi, clipped back to [0, 1] (the valid spectrogram range).

    `gaussian`: i.i.d. N(0, 1) per pixel; `fbm`: a fractional Brownian field at `hurst` per
    image and channel (zero mean, expected spatial variance 1), so intensities are
    comparable; `fbm:<H>`: the same at Hurst exponent H (`parse_sweep_kind`).
    """
    noise, hurst = parse_sweep_kind(kind, hurst)
    if noise == "gaussian":
        xi = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    else:
        xi = sample_noise("fbm", x.shape, hurst, generator=generator, device=x.device, dtype=x.dtype)
    return (x + intensity * xi).clamp(0.0, 1.0)


def predict_labels(model: torch.nn.Module, x: torch.Tensor, batch_size: int, *, seed: int | None = None,
                   votes: int | None = None) -> torch.Tensor:
    """(N,) the model's own evaluation-mode prediction for x, on CPU.

    `off` (or a deterministic model): the argmax of one pass. `mc`: the argmax of the
    Monte-Carlo mean the model's forward already computes. `on`: the majority vote of
    `votes` noisy passes (default: the model's `mc_samples`), ties broken by the mean
    softmax. With `seed`, the noise of each batch is drawn from a generator seeded by
    `seed` and the batch's position (common random numbers: the same inputs in the same
    batches get the same noise, so a prediction at x + delta differs from the one at x only
    because of delta); the model's own generator is restored afterwards.
    """
    if len(x) == 0:
        return torch.zeros(0, dtype=torch.long)
    model.eval()
    noise = getattr(getattr(model, "cfg", None), "noise", None)
    voting = is_stochastic(model) and noise is not None and noise.eval_mode == "on"
    n_votes = (votes or noise.mc_samples) if voting else 1
    device = next(model.parameters()).device
    previous = getattr(model, "generator", None)
    out = []
    try:
        for b, start in enumerate(range(0, len(x), batch_size)):
            if seed is not None and hasattr(model, "set_noise_generator"):
                model.set_noise_generator(torch.Generator(device=device).manual_seed(seed * 100_003 + b))
            xb = x[start : start + batch_size]
            if n_votes == 1:
                out.append(predict(model, xb, batch_size=batch_size).argmax(-1))
                continue
            probs = torch.stack([predict(model, xb, batch_size=batch_size).softmax(-1) for _ in range(n_votes)])
            counts = torch.nn.functional.one_hot(probs.argmax(-1), probs.shape[-1]).sum(0).float()
            out.append((counts + 0.5 * probs.mean(0)).argmax(-1))  # mean softmax < 1: breaks ties only
    finally:
        if seed is not None and hasattr(model, "set_noise_generator"):
            model.set_noise_generator(previous)
    return torch.cat(out)


def correct_predictions(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, *,
                        seed: int | None = None) -> np.ndarray:
    """(N,) bool: the model's evaluation-mode prediction (`predict_labels`) for x is y."""
    if len(x) == 0:
        return np.zeros(0, dtype=bool)
    return (predict_labels(model, x, batch_size, seed=seed) == y.cpu()).numpy()


def sweep_correct(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    kinds: Sequence[str] = SWEEP_KINDS,
    intensities: Sequence[float] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 0.75, 1.0),
    hurst: float = 0.5,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """Per-example correctness on noisy copies of x: {kind: (len(intensities), N) bool}.

    The model predicts in its evaluation mode (`predict_labels`; a stochastic model's noise is
    seeded, so the sweep is reproducible).
    """
    model.eval()
    device = next(model.parameters()).device
    result = {}
    for k, kind in enumerate(kinds):
        gen = torch.Generator(device=device).manual_seed(seed * 1000 + k)
        rows = []
        for i, intensity in enumerate(intensities):
            correct = []
            for start in range(0, len(x), batch_size):
                xb = noisy_inputs(x[start : start + batch_size].to(device), kind, intensity, hurst=hurst, generator=gen)
                correct.append(correct_predictions(model, xb, y[start : start + batch_size], batch_size,
                                                   seed=seed * 1000 + 100 * k + i))
            rows.append(np.concatenate(correct) if correct else np.zeros(0, dtype=bool))
        result[kind] = np.stack(rows) if rows else np.zeros((0, len(x)), dtype=bool)
    return result


def sweep_area(intensities: Sequence[float], correct: np.ndarray) -> np.ndarray:
    """Per-example normalised area under the correctness-versus-intensity curve.

    Trapezoid rule over `intensities` (sorted), divided by their range, so the mean over
    examples is the normalised area under the accuracy curve, in [0, 1]. correct: (I, N).
    One intensity: the accuracy there.
    """
    levels = np.asarray(intensities, dtype=np.float64)
    values = np.asarray(correct, dtype=np.float64)
    if len(levels) == 1:
        return values[0]
    order = np.argsort(levels)
    levels, values = levels[order], values[order]
    return np.trapezoid(values, levels, axis=0) / (levels[-1] - levels[0])


def sweep_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, kinds: Sequence[str] = SWEEP_KINDS,
                   intensities: Sequence[float] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 0.75, 1.0), hurst: float = 0.5,
                   seed: int = 0, batch_size: int = 256) -> dict[str, list[tuple[float, Estimate]]]:
    """Accuracy of `model` (evaluation mode) on noisy copies of x, per kind and intensity."""
    correct = sweep_correct(model, x, y, kinds=kinds, intensities=intensities, hurst=hurst, seed=seed,
                            batch_size=batch_size)
    return {kind: [(float(i), proportion(row)) for i, row in zip(intensities, rows)] for kind, rows in correct.items()}


@dataclass
class AttackResult:
    """Per-example outcome of `apgd_attack` on N examples.

    clean: (N,) the evaluation-mode prediction at x is correct; robust: (len(eps), N) the
    point is robust at each eps (monotone: broken at eps, broken at every larger eps).
    """

    eps: tuple[float, ...]
    clean: np.ndarray
    robust: np.ndarray
    adversarial: dict[float, torch.Tensor] = field(default_factory=dict)

    def estimates(self) -> dict[float, Estimate]:
        return {e: proportion(row) for e, row in zip(self.eps, self.robust)}


def apgd_attack(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: Sequence[float] = (0.05, 0.1, 0.15, 0.2),
    steps: int = 100,
    eot_iter: int = 4,
    seed: int = 0,
    batch_size: int = 128,
    return_adversarial: bool = False,
    source: torch.nn.Module | None = None,
) -> AttackResult:
    """APGD-CE L2 (torchattacks) at each eps; the verdict is the model's own evaluation-mode prediction.

    Deterministic model: torchattacks' own verdict (correct at the start and never
    misclassified during the attack), which agrees with the official AutoAttack APGD-CE.

    Stochastic model (`eval_mode` on or mc): the attack's gradients are averaged over
    `eot_iter` noisy passes (EOT), and a point is robust iff the model's evaluation-mode
    prediction (`predict_labels`: the majority vote for `on`, the Monte-Carlo mean for `mc`)
    is correct at x and at both final points of the attack: the last point that a noisy pass
    misclassified (what APGD returns) and the point of highest loss. The verdict's noise is
    seeded per batch (common random numbers), so at eps -> 0 robust accuracy equals the
    clean accuracy of the same prediction.

    `source`: attack this model instead (a transfer attack, e.g. the noise-off twin) and
    judge the examples it makes on `model`.
    """
    import torchattacks

    _check_attack(steps, eps)
    model.eval()
    attacked = source if source is not None else model
    attacked.eval()
    device = next(model.parameters()).device
    stochastic = is_stochastic(attacked)
    eot = eot_iter if stochastic else 1
    judge = _Verdict(model, judge_by_vote=stochastic or source is not None or is_stochastic(model),
                     seed=seed * 7919 + 13, batch_size=batch_size, keep=return_adversarial)
    batches = [slice(s, s + batch_size) for s in range(0, len(x), batch_size)]
    rows, adversarial = [], {}
    with _attack_generator(attacked, device, seed + 31):
        clean = judge.clean(x, y, batches)
        still_robust = clean.copy()
        for e in eps:
            attack = torchattacks.APGD(attacked, norm="L2", eps=float(e), steps=steps, loss="ce", eot_iter=eot,
                                       seed=seed)
            outcomes = [judge.batch(attack, x[sl].to(device), y[sl].to(device), b, seed) for b, sl in enumerate(batches)]
            still_robust &= np.concatenate([ok for ok, _ in outcomes]) if outcomes else np.zeros(0, dtype=bool)
            rows.append(still_robust.copy())
            if return_adversarial:
                adversarial[float(e)] = torch.cat([adv for _, adv in outcomes]) if outcomes else x[:0].clone()
    robust_matrix = np.stack(rows) if rows else np.zeros((0, len(x)), dtype=bool)
    return AttackResult(tuple(float(e) for e in eps), clean, robust_matrix, adversarial)


def _check_attack(steps: int, eps: Sequence[float]) -> None:
    if steps < 1:
        raise ValueError(f"`steps >= 1` must hold, but got steps={steps}")
    if any(e <= 0 for e in eps) or list(eps) != sorted(eps):
        raise ValueError(f"`eps` must be positive and increasing, but got {list(eps)}")


@contextlib.contextmanager
def _attack_generator(model: torch.nn.Module, device: torch.device, seed: int) -> Iterator[None]:
    """A seeded noise generator for the attack when the model has none of its own: torchattacks
    reseeds the global RNG at every attack, which would replay the same noise."""
    own = hasattr(model, "set_noise_generator") and getattr(model, "generator", None) is None
    if own:
        model.set_noise_generator(torch.Generator(device=device).manual_seed(seed))
    try:
        yield
    finally:
        if own:
            model.set_noise_generator(None)


@dataclass(frozen=True)
class _Verdict:
    """How `apgd_attack` judges one batch: torchattacks' own verdict (a deterministic model),
    or the model's evaluation-mode prediction at both final points of the attack."""

    model: torch.nn.Module
    judge_by_vote: bool
    seed: int  # the verdict's noise, seeded per batch (common random numbers)
    batch_size: int
    keep: bool  # keep the adversarial examples

    def clean(self, x: torch.Tensor, y: torch.Tensor, batches: list[slice]) -> np.ndarray:
        """(N,) the evaluation-mode prediction at x is correct, batch by batch as the attack judges."""
        if not len(x):
            return np.zeros(0, bool)
        return np.concatenate([correct_predictions(self.model, x[sl], y[sl], self.batch_size, seed=self.seed + b)
                               for b, sl in enumerate(batches)])

    def batch(self, attack, xb: torch.Tensor, yb: torch.Tensor, b: int, seed: int
              ) -> tuple[np.ndarray, torch.Tensor | None]:
        """(robust per example, the adversarial examples on CPU if kept) of batch `b`."""
        devices = [xb.device] if xb.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # torchattacks reseeds the global RNG
            torch.manual_seed(seed)
            if not self.judge_by_vote:
                # perturb() (what APGD.__call__ runs) also returns the attack's per-point verdict.
                survived, adv = attack.perturb(xb, yb, cheap=True)
                candidates = [adv.detach()]
                ok = survived.cpu().numpy()
            else:
                x_best, _, _, x_flip = attack.attack_single_run(xb, yb)
                candidates = [x_flip.detach(), x_best.detach()]
                ok = np.ones(len(xb), dtype=bool)
        verdicts = [correct_predictions(self.model, c, yb.cpu(), self.batch_size, seed=self.seed + b)
                    for c in candidates]
        for v in verdicts:
            ok = ok & v
        if not self.keep:
            return ok, None
        # the candidate that breaks the point, else the first
        pick = torch.as_tensor(~verdicts[0] | (len(candidates) == 1))
        adv = torch.where(pick.view(-1, *[1] * (xb.dim() - 1)).to(xb.device), candidates[0], candidates[-1])
        return ok, adv.cpu()


def apgd_robust_accuracy(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: Sequence[float] = (0.05, 0.1, 0.15, 0.2),
    steps: int = 100,
    eot_iter: int = 4,
    seed: int = 0,
    batch_size: int = 128,
    return_adversarial: bool = False,
) -> tuple[dict[float, Estimate], dict[float, torch.Tensor]]:
    """Robust accuracy under APGD-CE L2 at each eps (`apgd_attack`), with Wilson intervals.

    Points the model already misclassifies are not robust; APGD returns x itself for points
    it could not break, so "adv differs from x" says nothing about robustness. A point broken
    at a smaller eps is broken at every larger eps (the same adversarial example lies in the
    larger ball), so robust accuracy never rises with eps. If the model has no noise
    generator of its own, a seeded one is installed for the call: torchattacks reseeds the
    global RNG at every attack, which would replay the same noise for every batch and eps.

    Returns:
        {eps: Estimate} and, if asked, {eps: adversarial examples (N, ...) on CPU}.
    """
    result = apgd_attack(model, x, y, eps=eps, steps=steps, eot_iter=eot_iter, seed=seed, batch_size=batch_size,
                         return_adversarial=return_adversarial)
    return result.estimates(), result.adversarial


def noise_off_twin(model: torch.nn.Module) -> torch.nn.Module | None:
    """The same weights with the evaluation noise off (`eval_mode="off"`), or None when `model`
    is not an NSDE model that injects noise at evaluation."""
    from nsde.models import build_model

    cfg = getattr(model, "cfg", None)
    if cfg is None or not hasattr(cfg, "noise") or not is_stochastic(model):
        return None
    twin = build_model(dataclasses.replace(cfg, noise=dataclasses.replace(cfg.noise, eval_mode="off")))
    twin.load_state_dict(model.state_dict())
    return twin.to(next(model.parameters()).device).eval()


def paired_summary(a: np.ndarray, b: np.ndarray, seed: int) -> dict:
    """mean(a) - mean(b) on the same examples: value, 95 % paired-bootstrap interval."""
    diff, p = paired_difference(a.astype(np.float64), b.astype(np.float64), seed=seed)
    return {"difference": diff.value, "low": diff.low, "high": diff.high, "p": p}


def adaptive_checks(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    whitebox: AttackResult,
    *,
    num_classes: int,
    small_eps: float = 1e-4,
    large_rms: float = 0.25,
    steps: int = 20,
    eot_iter: int = 2,
    eot_factor: int = 4,
    seed: int = 0,
    batch_size: int = 128,
) -> dict[str, dict]:
    """The standard adaptive-attack sanity checks (Athalye et al. 2018; AutoAttack's "rand"
    protocol), each a dict with the numbers, the rule and `passed` (None: not applicable).

    - `eps_zero`: robust accuracy at `small_eps` equals clean accuracy (the same prediction on
      the same examples) within its 95 % interval.
    - `large_eps`: at eps = `large_rms` * sqrt(features) (an RMS change of `large_rms` per
      pixel, far above any searched radius) robust accuracy falls to chance: the interval's
      low end <= 1/K.
    - `eot` (stochastic models): robust accuracy at the largest searched eps with EOT 1,
      `eot_iter` and `eot_factor * eot_iter` samples: more EOT samples must not raise it
      beyond noise (paired bootstrap), and the profile's EOT must not sit above the larger
      EOT's value beyond noise (the attack has converged).
    - `transfer` (stochastic models): APGD examples made on the noise-off twin (same
      weights, `eval_mode="off"`) must not beat the white-box attack beyond noise.
    `whitebox` is the attack already run on (x, y) at the searched eps.
    """
    attack = functools.partial(apgd_attack, model, x, y, steps=steps, seed=seed, batch_size=batch_size)
    checks = {"eps_zero": _eps_zero_check(attack(eps=(small_eps,), eot_iter=eot_iter), small_eps),
              "large_eps": _large_eps_check(attack, large_rms * math.sqrt(float(np.prod(x.shape[1:]))), eot_iter,
                                            num_classes)}
    if not is_stochastic(model):
        checks["eot"] = {"passed": None, "rule": "not applicable: the model is deterministic"}
        checks["transfer"] = {"passed": None, "rule": "not applicable: the model is deterministic"}
        return checks
    checks["eot"] = _eot_check(attack, whitebox, eot_iter, eot_factor, seed)
    checks["transfer"] = _transfer_check(attack, model, whitebox, seed)
    return checks


def _eps_zero_check(tiny: AttackResult, small_eps: float) -> dict:
    clean, at_tiny = proportion(tiny.clean), proportion(tiny.robust[0])
    return {"eps": small_eps, "robust": at_tiny.value, "low": at_tiny.low, "high": at_tiny.high,
            "clean": clean.value, "n": at_tiny.n,
            "passed": bool(at_tiny.low - 1e-12 <= clean.value <= at_tiny.high + 1e-12),
            "rule": "clean accuracy inside the 95 % interval of robust accuracy at eps -> 0"}


def _large_eps_check(attack: Callable[..., AttackResult], large_eps: float, eot_iter: int, num_classes: int) -> dict:
    big = proportion(attack(eps=(large_eps,), eot_iter=eot_iter).robust[0])
    chance = 1.0 / num_classes
    return {"eps": large_eps, "robust": big.value, "low": big.low, "high": big.high,
            "chance": chance, "n": big.n, "passed": bool(big.low <= chance),
            "rule": "robust accuracy at a very large eps reaches chance (interval low <= 1/K)"}


def _eot_check(attack: Callable[..., AttackResult], whitebox: AttackResult, eot_iter: int, eot_factor: int,
               seed: int) -> dict:
    eps_max, at_max = whitebox.eps[-1], whitebox.robust[-1]
    one = attack(eps=(eps_max,), eot_iter=1).robust[0]
    more = attack(eps=(eps_max,), eot_iter=eot_factor * eot_iter).robust[0]
    rise_1 = paired_summary(at_max, one, seed)  # profile EOT - EOT 1
    rise_more = paired_summary(more, at_max, seed)  # larger EOT - profile EOT
    converged = rise_more["high"] >= 0 or not math.isfinite(rise_more["high"])  # more EOT not clearly lower
    no_rise = rise_1["low"] <= 0 and rise_more["low"] <= 0
    return {"eps": eps_max, "samples": [1, eot_iter, eot_factor * eot_iter],
            "robust": [float(one.mean()), float(at_max.mean()), float(more.mean())],
            "n": int(len(at_max)), "profile_minus_1": rise_1, "larger_minus_profile": rise_more,
            "passed": bool(converged and no_rise),
            "rule": "more EOT samples neither raise robust accuracy nor lower it below the profile's "
                    "beyond noise (paired bootstrap 95 % intervals)"}


def _transfer_check(attack: Callable[..., AttackResult], model: torch.nn.Module, whitebox: AttackResult,
                    seed: int) -> dict:
    twin = noise_off_twin(model)
    if twin is None:
        return {"passed": None, "rule": "not applicable: no noise-off twin of this model"}
    eps_max, at_max = whitebox.eps[-1], whitebox.robust[-1]
    transferred = attack(eps=(eps_max,), eot_iter=1, source=twin).robust[0]
    gap = paired_summary(transferred, at_max, seed)  # transfer - white-box: negative = transfer stronger
    return {"eps": eps_max, "robust_transfer": float(transferred.mean()),
            "robust_whitebox": float(at_max.mean()), "n": int(len(at_max)),
            "transfer_minus_whitebox": gap, "passed": bool(gap["high"] >= 0),
            "rule": "the noise-off twin's adversarial examples are not stronger than the "
                    "white-box attack beyond noise (paired bootstrap 95 % interval)"}
