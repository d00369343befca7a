"""spaces/: the named spaces, conditional parameters, and validation of user files."""

from __future__ import annotations

import textwrap

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from nsde.models import ModelConfig, NoiseConfig
from nsde.rules import rules_of
from nsde.train import AdversarialConfig, AugmentConfig, TrainConfig
from spaces import KEYS, Param, SearchSpace, get_space, list_spaces, load_space, replicate, space_from_dict
from spaces.builtin import STUDY_HURST, STUDY_SEEDS, STUDY_SIGMA


def test_registry_lists_the_named_spaces_and_unknown_names_list_them():
    assert {"default", "paper", "shapes", "study", "confirm-pilot", "confirm-at", "confirm"} <= set(list_spaces())
    with pytest.raises(ValueError, match=r"unknown search space 'nope'.*default.*paper"):
        get_space("nope")


@pytest.mark.parametrize("name", ["default", "default-long", "paper", "shapes", "study", "confirm-pilot"])
def test_named_space_round_trips_through_its_dict_form(name):
    space = get_space(name)
    assert space_from_dict(space.to_dict()) == space
    for point in space.points:
        assert set(space.config(point)) <= set(KEYS)


def test_the_long_default_space_is_the_default_space_at_three_times_the_epochs():
    short, long = get_space("default").to_dict(), get_space("default-long").to_dict()
    assert long["constants"]["train/epochs"] == 3 * short["constants"]["train/epochs"] == 15
    for record in (short, long):
        record.pop("name"), record.pop("description"), record["constants"].pop("train/epochs")
    assert long == short


def test_keys_take_the_nsde_configs_own_rules():
    """One rule per value: a space checks a key with its nsde config field's rule, no copy."""
    configs = {"model": ModelConfig, "noise": NoiseConfig, "train": TrainConfig, "augment": AugmentConfig,
               "adversarial": AdversarialConfig}
    for key, rule in KEYS.items():
        group, name = key.split("/")
        if key not in ("noise/shape", "train/seed"):  # the search adds 'none' and a note on the seed
            assert rule is rules_of(configs[group])[name], key
    assert KEYS["train/epochs"].kind is int and KEYS["noise/depth"].kind is object
    assert KEYS["noise/shape"].kind is str and KEYS["train/seed"].low == rules_of(TrainConfig)["seed"].low
    message = r"^search space 'x': train/grad_clip: `0.0 < value` \(or None\) must hold, but got -1.0$"
    with pytest.raises(ValueError, match=message):
        SearchSpace(name="x", params={"train/lr": Param(FloatDistribution(0.001, 0.01))},
                    constants={"train/grad_clip": -1.0})
    # the practitioner's alternatives are keys too, checked by their own configs' rules
    with pytest.raises(ValueError, match=r"augment/kind: 'speckle' is not allowed: unknown augmentation kind 'speckle'"):
        SearchSpace(name="x", params={"augment/kind": Param(CategoricalDistribution(["none", "speckle"]))})
    with pytest.raises(ValueError, match=r"adversarial/eps: `0.0 <= value` must hold, but got -0.5"):
        SearchSpace(name="x", params={"train/lr": Param(FloatDistribution(0.001, 0.01))},
                    constants={"adversarial/eps": -0.5})


def test_conditions_hurst_only_for_fbm_and_depth_per_backbone():
    space = get_space("default")
    base = {"model/backbone": "resnet18", "model/drop_path_rate": 0.0, "train/lr": 1e-3,
            "train/weight_decay": 0.05, "train/batch_size": 32}
    assert "noise/hurst" not in space.active({**base, "noise/shape": "white"})
    fbm = space.active({**base, "noise/shape": "fbm"})
    assert "noise/hurst" in fbm and "noise/depth[resnet]" in fbm and "noise/depth[convnext]" not in fbm
    none = space.active({**base, "noise/shape": "none"})
    assert not any(n.startswith("noise/") and n != "noise/shape" for n in none)
    cfg = space.config({**base, "noise/shape": "fbm", "noise/hurst": 0.3, "noise/sigma": 0.1,
                        "noise/depth[resnet]": 5})
    assert cfg["noise/depth"] == 5 and cfg["train/epochs"] == 5 and "noise/depth[resnet]" not in cfg


def test_deterministic_baseline_is_reachable_in_every_named_space():
    for name in list_spaces():  # a free shape with "none" among its choices, or no noise at all
        space = get_space(name)
        shape = space.params.get("noise/shape")
        assert "none" in shape.distribution.choices if shape else space.constants["noise/shape"] == "none"


def _write(tmp_path, text, name="space.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_yaml_space_loads_with_yaml_1_1_exponents(tmp_path):
    path = _write(tmp_path, """
        preset: tiny
        params:
          noise/shape: {choices: [none, fbm]}
          noise/hurst: {low: 0.2, high: 0.8, when: {noise/shape: fbm}}
          train/lr: {low: 1e-4, high: 1e-2, log: true}
        constants: {train/epochs: 2}
        points:
          - {noise/shape: none, train/lr: 1e-3}
        """)
    space = load_space(path)
    assert space.name == "space" and space.preset == "tiny"
    assert space.params["train/lr"].distribution == FloatDistribution(1e-4, 1e-2, log=True)
    assert space.points[0]["train/lr"] == 1e-3


@pytest.mark.parametrize(
    "body, message",
    [
        ("params: {noise/hurst: {low: 0.5, high: 1.5}}", r"noise/hurst: `0.0 < value < 1.0` must hold, but got 1.5"),
        ("params: {train/lr: {low: 0.1, high: 0.01}}", r"`low <= high` must hold, but got low=0.1, high=0.01"),
        ("params: {train/lr: {low: 0, high: 0.1, log: true}}", r"log-scale range needs `low > 0`"),
        ("params: {train/learning_rate: {low: 0.1, high: 0.2}}", r"unknown config key 'train/learning_rate'"),
        ("params: {model/backbone: {choices: [vit_base]}}", r"'vit_base' is not allowed"),
        ("params: {train/epochs: {low: 1.5, high: 3.0}}", r"train/epochs is an integer"),
        ("params: {noise/hurst: {low: 0.1, high: 0.9, when: {noise/shape: fbm}}}", r"not a parameter defined before"),
        ("params: {train/lr: {low: 0.1, high: 0.2, colour: red}}", r"unknown fields \['colour'\]"),
        ("preset: huge\nparams: {train/lr: {low: 0.1, high: 0.2}}", r"unknown data preset 'huge'"),
        ("params: {train/lr: {low: 0.1, high: 0.2}}\nconstants: {train/lr: 0.1}", r"both a searched parameter and a constant"),
        ("params: {train/lr: {low: 0.1, high: 0.2}}\npoints: [{train/lr: 0.5}]", r"0.5 is outside \[0.1, 0.2\]"),
        ("params: {train/epochs: {low: 1, high: 9}}\npoints: [{train/epochs: 2.5}]", r"2.5 is not an integer"),
        ("params: {train/lr: {low: 0.1, high: 0.2, step: 0.05}}\npoints: [{train/lr: 0.12}]",
         r"0.12 is not on the grid 0.1 \+ k \* 0.05"),
        ("params: {train/lr: {low: 0.1, high: 0.2}}\npoints: [{train/lr: fast}]", r"'fast' is not a finite number"),
        ("params: {noise/depth: {choices: [3, 'stages:x']}}", r"'stages:I,J,...'"),
        ("params: {model/backbone: {choices: [resnet18]}, noise/depth: {low: 1, high: 9}}",
         r"noise/depth: resnet18: `depth <= 8` \(the number of residual blocks\) must hold, but got depth=9"),
        ("params: {noise/depth: {choices: ['stages:0,5']}}", r"stage indices must lie in \[0, 4\)"),
    ],
)
def test_invalid_yaml_space_names_the_file_the_parameter_and_the_rule(tmp_path, body, message):
    path = _write(tmp_path, body)
    with pytest.raises(ValueError, match=message) as info:
        load_space(path)
    assert str(path) in str(info.value)


def test_overlapping_conditions_on_one_key_are_rejected():
    with pytest.raises(ValueError, match="conditions must be disjoint"):
        SearchSpace(name="x", params={
            "model/backbone": Param(CategoricalDistribution(["resnet18", "convnext_atto"])),
            "a": Param(CategoricalDistribution([1, 2]), when={"model/backbone": ("resnet18",)}, key="noise/depth"),
            "b": Param(CategoricalDistribution([3]), when={"model/backbone": ("resnet18",)}, key="noise/depth"),
        })


def test_python_space_file(tmp_path):
    path = _write(tmp_path, """
        from optuna.distributions import FloatDistribution
        from spaces import Param, SearchSpace
        SPACE = SearchSpace(name="py", preset="tiny", params={"train/lr": Param(FloatDistribution(0.001, 0.01))})
        """, name="my_space.py")
    assert get_space(str(path)).name == "py"
    bad = _write(tmp_path, "X = 1\n", name="bad_space.py")
    with pytest.raises(ValueError, match="must define SPACE"):
        load_space(bad)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        get_space(str(tmp_path / "absent.yaml"))


def test_the_study_grid_is_complete_and_every_cell_has_the_baselines_seeds():
    space = get_space("study")
    assert space.designed and space.preset == "study"
    configs = [space.config(p) for p in space.points]
    cells: dict[tuple, list] = {}
    for c in configs:
        cell = (c["noise/shape"], c.get("noise/hurst"), c.get("noise/sigma"))
        cells.setdefault(cell, []).append(c["train/seed"])
    expected = {("none", None, None)} | {("white", None, s) for s in STUDY_SIGMA} | {
        (shape, h, s) for shape in ("fbm", "stationary") for h in STUDY_HURST for s in STUDY_SIGMA}
    assert set(cells) == expected  # every combination, nothing else (no H for white, no sigma for none)
    assert all(sorted(seeds) == sorted(STUDY_SEEDS) for seeds in cells.values())  # paired with the baseline's
    assert len(STUDY_HURST) >= 3 and {0.1, 0.5, 0.9} <= set(STUDY_HURST) and len(STUDY_SIGMA) >= 2
    assert len(STUDY_SEEDS) >= 3 and len(configs) == len(expected) * len(STUDY_SEEDS)
    # one recipe: everything but the design's factors is the same in every trial
    factors = {"noise/shape", "noise/hurst", "noise/sigma", "train/seed"}
    assert len({tuple(sorted((k, v) for k, v in c.items() if k not in factors)) for c in configs}) == 1
    # the first point is the deterministic baseline, and the seeds run replicate by replicate
    assert configs[0]["noise/shape"] == "none" and [c["train/seed"] for c in configs[:len(expected)]] == [0] * len(expected)
    for c in configs:  # the nsde configs accept every point
        from search.config import trial_configs

        trial_configs(c)


def test_a_design_runs_distinct_points_with_distinct_seeds():
    params = {"noise/shape": Param(CategoricalDistribution(["none", "white"])),
              "train/seed": Param(CategoricalDistribution([0, 1]))}
    points = replicate([{"noise/shape": "none"}, {"noise/shape": "white"}], [0, 1])
    assert points == ({"noise/shape": "none", "train/seed": 0}, {"noise/shape": "white", "train/seed": 0},
                      {"noise/shape": "none", "train/seed": 1}, {"noise/shape": "white", "train/seed": 1})
    SearchSpace(name="d", params=params, points=points, designed=True)
    with pytest.raises(ValueError, match="points 0 and 2 are the same configuration"):
        SearchSpace(name="d", params=params, points=points[:2] + points[:1], designed=True)
    with pytest.raises(ValueError, match="a designed space runs its points, and has none"):
        SearchSpace(name="d", params=params, designed=True)
    with pytest.raises(ValueError, match="distinct seeds"):
        replicate([{"noise/shape": "none"}], [0, 0])
    yaml_space = space_from_dict({"name": "y", "designed": True, "params": {"train/seed": {"choices": [0, 1]}},
                                  "points": [{"train/seed": 0}, {"train/seed": 1}]})
    assert yaml_space.designed and yaml_space.to_dict()["designed"] is True


def test_the_confirmatory_pilot_runs_the_arms_and_choices_the_plan_registers():
    """docs/study.md, "Plan": A, B x 3 intensities, B' x 3 lowest SNRs, C, D x 3 sigmas, and D at
    sigma 0.3 under three more recipes; one seed, each arm at its budget, one recipe otherwise."""
    from search.config import trial_configs

    space = get_space("confirm-pilot")
    assert space.designed and space.preset == "confirm" and len(space.points) == 14
    arms = []
    for point in space.points:
        model, train = trial_configs(space.config(point))
        n, a = model.noise, train.augment
        if n.sigma == 0:
            arms.append(("A",) if a.kind == "none" else ("B", a.high) if a.kind == "gaussian" else ("B'", a.snr_low))
            assert a.low == 0 and a.snr_high == 40
        elif n.sigma_mode == "absolute":
            arms.append(("C", n.sigma, n.eval_mode))
        else:
            arms.append(("D", n.sigma, train.lr, train.weight_decay))
            assert n.eval_mode == "off"
        assert n.sigma == 0 or (n.shape == "fbm" and n.hurst == 0.5 and n.depth == "all")
        assert train.epochs == (60 if arms[-1][0] == "C" else 30)  # each arm at the rule's budget for its kind
        assert train.seed == 0 and train.batch_size == 64 and model.backbone == "resnet18"
        if arms[-1][0] != "D":
            assert (train.lr, train.weight_decay) == (4e-3, 0.05)
    assert arms == [("A",), ("B", 0.05), ("B", 0.1), ("B", 0.2), ("B'", -5.0), ("B'", 5.0), ("B'", 15.0),
                    ("C", 0.3, "mc"), ("D", 0.1, 4e-3, 0.05), ("D", 0.3, 4e-3, 0.05), ("D", 0.5, 4e-3, 0.05),
                    ("D", 0.3, 2e-3, 0.01), ("D", 0.3, 2e-3, 0.05), ("D", 0.3, 4e-3, 0.01)]


def test_the_confirm_preset_keeps_the_study_sizes_and_tests_on_2000_examples():
    import numpy as np

    from nsde.data import PRESETS
    from nsde.data.dataset import _synthetic_layout, stratified_split

    cfg, study = PRESETS["confirm"], PRESETS["study"]
    assert cfg.image_size == study.image_size and cfg.synth == study.synth
    y, _, _ = _synthetic_layout(cfg)
    assert np.bincount(stratified_split(y, cfg.split, cfg.seed)).tolist() == [2144, 464, 2000]


def test_the_confirmatory_space_runs_every_arm_with_the_same_seeds_seed_major():
    """docs/study.md, "Plan": six arms from the pilot's choices, every arm with every seed, all
    arms of seed k before seed k + 1 (a block of 6 n points is n complete seeds), each arm at its
    budget, E at D's sigma and recipe."""
    from analysis.confirm import arm_of
    from search.config import trial_configs
    from spaces.builtin import CONFIRM_ARMS, confirm_space

    choices = {"B": {"augment/high": 0.1}, "B'": {"augment/snr_low": 5.0},
               "D": {"noise/sigma": 0.3, "train/lr": 2e-3, "train/weight_decay": 0.01}, "budgets": {"E": 60}}
    space = confirm_space(choices, seeds=range(12), final_profile="full")
    assert space.designed and space.preset == "confirm" and len(space.points) == 72
    seen = []
    for i, point in enumerate(space.points):
        config = space.config(point)
        model, train = trial_configs(config)
        arm, setting = arm_of(config)
        assert arm == CONFIRM_ARMS[i % 6] and train.seed == i // 6  # seed-major: complete seeds in order
        seen.append((arm, train.seed))
        assert train.epochs == {"C": 60, "E": 60}.get(arm, 30)
        if arm in ("D", "E"):
            assert setting == {"noise/sigma": 0.3, "train/lr": 2e-3, "train/weight_decay": 0.01}
            assert model.noise.shape == ("fbm" if arm == "D" else "white") and model.noise.eval_mode == "off"
        else:
            assert (train.lr, train.weight_decay) == (4e-3, 0.05)
        if arm == "C":
            assert model.noise.sigma_mode == "absolute" and model.noise.sigma == 0.3 and model.noise.eval_mode == "mc"
        assert model.noise.sigma == 0 or (model.noise.depth == "all" and model.noise.hurst == 0.5)
    assert {arm: {s for a, s in seen if a == arm} for arm in CONFIRM_ARMS} == {arm: set(range(12)) for arm in CONFIRM_ARMS}
    assert arm_of(space.config(space.points[1]))[1] == {"augment/high": 0.1}
    assert arm_of(space.config(space.points[2]))[1] == {"augment/snr_low": 5.0}
    # a block of the first three seeds is three complete seed blocks
    block = space.points[0:18]
    assert sorted(p["train/seed"] for p in block) == sorted([0, 1, 2] * 6)


def test_the_adversarial_training_reference_trains_at_the_pilots_eps_star_on_the_first_confirmatory_seeds():
    """docs/study.md, "References": PGD-L2 training at eps* (the record's), the plain recipe and
    budget, seeds 0-2, which every confirmatory arm also runs (paired by seed)."""
    import json
    from pathlib import Path

    from analysis.confirm import arm_of
    from search.config import trial_configs
    from spaces.builtin import CONFIRM_SEEDS

    record = json.loads((Path(__file__).parents[2] / "bench" / "results" / "confirm-pilot.json").read_text())
    space = get_space("confirm-at")
    assert space.designed and space.preset == "confirm" and space.final_profile == "confirm"
    seeds = []
    for point in space.points:
        config = space.config(point)
        model, train = trial_configs(config)
        assert arm_of(config) == ("AT", {"adversarial/eps": record["eps_star"]})
        assert train.adversarial.active and train.adversarial.steps == 7 and train.adversarial.eps_at(1) < train.adversarial.eps
        assert (train.lr, train.weight_decay, train.epochs, model.noise.sigma, train.augment.kind) == (4e-3, 0.05, 30, 0.0, "none")
        seeds.append(train.seed)
    assert seeds == [0, 1, 2] and set(seeds) <= set(CONFIRM_SEEDS)


def test_the_registered_confirmatory_space_runs_the_pilots_choices():
    """`confirm` is `confirm_space` at the choices the pilot's record holds (eps* is the
    `confirm` test profile's), seeds 0-11, seed-major, every arm every seed."""
    import json
    from pathlib import Path

    from analysis.confirm import arm_of, choose, pilot_table
    from spaces.builtin import CONFIRM_ARMS, CONFIRM_CHOICES

    record = json.loads((Path(__file__).parents[2] / "bench" / "results" / "confirm-pilot.json").read_text())
    # C has no free setting: the choice rests on the other 13 points, whether C is in or not
    table = pilot_table(record["rows"])
    assert {arm for arm in table["arm"]} >= {"A", "B", "B'", "D"}
    chosen = choose(table)
    assert {arm: chosen[arm] for arm in ("B", "B'", "D")} == CONFIRM_CHOICES
    space = get_space("confirm")
    assert space.final_profile == "confirm" and space.search_profile == "confirm-val" and len(space.points) == 72
    arms = [arm_of(space.config(p)) for p in space.points]
    assert [a for a, _ in arms] == list(CONFIRM_ARMS) * 12
    assert [p["train/seed"] for p in space.points] == [s for s in range(12) for _ in CONFIRM_ARMS]
    assert arms[1][1] == CONFIRM_CHOICES["B"] and arms[2][1] == CONFIRM_CHOICES["B'"]
    assert arms[4][1] == CONFIRM_CHOICES["D"] == arms[5][1]  # E at D's sigma and recipe


def test_the_confirmatory_blocks_cover_every_point_once_and_keep_c_apart():
    """Amendment 7: every point of `confirm` in exactly one block; a `confirm-<k>` block is the
    five arms other than C of one seed, a `confirm-c<j>` block is C of two consecutive seeds; so
    the blocks of seeds 0-5 hold every arm of those seeds (the first look) and nothing else."""
    from analysis.confirm import arm_of
    from search.settings import SearchSettings
    from spaces import get_space
    from spaces.builtin import CONFIRM_SEEDS, confirm_blocks

    space = get_space("confirm")
    blocks = {name: SearchSettings(points=points).point_indices(space) for name, points in confirm_blocks().items()}
    covered = sorted(i for idx in blocks.values() for i in idx)
    assert covered == list(range(len(space.points)))  # every point once
    assert len(blocks) == len(CONFIRM_SEEDS) + len(CONFIRM_SEEDS) // 2
    for name, idx in blocks.items():
        points = [space.points[i] for i in idx]
        arms = [arm_of(p)[0] for p in points]
        seeds = sorted({p["train/seed"] for p in points})
        if name.startswith("confirm-c"):
            j = int(name.removeprefix("confirm-c"))
            assert arms == ["C", "C"] and seeds == [2 * j - 2, 2 * j - 1]
        else:
            k = int(name.removeprefix("confirm-"))
            assert sorted(arms) == sorted(["A", "B", "B'", "D", "E"]) and seeds == [k - 1]
    first_look = [i for n, idx in blocks.items() for i in idx
                  if n in {f"confirm-{k}" for k in range(1, 7)} | {"confirm-c1", "confirm-c2", "confirm-c3"}]
    assert sorted(first_look) == list(range(36))
