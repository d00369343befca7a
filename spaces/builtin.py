"""The named search spaces: `default`, `paper`, `shapes`, the designed study `study`, the
confirmatory study's pilot `confirm-pilot`, the confirmatory stage `confirm` (`confirm_space` at
the pilot's choices) and its adversarial-training reference `confirm-at`.

Blocks with injection (`nsde.models`): convnext_atto and _femto have 2+2+6+2 = 12 residual
blocks, convnext_tiny / _base 3+3+9(27)+3, resnet18 has 2+2+2+2 = 8 and resnet34 / 50
3+4+6+3 = 16, which is why depth ranges are given per backbone. Every space injects
*relative* noise (sigma is the noise-to-signal ratio of the block's output, so one value
means the same in every stage and backbone) with zero-mean fields, and its depth ranges
stop one block short of the last: that block's zero-mean noise is removed by the head's
global average pooling (`nsde.models.dead_blocks`); "all" means every block whose noise
reaches the logits.
"""

from __future__ import annotations

from collections.abc import Sequence

from optuna.distributions import CategoricalDistribution as Cat
from optuna.distributions import FloatDistribution as Float
from optuna.distributions import IntDistribution as Int

from nsde.noise import hurst_shapes
from spaces._registry import register_space
from spaces._space import Param, SearchSpace, replicate

_NOISY = ("fbm", "white", "stationary")
_HURST = tuple(s for s in _NOISY if s in hurst_shapes())  # those that take a Hurst exponent (the noise registry's)


def _noise_params(*, hurst: tuple[float, float], sigma: tuple[float, float],
                  shapes: tuple[str, ...] = ("fbm", "white")) -> dict[str, Param]:
    return {
        "noise/shape": Param(Cat(["none", *shapes])),
        "noise/hurst": Param(Float(*hurst), when={"noise/shape": tuple(s for s in shapes if s in _HURST)}),
        "noise/sigma": Param(Float(*sigma, log=True), when={"noise/shape": shapes}),
    }


def _depth(name: str, backbones: tuple[str, ...], blocks: int, low: int = 1,
           shapes: tuple[str, ...] = ("fbm", "white")) -> dict[str, Param]:
    """Injection depth (the first k blocks) for `backbones`, which have `blocks` residual blocks:
    k <= blocks - 1, since the last block's zero-mean noise cannot reach the logits."""
    return {
        f"noise/depth[{name}]": Param(
            Int(low, blocks - 1), when={"model/backbone": backbones, "noise/shape": shapes}, key="noise/depth"
        )
    }


_RELATIVE = {"noise/sigma_mode": "relative", "noise/anchor": "mean"}


@register_space("default")
def default() -> SearchSpace:
    """Small backbones on 64x64 spectrograms: 6 trials take ~15 min on a 2-core machine (~30 min in all)."""
    return _default("default", DEFAULT_EPOCHS)


DEFAULT_EPOCHS = 5
LONG_EPOCHS = 15  # three times the default; on the study preset the noisy curves pass the plain one at epoch 5 of 12


@register_space("default-long")
def default_long() -> SearchSpace:
    """The default space at 15-epoch trials, for comparing stopping rules on the real space
    (bench/bench_search_efficiency_real.py): at 5 epochs every trial sits at MOASHA's first
    rung, so a rule cannot be told from FIFO there; at 15 a first rung at a third (5 epochs) falls
    before the learning curves cross. A trial takes ~3x a default one (~17 min, two at a time)."""
    return _default("default-long", LONG_EPOCHS)


def _default(name: str, epochs: int) -> SearchSpace:
    return SearchSpace(
        name=name,
        description=f"convnext_atto / resnet18 on the default preset (64x64), {epochs}-epoch trials",
        preset="default",
        search_profile="cpu-search",
        final_profile="cpu-final",
        final_seeds=1,  # CPU-sized: each test number is the trial's own model (--final-seeds N for more)
        params={
            "model/backbone": Param(Cat(["convnext_atto", "resnet18"])),
            **_noise_params(hurst=(0.1, 0.9), sigma=(0.02, 1.0)),
            **_depth("convnext", ("convnext_atto",), 12),
            **_depth("resnet", ("resnet18",), 8),
            "model/drop_path_rate": Param(Float(0.0, 0.2)),
            "train/lr": Param(Float(1e-3, 1e-2, log=True)),
            "train/weight_decay": Param(Float(0.01, 0.1, log=True)),
            "train/batch_size": Param(Cat([32, 64])),
        },
        # Noise off at evaluation keeps trials deterministic there (no EOT): the `shapes`
        # space searches the evaluation behaviour.
        constants={"train/epochs": epochs, "noise/eval_mode": "off", **_RELATIVE},
        points=(
            # the deterministic baseline, so that the front is always compared with it
            {"model/backbone": "resnet18", "noise/shape": "none", "model/drop_path_rate": 0.0,
             "train/lr": 4e-3, "train/weight_decay": 0.05, "train/batch_size": 64},
        ),
    )


@register_space("paper")
def paper() -> SearchSpace:
    """ConvNeXt-Base and ResNet-50 at 224x224 around the published setting (Brownian, H = 0.5)."""
    return SearchSpace(
        name="paper",
        description="convnext_base / resnet50 on the paper preset (10,000 at 224x224), around fBm H=0.5",
        preset="paper",
        search_profile="fast",
        final_profile="full",
        final_seeds=3,  # the front and the baseline retrained with 3 seeds for their test numbers
        params={
            "model/backbone": Param(Cat(["convnext_base", "resnet50"])),
            "noise/shape": Param(Cat(["none", "fbm"])),
            "noise/hurst": Param(Float(0.3, 0.7), when={"noise/shape": ("fbm",)}),
            "noise/sigma": Param(Float(0.02, 1.0, log=True), when={"noise/shape": ("fbm",)}),
            "noise/depth[convnext]": Param(Cat(["stages:0", "stages:0,1", "stages:0,1,2", "all"]),
                                           when={"model/backbone": ("convnext_base",), "noise/shape": ("fbm",)},
                                           key="noise/depth"),
            "noise/depth[resnet]": Param(Cat(["stages:0", "stages:0,1", "stages:0,1,2", "all"]),
                                         when={"model/backbone": ("resnet50",), "noise/shape": ("fbm",)},
                                         key="noise/depth"),
            "noise/eval_mode": Param(Cat(["off", "mc"]), when={"noise/shape": ("fbm",)}),
            "model/drop_path_rate": Param(Float(0.0, 0.3)),
            "train/lr": Param(Float(2e-4, 4e-3, log=True)),
        },
        constants={"train/epochs": 30, "train/batch_size": 64, "train/weight_decay": 0.05, "noise/mc_samples": 8,
                   **_RELATIVE},
        points=(
            {"model/backbone": "convnext_base", "noise/shape": "none", "model/drop_path_rate": 0.1, "train/lr": 1e-3},
            # the published NSDE: Brownian noise (H = 0.5) in every block (here relative: noise at
            # 20 % of each block's output RMS)
            {"model/backbone": "convnext_base", "noise/shape": "fbm", "noise/hurst": 0.5, "noise/sigma": 0.2,
             "noise/depth[convnext]": "all", "noise/eval_mode": "off", "model/drop_path_rate": 0.1, "train/lr": 1e-3},
        ),
    )


@register_space("shapes")
def shapes() -> SearchSpace:
    """The noise shape explored widely: H over (0, 1), sigma over three decades, depth, evaluation."""
    return SearchSpace(
        name="shapes",
        description="wide noise-shape search on small backbones (default preset)",
        preset="default",
        search_profile="fast",
        final_profile="cpu-final",
        params={
            "model/backbone": Param(Cat(["convnext_atto", "convnext_femto", "resnet18", "resnet34"])),
            **_noise_params(hurst=(0.02, 0.98), sigma=(1e-3, 2.0), shapes=_NOISY),
            **_depth("convnext", ("convnext_atto", "convnext_femto"), 12, shapes=_NOISY),
            **_depth("resnet18", ("resnet18",), 8, shapes=_NOISY),
            **_depth("resnet34", ("resnet34",), 16, shapes=_NOISY),
            "noise/eval_mode": Param(Cat(["off", "on", "mc"]), when={"noise/shape": _NOISY}),
            "noise/mc_samples": Param(Int(2, 16, log=True), when={"noise/eval_mode": ("mc",)}),
            "model/drop_path_rate": Param(Float(0.0, 0.3)),
            "train/lr": Param(Float(5e-4, 2e-2, log=True)),
            "train/weight_decay": Param(Float(1e-3, 0.2, log=True)),
            "train/epochs": Param(Int(4, 15)),
            "train/batch_size": Param(Cat([32, 64, 128])),
            # "corner" is where `stationary` is flat (docs/noise.md, "Anchors and stationarity")
            "noise/anchor": Param(Cat(["mean", "corner"]), when={"noise/shape": _NOISY}),
        },
        constants={"noise/sigma_mode": "relative"},
    )


# The designed study (docs/study.md): its factors, so that the analysis can name them.
STUDY_HURST = (0.1, 0.5, 0.9)
STUDY_SIGMA = (0.1, 0.3)  # relative: noise at 10 % and 30 % of each block's output RMS
STUDY_SEEDS = (0, 1, 2)


def study_cells() -> list[dict]:
    """The study's cells: the deterministic baseline first, white noise at each sigma, then fBm
    and its stationary control at each H and sigma."""
    cells: list[dict] = [{"noise/shape": "none"}]
    cells += [{"noise/shape": "white", "noise/sigma": s} for s in STUDY_SIGMA]
    cells += [{"noise/shape": shape, "noise/hurst": h, "noise/sigma": s}
              for shape in _HURST for s in STUDY_SIGMA for h in STUDY_HURST]
    return cells


@register_space("study")
def study() -> SearchSpace:
    """A designed experiment, not a search: noise shape x H x sigma on one backbone and recipe,
    every cell and the baseline with the same seeds (docs/study.md)."""
    shapes = ("white", *_HURST)
    return SearchSpace(
        name="study",
        description="designed study: shape (none, white, fBm, stationary) x H x relative sigma, 3 seeds, resnet18",
        preset="study",  # 48x48 on the CPU; --preset paper for the published scale
        search_profile="study-val",
        final_profile="study",
        designed=True,
        params={
            "noise/shape": Param(Cat(["none", *shapes])),
            "noise/hurst": Param(Cat(list(STUDY_HURST)), when={"noise/shape": _HURST}),
            "noise/sigma": Param(Cat(list(STUDY_SIGMA)), when={"noise/shape": shapes}),
            "train/seed": Param(Cat(list(STUDY_SEEDS))),
        },
        # one recipe for every cell: the default space's baseline recipe, noise in every block
        # whose noise reaches the logits, none at evaluation (deterministic predictions: no EOT)
        constants={"model/backbone": "resnet18", "model/drop_path_rate": 0.0, "train/lr": 4e-3,
                   "train/weight_decay": 0.05, "train/batch_size": 64, "train/epochs": 4, "noise/depth": "all",
                   "noise/eval_mode": "off", **_RELATIVE},
        points=replicate(study_cells(), STUDY_SEEDS),
    )


# The confirmatory study's pilot (docs/study.md, "Plan"): one seed, each arm at the convergence
# rule's budget for its kind (30 epochs; 60 for the published setting, which still gains from 30
# to 60), on validation only (run it with --no-final: nothing of it is scored on test). It picks
# B's intensity, B''s lowest SNR, D's relative sigma and checks D's lr / weight decay.
PILOT_BUDGET = 30
PUBLISHED_BUDGET = 60
PILOT_CELLS: tuple[dict, ...] = (
    {"noise/shape": "none", "augment/kind": "none"},  # A: plain
    *({"noise/shape": "none", "augment/kind": "gaussian", "augment/high": s} for s in (0.05, 0.1, 0.2)),  # B
    *({"noise/shape": "none", "augment/kind": "signal", "augment/snr_low": lo} for lo in (-5.0, 5.0, 15.0)),  # B'
    # C: the published NSDE (absolute sigma, noise on at evaluation: 8 passes, EOT in the attack)
    {"noise/shape": "fbm", "noise/sigma_mode": "absolute", "noise/sigma": 0.3, "noise/eval_mode": "mc",
     "train/epochs": PUBLISHED_BUDGET},
    *({"noise/shape": "fbm", "noise/sigma_mode": "relative", "noise/sigma": s, "noise/eval_mode": "off"}
      for s in (0.1, 0.3, 0.5)),  # D
)
PILOT_RECIPES = ((2e-3, 0.01), (2e-3, 0.05), (4e-3, 0.01))  # D at sigma 0.3 against the plain recipe (4e-3, 0.05)


def pilot_points() -> tuple[dict, ...]:
    plain = {"train/lr": 4e-3, "train/weight_decay": 0.05}
    d = {"noise/shape": "fbm", "noise/sigma_mode": "relative", "noise/sigma": 0.3, "noise/eval_mode": "off",
         "train/epochs": PILOT_BUDGET}
    return (*({"train/epochs": PILOT_BUDGET, **cell, **plain} for cell in PILOT_CELLS),
            *({**d, "train/lr": lr, "train/weight_decay": wd} for lr, wd in PILOT_RECIPES))


@register_space("confirm-pilot")
def confirm_pilot() -> SearchSpace:
    """The confirmatory study's pilot: the arms' free settings, chosen on validation with one seed."""
    fbm = {"noise/shape": ("fbm",)}
    return SearchSpace(
        name="confirm-pilot",
        description="pilot of the confirmatory study: plain, input noise (image, waveform), published and "
                    "platform NSDE, one seed, 30 epochs (the published setting 60), validation only",
        preset="confirm",
        search_profile="confirm-pilot",
        final_profile="confirm-pilot",
        designed=True,
        params={
            "noise/shape": Param(Cat(["none", "fbm"])),
            "augment/kind": Param(Cat(["none", "gaussian", "signal"]), when={"noise/shape": ("none",)}),
            "augment/high": Param(Cat([0.05, 0.1, 0.2]), when={"augment/kind": ("gaussian",)}),
            "augment/snr_low": Param(Cat([-5.0, 5.0, 15.0]), when={"augment/kind": ("signal",)}),
            "noise/sigma_mode": Param(Cat(["relative", "absolute"]), when=fbm),
            "noise/sigma": Param(Cat([0.1, 0.3, 0.5]), when=fbm),
            "noise/eval_mode": Param(Cat(["off", "mc"]), when=fbm),
            "train/lr": Param(Cat([2e-3, 4e-3])),
            "train/weight_decay": Param(Cat([0.01, 0.05])),
            "train/epochs": Param(Cat([PILOT_BUDGET, PUBLISHED_BUDGET])),
        },
        constants={"model/backbone": "resnet18", "model/drop_path_rate": 0.0, "train/batch_size": 64,
                   "train/seed": 0, "noise/depth": "all", "noise/hurst": 0.5,
                   "noise/anchor": "mean", "noise/mc_samples": 8, "augment/low": 0.0, "augment/snr_high": 40.0},
        points=pilot_points(),
    )


# The confirmatory stage (docs/study.md, "Plan"): six arms, seed-major, each at its budget, built
# from the pilot's choices (`analysis.confirm`, bench/results/confirm-pilot.json). It is
# registered as `confirm` (below, at the pilot's choices); `confirm_space` builds it from any choices.
CONFIRM_SEEDS = tuple(range(12))  # the two looks: seeds 0-5, then 6-11
CONFIRM_ARMS = ("A", "B", "B'", "C", "D", "E")


def confirm_cells(choices: dict) -> tuple[dict, ...]:
    """The six arms' cells in the plan's order, from the pilot's choices: {"B": {"augment/high"},
    "B'": {"augment/snr_low"}, "D": {"noise/sigma", "train/lr", "train/weight_decay"}, and
    optionally "budgets": {arm: epochs} for B and E (30 unless their tail was not flat)}. E is
    white internal noise at D's relative sigma and recipe."""
    budgets = {arm: PILOT_BUDGET for arm in CONFIRM_ARMS} | {"C": PUBLISHED_BUDGET} | dict(choices.get("budgets", {}))
    plain = {"train/lr": 4e-3, "train/weight_decay": 0.05}
    d = dict(choices["D"])
    recipe = {"train/lr": d.get("train/lr", 4e-3), "train/weight_decay": d.get("train/weight_decay", 0.05)}
    none = {"noise/shape": "none"}
    cells = {
        "A": {**none, "augment/kind": "none", **plain},
        "B": {**none, "augment/kind": "gaussian", "augment/high": float(choices["B"]["augment/high"]), **plain},
        "B'": {**none, "augment/kind": "signal", "augment/snr_low": float(choices["B'"]["augment/snr_low"]), **plain},
        "C": {"noise/shape": "fbm", "noise/sigma_mode": "absolute", "noise/sigma": 0.3, "noise/eval_mode": "mc",
              **plain},
        "D": {"noise/shape": "fbm", "noise/sigma_mode": "relative", "noise/sigma": float(d["noise/sigma"]),
              "noise/eval_mode": "off", **recipe},
        "E": {"noise/shape": "white", "noise/sigma_mode": "relative", "noise/sigma": float(d["noise/sigma"]),
              "noise/eval_mode": "off", **recipe},
    }
    return tuple({**cells[arm], "train/epochs": int(budgets[arm])} for arm in CONFIRM_ARMS)


def confirm_space(choices: dict, seeds=CONFIRM_SEEDS, *, final_profile: str, name: str = "confirm") -> SearchSpace:
    """The confirmatory designed space: `confirm_cells(choices)` x `seeds`, seed-major (all six
    arms of seed k before seed k + 1, so a block of 6 n points holds n complete seeds: run it
    with `--points`), scored once on test with `final_profile` (the profile of the plan's test
    endpoints, APGD at the pilot's eps*: the registration names it)."""
    cells = confirm_cells(choices)

    def values(key):
        return sorted({c[key] for c in cells if key in c})

    noisy = {"noise/shape": ("fbm", "white")}
    return SearchSpace(
        name=name,
        description="confirmatory study: plain, input noise (image, waveform), the published and the platform's "
                    "NSDE, white internal noise; seed-major, each arm at its budget",
        preset="confirm",
        search_profile="confirm-val",
        final_profile=final_profile,
        designed=True,
        params={
            "noise/shape": Param(Cat(["none", "fbm", "white"])),
            "augment/kind": Param(Cat(values("augment/kind")), when={"noise/shape": ("none",)}),
            "augment/high": Param(Cat(values("augment/high")), when={"augment/kind": ("gaussian",)}),
            "augment/snr_low": Param(Cat(values("augment/snr_low")), when={"augment/kind": ("signal",)}),
            "noise/sigma_mode": Param(Cat(["relative", "absolute"]), when=noisy),
            "noise/sigma": Param(Cat(values("noise/sigma")), when=noisy),
            "noise/eval_mode": Param(Cat(["off", "mc"]), when=noisy),
            "train/lr": Param(Cat(values("train/lr"))),
            "train/weight_decay": Param(Cat(values("train/weight_decay"))),
            "train/epochs": Param(Cat(values("train/epochs"))),
            "train/seed": Param(Cat(list(seeds))),
        },
        constants={"model/backbone": "resnet18", "model/drop_path_rate": 0.0, "train/batch_size": 64,
                   "noise/depth": "all", "noise/hurst": 0.5, "noise/anchor": "mean", "noise/mc_samples": 8,
                   "augment/low": 0.0, "augment/snr_high": 40.0},
        points=replicate(cells, seeds),
    )


# The confirmatory study's adversarial-training reference (docs/study.md, "Plan", "References":
# not in the confirmatory family): PGD-L2 training at the pilot's eps*, the plain recipe and
# budget, on the first three confirmatory seeds (so that it pairs with every arm by seed).
AT_EPS = 0.15  # eps* of the pilot (bench/results/confirm-pilot.json): attacked where it is trained
AT_STEPS = 7  # PGD steps a batch, as registered: a trial costs (steps + 1) = 8 plain trials (80 min on a fast day)
AT_RAMP_EPOCHS = 5  # eps grows linearly over the first 5 epochs (full-radius PGD from epoch 1 stalls early training)
AT_SEEDS = (0, 1, 2)


@register_space("confirm-at")
def confirm_at() -> SearchSpace:
    """PGD-L2 adversarial training at eps*, the plain model's recipe and budget, seeds 0-2:
    the practitioner's robust reference beside the confirmatory arms."""
    return SearchSpace(
        name="confirm-at",
        description="reference of the confirmatory study: PGD-L2 adversarial training at eps* = 0.15 "
                    "(7 steps, eps ramped over 5 epochs), plain recipe, 30 epochs, seeds 0-2",
        preset="confirm",
        search_profile="confirm-val",
        final_profile="confirm",
        designed=True,
        params={"train/seed": Param(Cat(list(AT_SEEDS)))},
        constants={"model/backbone": "resnet18", "model/drop_path_rate": 0.0, "train/batch_size": 64,
                   "train/lr": 4e-3, "train/weight_decay": 0.05, "train/epochs": PILOT_BUDGET,
                   "noise/shape": "none", "augment/kind": "none", "adversarial/eps": AT_EPS,
                   "adversarial/steps": AT_STEPS, "adversarial/ramp_epochs": AT_RAMP_EPOCHS},
        points=replicate([{}], AT_SEEDS),
    )


# The pilot's choices (bench/results/confirm-pilot.json, `python -m analysis.confirm pilot`;
# tests/spaces/test_spaces.py checks them against it): B's intensity, B''s lowest SNR, D's
# relative sigma and recipe (the plain one: no other recipe scored within a point of it).
CONFIRM_CHOICES = {"B": {"augment/high": 0.05}, "B'": {"augment/snr_low": -5.0},
                   "D": {"noise/sigma": 0.3, "train/lr": 4e-3, "train/weight_decay": 0.05}}


def _runs(indices: Sequence[int]) -> str:
    """Sorted point indices as --points blocks: [0, 1, 2, 4, 5] -> "0:3,4:6"."""
    parts, start = [], None
    for i, k in enumerate(indices):
        if start is None:
            start = k
        if i + 1 == len(indices) or indices[i + 1] != k + 1:
            parts.append(f"{start}:{k + 1}")
            start = None
    return ",".join(parts)


def confirm_blocks(seeds: Sequence[int] = CONFIRM_SEEDS, *, c_per_block: int = 2) -> dict[str, str]:
    """The confirmatory study's blocks (amendment 7 of docs/study.md): search name -> --points of
    the `confirm` space. The five cheaper arms of seed k are block `confirm-<k + 1>` (about 45 min
    on a fast day, two trials at once); C, noise on at evaluation, whose test scoring alone takes
    about as long as its training (bench/results/scoring_cost-confirm-C-cpu.json), runs two seeds
    at once, `confirm-c<j>` for seeds 2j - 2 and 2j - 1. A seed counts for a look once all six of
    its arms are in the record (`analysis.confirm record`)."""
    arms, c = len(CONFIRM_ARMS), CONFIRM_ARMS.index("C")
    blocks = {f"confirm-{k + 1}": _runs([k * arms + a for a in range(arms) if a != c]) for k in range(len(seeds))}
    for j, first in enumerate(range(0, len(seeds), c_per_block), start=1):
        blocks[f"confirm-c{j}"] = _runs([k * arms + c for k in range(first, min(first + c_per_block, len(seeds)))])
    return blocks


@register_space("confirm")
def confirm() -> SearchSpace:
    """The confirmatory study (docs/study.md, "Plan"): six arms, seeds 0-11, seed-major; run it in
    blocks of whole seeds with --points (6 points a seed)."""
    return confirm_space(CONFIRM_CHOICES, final_profile="confirm")
