"""`EvalConfig`: the settings of every metric stage, and the named evaluation profiles.

Every field that takes a value on its own carries its `Rule` (`nsde.rules`); the rules that
tie two fields together (the sweep's area bound and its intensities, the eps -> 0 check and
the searched eps) are written in `EvalConfig._check_across`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nsde.data.snr import SNR_LEVELS_DB
from nsde.metrics.robustness import SWEEP_KINDS, parse_sweep_kind
from nsde.noise import HURST_RULE
from nsde.rules import Rule, check_fields, ruled

__all__ = ["EVAL_PROFILES", "PROFILE_RULE", "SPLITS", "EvalConfig", "eval_config"]

SPLITS = ("val", "test")

_COUNT = Rule(int, 1)  # a number of steps, samples, draws or resamples
_SUBSET = Rule(int, 0, doc="examples in the subset (seeded); 0 = the whole split")


def _check_kinds(kinds: tuple[str, ...]) -> None:
    if not kinds or len(set(kinds)) != len(kinds):
        raise ValueError(f"`sweep_kinds` must name distinct kinds, at least one, but got {list(kinds)}")
    for kind in kinds:
        parse_sweep_kind(kind, 0.5)  # a plain "fbm" takes sweep_hurst, which has a rule of its own


def _check_levels(levels: tuple[float, ...]) -> None:
    if any(not math.isfinite(level) for level in levels) or len(set(levels)) < len(levels):
        raise ValueError(f"`snr_levels` must be distinct finite dB values, but got {levels}")


@dataclass(frozen=True)
class EvalConfig:
    """Settings of every metric. Defaults follow the study; `EVAL_PROFILES` names cheaper ones.

    Attributes:
        sweep_intensities / sweep_kinds / sweep_hurst: the noise sweep (inputs clipped to [0, 1]);
            kinds "gaussian", "fbm" (at `sweep_hurst`) and "fbm:<H>" (at H). `sweep_area` is
            the mean over kinds; per_example["sweep"] keeps each kind's area (`area_<kind>`).
        sweep_area_max: the sweep objective is the area under the accuracy curve over the
            intensities <= this (above 0.25 every model of the default search is at chance).
        sweep_subset: examples in the sweep and the SNR sweep (seeded subset; 0 = the whole split).
        snr_levels: the SNR sweep, dB: white noise added to the waveforms before the STFT
            (`nsde.data.snr`); its objective `snr_accuracy` is the normalised area under
            accuracy vs SNR over these levels. () = no SNR sweep.
        apgd_eps / apgd_steps / eot_iter: APGD-CE L2; eot_iter applies to stochastic models.
        attack_subset: examples attacked (seeded subset; 0 = the whole split).
        abc_subset / abc_samples / abc_mutate / ig_steps: ABC (S samples, features mutated
            per sample as a fraction of all features, IG steps).
        stability_subset / stability_draws / stability_stdev: attribution stability.
        checks: run the adaptive-attack sanity checks (`adaptive_checks`) on the attacked subset.
        checks_subset: run them on a seeded subset of that many of the attacked examples (0 = all):
            a stochastic model's checks cost 26 of its attack's passes an eps (EOT 1, 4, 16, the
            eps -> 0 and large-eps attacks, the transfer), far more than the endpoint itself.
        check_small_eps / check_large_rms / check_eot_factor: their settings (eps -> 0; a large
            eps as an RMS change per pixel; the larger EOT as a multiple of eot_iter).
        smoothing_sigma / smoothing_n0 / smoothing_n / smoothing_alpha: randomized smoothing
            certification (`nsde.metrics.smoothing`, Cohen et al. 2019): the Gaussian noise's
            sigma (0 = not run), the selection and estimation draws, the failure probability.
        smoothing_radii: the L2 radii the report gives certified accuracy at; the objective
            `certified_accuracy` is the one at `smoothing_radius`.
        smoothing_subset: examples certified (seeded subset; 0 = the whole split).
        resamples: bootstrap resamples of every interval.
        seed: seeds the subsets, the sweep noise, the attack, the ABC sampling, the bootstrap.
    """

    sweep_intensities: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 0.75, 1.0)
    sweep_kinds: tuple[str, ...] = ruled(SWEEP_KINDS, Rule(object, validator=_check_kinds))
    sweep_hurst: float = ruled(0.5, HURST_RULE)
    sweep_area_max: float = 0.25
    sweep_subset: int = ruled(0, _SUBSET)
    snr_levels: tuple[float, ...] = ruled(SNR_LEVELS_DB, Rule(object, validator=_check_levels))
    apgd_eps: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2)
    apgd_steps: int = ruled(100, _COUNT)
    eot_iter: int = ruled(4, _COUNT)
    attack_subset: int = ruled(256, _SUBSET)
    abc_subset: int = ruled(256, _SUBSET)
    abc_samples: int = ruled(64, _COUNT)
    abc_mutate: float = ruled(0.01, Rule(float, 0, 1, open_low=True, open_high=True, doc="a fraction of the features"))
    ig_steps: int = ruled(32, _COUNT)
    stability_subset: int = ruled(64, _SUBSET)
    stability_draws: int = ruled(4, _COUNT)
    stability_stdev: float = 0.01
    checks: bool = True
    checks_subset: int = ruled(0, _SUBSET)
    check_small_eps: float = ruled(1e-4, Rule(float, 0, open_low=True))
    check_large_rms: float = ruled(0.25, Rule(float, 0, open_low=True))
    check_eot_factor: int = ruled(4, _COUNT)
    smoothing_sigma: float = ruled(0.0, Rule(float, 0.0, doc="randomized smoothing noise; 0 = off"))
    smoothing_n0: int = ruled(100, _COUNT)
    smoothing_n: int = ruled(1000, _COUNT)
    smoothing_alpha: float = ruled(0.001, Rule(float, 0.0, 0.5, open_low=True, open_high=True))
    smoothing_radii: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 1.0)
    smoothing_radius: float = ruled(0.25, Rule(float, 0.0, doc="radius of the objective certified_accuracy"))
    smoothing_subset: int = ruled(64, _SUBSET)
    resamples: int = ruled(2000, _COUNT)
    batch_size: int = ruled(128, _COUNT)
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self)
        self._check_across()

    def _check_across(self) -> None:
        """The rules that tie two fields together."""
        if not any(i <= self.sweep_area_max for i in self.sweep_intensities):
            raise ValueError(f"`sweep_area_max` must be >= the smallest sweep intensity "
                             f"{min(self.sweep_intensities)}, but got {self.sweep_area_max}")
        if not self.check_small_eps < min(self.apgd_eps):
            raise ValueError(f"`0 < check_small_eps < min(apgd_eps)` must hold, but got {self.check_small_eps}")

    @classmethod
    def fast(cls, **overrides) -> EvalConfig:
        """A cheaper profile for search trials (fewer steps, smaller subsets)."""
        return cls(**{**EVAL_PROFILES["fast"], **overrides})


# Named evaluation profiles: overrides of EvalConfig's defaults (the study's settings).
# A search scores every trial with a cheap profile and re-scores its Pareto-optimal
# trials with a full-strength one (docs/metrics.md, "Evaluation profiles").
EVAL_PROFILES: dict[str, dict] = {
    # search trials: 20 APGD steps, EOT 2, subsets of 64
    "fast": dict(apgd_steps=20, eot_iter=2, attack_subset=64, abc_subset=64, abc_samples=32, ig_steps=16,
                 stability_subset=16, stability_draws=2),
    # the study's settings: 100 APGD steps, EOT 4, subsets of 256, the sweep on the whole split
    "full": {},
    # The pair the CPU-sized `default` space uses. At 64x64 on 2 cores, 100-step APGD on 64
    # examples already costs about 2/3 of a 5-epoch training run (docs/search.md). ABC runs on
    # 64 examples so that a subset without an incorrect (or correct) prediction, where the
    # AUROC is undefined, is rare (a model at 90 % accuracy: 0.9^64 = 0.1 %).
    "cpu-search": dict(apgd_steps=20, eot_iter=2, attack_subset=32, abc_subset=64, abc_samples=32, ig_steps=16,
                       stability_subset=16, stability_draws=2, sweep_subset=128, resamples=1000),
    # full attack strength (100 steps, EOT 4) on smaller subsets; ABC and stability on the search
    # profile's sizes (they are secondary here, and the re-scoring and test pass cost minutes each)
    "cpu-final": dict(attack_subset=64, abc_subset=64, stability_subset=16),
    # The designed study (docs/study.md). Its test profile: the image-domain sweep with white
    # noise and fBm at three Hurst exponents (is the protection shape-matched?) up to the area's
    # largest intensity and the SNR sweep, on 256 examples; APGD with 20 steps and its checks
    # on 64; ABC 64 x 32; sized with the training for 45 trials in ~90 min on 2 cores (the
    # study took 108 min: docs/study.md, Sizing)
    "study": dict(sweep_kinds=("gaussian", "fbm:0.1", "fbm:0.5", "fbm:0.9"),
                  sweep_intensities=(0.05, 0.1, 0.15, 0.2, 0.25), sweep_subset=256, apgd_steps=20,
                  attack_subset=64, abc_subset=64, abc_samples=32, ig_steps=16, stability_subset=16,
                  stability_draws=2),
    # ... and its validation profile: nothing is selected on it (the cells are fixed), it only
    # feeds the report, the importance and the choice of the cells a figure singles out
    "study-val": dict(sweep_subset=128, apgd_steps=10, eot_iter=1, attack_subset=16, checks=False, abc_subset=32,
                      abc_samples=8, ig_steps=8, stability_subset=8, stability_draws=1, resamples=200),
    # The confirmatory study's pilot (docs/study.md, "Plan"), on validation: APGD over the eps
    # grid eps* is picked from (20 steps, 128 examples, with the checks), the low-intensity image
    # sweep and the SNR sweep on the whole split (the three primary endpoints), ABC and stability
    # small (secondary, not chosen by)
    "confirm-pilot": dict(sweep_kinds=("gaussian",), sweep_intensities=(0.005, 0.01, 0.02, 0.05, 0.1),
                          sweep_area_max=0.1, apgd_eps=(0.05, 0.1, 0.15, 0.2, 0.3, 0.5), apgd_steps=20,
                          attack_subset=128, abc_subset=64, abc_samples=32, ig_steps=16, stability_subset=16,
                          stability_draws=2),
    # ... and C's pilot point (amendment 6): noise on, 8 passes, EOT 4, so the attack over the
    # whole grid and the checks at every searched eps cost hours on 2 cores; eps* is A's, so C
    # is attacked at eps* = 0.15 only and its checks run on 64 of the 128 attacked examples
    "confirm-pilot-mc": dict(sweep_kinds=("gaussian",), sweep_intensities=(0.005, 0.01, 0.02, 0.05, 0.1),
                             sweep_area_max=0.1, apgd_eps=(0.15,), apgd_steps=20, attack_subset=128, checks_subset=64,
                             abc_subset=64, abc_samples=32, ig_steps=16, stability_subset=16, stability_draws=2),
    # ... and the confirmatory trials' validation profile: nothing is selected on it (the arms are
    # fixed by the pilot), it feeds the report: the primary endpoints' kinds, cheaply
    "confirm-val": dict(sweep_kinds=("gaussian",), sweep_intensities=(0.005, 0.01, 0.02, 0.05, 0.1),
                        sweep_area_max=0.1, sweep_subset=128, apgd_eps=(0.1, 0.2), apgd_steps=10, eot_iter=1,
                        attack_subset=32, checks=False, abc_subset=32, abc_samples=8, ig_steps=8, stability_subset=8,
                        stability_draws=1, resamples=200),
    # ... and its test profile (docs/study.md, "Plan", "Endpoints"): APGD at eps* = 0.15 (the
    # pilot's, bench/results/confirm-pilot.json: the plain model keeps 45 % of its accuracy on
    # the attacked validation examples there) on 512 examples, 20 steps, EOT 4 for C, with the
    # checks (on 64 of the attacked examples, amendment 6: on all 512 they would cost C six times
    # its endpoint's attack, bench/results/scoring_cost-confirm-C-cpu.json); the low-intensity
    # image sweep and the SNR sweep on the whole test split; ABC 256 x 32; and randomized
    # smoothing (the certified reference, every arm): sigma 0.1, the smallest round sigma whose
    # n = 500 certificate reaches past eps* (0.1 x 2.2 = 0.22), at the radii about eps*, on 64
    # examples
    "confirm": dict(sweep_kinds=("gaussian",), sweep_intensities=(0.005, 0.01, 0.02, 0.05, 0.1),
                    sweep_area_max=0.1, sweep_subset=0, apgd_eps=(0.15,), apgd_steps=20, attack_subset=512,
                    checks_subset=64,
                    abc_subset=256, abc_samples=32, ig_steps=16, stability_subset=16, stability_draws=2,
                    smoothing_sigma=0.1, smoothing_n0=100, smoothing_n=500, smoothing_subset=64,
                    smoothing_radii=(0.0, 0.05, 0.1, 0.15, 0.2), smoothing_radius=0.15),
    # randomized smoothing certification on top of the fast profile (Cohen et al.'s CERTIFY at
    # sigma 0.25 with n0 = 100, n = 1000, alpha = 0.001 on 64 examples): the certified reference a
    # model trained with Gaussian input noise at the same sigma is meant for
    "certify": dict(apgd_steps=20, eot_iter=2, attack_subset=64, abc_subset=64, abc_samples=32, ig_steps=16,
                    stability_subset=16, stability_draws=2, smoothing_sigma=0.25),
    # MOASHA's rung evaluation (--scheduler moasha): a ranking signal part-way through
    # training, not a number to report: 10 APGD steps without EOT or sanity checks on 32
    # examples, ABC 64 x 16, the sweeps on 128 examples, few bootstrap resamples
    "rung": dict(apgd_steps=10, eot_iter=1, attack_subset=32, abc_subset=64, abc_samples=16, ig_steps=8,
                 stability_subset=8, stability_draws=1, checks=False, sweep_subset=128, resamples=200),
}
PROFILE_RULE = Rule(str, choices=lambda: sorted(EVAL_PROFILES), what="evaluation profile")


def eval_config(profile: str, **overrides) -> EvalConfig:
    """The named evaluation profile (`EVAL_PROFILES`), with `overrides` (None = keep)."""
    PROFILE_RULE.check(profile, "profile")
    return EvalConfig(**{**EVAL_PROFILES[profile], **{k: v for k, v in overrides.items() if v is not None}})
