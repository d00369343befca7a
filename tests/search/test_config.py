"""search.config and search.searcher: flat trial configs, objectives, the define-by-run space,
and the early-stopping fix (a partial result must not enter Optuna as COMPLETE)."""

from __future__ import annotations

import math

import optuna
import pytest
from ray.tune.search.optuna import OptunaSearch

from nsde.models import build_model
from record import parse_objectives
from search.config import trial_configs
from search.searcher import NSDEOptunaSearch, define_by_run, fail_orphans, make_sampler
from spaces import get_space


def test_deterministic_baseline_config_builds_the_plain_timm_model():
    model_cfg, train_cfg = trial_configs({"model/backbone": "resnet18", "noise/shape": "none", "train/lr": 1e-3})
    assert model_cfg.noise.sigma == 0.0 and train_cfg.lr == 1e-3
    assert build_model(model_cfg).injected == ()


def test_nested_and_flat_configs_give_the_same_frozen_configs():
    flat = {"noise/shape": "fbm", "noise/hurst": 0.3, "noise/sigma": 0.2, "noise/depth": 3, "train/epochs": 2}
    nested = {"noise": {"shape": "fbm", "hurst": 0.3, "sigma": 0.2, "depth": 3}, "train": {"epochs": 2}}
    assert trial_configs(flat) == trial_configs(nested)
    assert trial_configs(flat)[0].noise.hurst == 0.3


def test_unknown_keys_and_invalid_values_are_rejected():
    with pytest.raises(ValueError, match=r"unknown config keys \['noise/colour'\]"):
        trial_configs({"noise/colour": "pink"})
    with pytest.raises(ValueError, match="0 < hurst < 1"):
        trial_configs({"noise/shape": "fbm", "noise/hurst": 1.5, "noise/sigma": 0.1})


def test_objectives_parse_with_directions():
    objs = parse_objectives("clean_accuracy,attribution_stability,apgd_accuracy:min")
    assert [(o.name, o.mode) for o in objs] == [("clean_accuracy", "max"), ("attribution_stability", "min"),
                                                 ("apgd_accuracy", "min")]
    with pytest.raises(ValueError, match="unknown objective 'speed'"):
        parse_objectives("speed")
    with pytest.raises(ValueError, match="each once"):
        parse_objectives("clean_accuracy,clean_accuracy")
    with pytest.raises(ValueError, match="'max' or 'min'"):
        parse_objectives("clean_accuracy:up")


def test_define_by_run_samples_only_active_parameters_into_platform_keys():
    space = get_space("default")
    study = optuna.create_study(directions=["maximize"], sampler=make_sampler("random", seed=0, num_samples=30))
    fn = define_by_run(space)
    for _ in range(30):
        trial = study.ask()
        cfg = fn(trial)
        model_cfg, _ = trial_configs(cfg)  # every sample is a valid nsde config
        assert not any("[" in k for k in cfg)
        assert ("noise/hurst" in cfg) == (cfg["noise/shape"] == "fbm")
        if cfg["noise/shape"] != "none":
            limit = 12 if cfg["model/backbone"] == "convnext_atto" else 8
            assert 1 <= cfg["noise/depth"] <= limit
        study.tell(trial, [0.0])


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "gp", "random", "seeded"])
def test_every_sampler_drives_a_multi_objective_study(sampler):
    space = get_space("default")
    study = optuna.create_study(directions=["maximize", "maximize"],
                                sampler=make_sampler(sampler, seed=1, num_samples=8))
    fn = define_by_run(space)
    for i in range(6):
        trial = study.ask()
        trial_configs(fn(trial))
        study.tell(trial, [i / 10, 1 - i / 10])
    assert len(study.best_trials) >= 1


def test_nsga2_replays_random_sampling_until_its_first_generation_fills():
    # bench_search_efficiency_real.replays_random rests on this: with fewer complete trials than
    # the population, NSGA-II draws exactly what the random sampler with the same seed draws
    space = get_space("default")
    fn = define_by_run(space)

    def draws(name: str, complete: set[int]) -> list[dict]:
        study = optuna.create_study(directions=["maximize"] * 2, sampler=make_sampler(name, seed=0, num_samples=12))
        out = []
        for i in range(12):
            trial = study.ask()
            out.append(fn(trial))
            if i in complete:
                study.tell(trial, [0.5, 0.5])
            else:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)  # as MOASHA's stopped trials
        return out

    assert draws("nsga2", {0, 3, 7}) == draws("random", {0, 3, 7})  # population 6: never filled
    assert draws("nsga2", set(range(12))) != draws("random", set(range(12)))  # filled: generation 2 differs


def _searcher(cls, space, storage):
    """A searcher whose study lives in `storage`, so that the test reads it back through
    Optuna's public API (`optuna.load_study`), for Ray's stock searcher as for ours."""
    s = cls(space=define_by_run(space), metric=["clean_accuracy", "apgd_accuracy"], mode=["max", "max"],
            sampler=optuna.samplers.RandomSampler(seed=0), study_name="s", storage=optuna.storages.RDBStorage(storage))
    s.suggest("t1")
    return s


def _trial(storage) -> optuna.trial.FrozenTrial:
    return optuna.load_study(study_name="s", storage=storage).trials[0]


def test_stock_optuna_search_records_a_stopped_trial_as_complete_and_ours_prunes_it(tmp_path):
    """The pitfall: a scheduler-stopped trial's last (per-epoch) result reaches the searcher."""
    space = get_space("default")
    partial = {"val_accuracy": 0.3, "clean_accuracy": math.nan, "apgd_accuracy": math.nan, "evaluated": False}
    partial_with_values = {**partial, "clean_accuracy": 0.3, "apgd_accuracy": 0.1}
    db = [f"sqlite:///{tmp_path / f'{k}.db'}" for k in range(4)]

    stock = _searcher(OptunaSearch, space, db[0])
    stock.on_trial_complete("t1", partial_with_values)
    assert _trial(db[0]).state == optuna.trial.TrialState.COMPLETE  # partial values as if final

    ours = _searcher(NSDEOptunaSearch, space, db[1])
    ours.on_trial_complete("t1", partial_with_values)
    assert _trial(db[1]).state == optuna.trial.TrialState.PRUNED
    assert _trial(db[1]).values is None

    done = _searcher(NSDEOptunaSearch, space, db[2])
    done.on_trial_complete("t1", {**partial_with_values, "evaluated": True})
    assert _trial(db[2]).state == optuna.trial.TrialState.COMPLETE
    assert _trial(db[2]).values == [0.3, 0.1]

    failed = _searcher(NSDEOptunaSearch, space, db[3])
    failed.on_trial_complete("t1", None, error=True)
    assert _trial(db[3]).state == optuna.trial.TrialState.FAIL


def test_non_finite_objectives_fail_the_optuna_trial_instead_of_leaving_it_running(tmp_path):
    db = f"sqlite:///{tmp_path / 'o.db'}"
    ours = _searcher(NSDEOptunaSearch, get_space("default"), db)
    ours.on_trial_complete("t1", {"clean_accuracy": 0.5, "apgd_accuracy": math.nan, "evaluated": True})
    assert _trial(db).state == optuna.trial.TrialState.FAIL


def test_the_searcher_survives_tunes_save_and_restore_with_its_trials(tmp_path):
    """--resume: Tune restores the searcher from its snapshot; the restored one tells the same study."""
    db = f"sqlite:///{tmp_path / 'o.db'}"
    ours = _searcher(NSDEOptunaSearch, get_space("default"), db)
    ours.save(str(tmp_path / "searcher.pkl"))
    restored = NSDEOptunaSearch(space=define_by_run(get_space("default")), metric=["clean_accuracy", "apgd_accuracy"],
                                mode=["max", "max"], sampler=optuna.samplers.RandomSampler(seed=1))
    restored.restore(str(tmp_path / "searcher.pkl"))
    restored.on_trial_complete("t1", {"clean_accuracy": 0.5, "apgd_accuracy": 0.25, "evaluated": True})
    assert _trial(db).state == optuna.trial.TrialState.COMPLETE and _trial(db).values == [0.5, 0.25]
    restored.on_trial_complete("t1", {"clean_accuracy": 0.1, "apgd_accuracy": 0.1, "evaluated": True})  # replayed
    assert _trial(db).values == [0.5, 0.25]


def test_a_restored_searcher_keeps_a_stopped_trials_rung_values(tmp_path):
    """MOASHA: the rung result that stopped a trial reaches the searcher only in
    on_trial_complete; after a --resume (save/restore) it still lands on the Optuna trial."""
    db = f"sqlite:///{tmp_path / 'o.db'}"
    ours = _searcher(NSDEOptunaSearch, get_space("default"), db)
    ours.on_trial_result("t1", {"rung_epoch": 1.0, "rung_clean_accuracy": 0.4, "rung_apgd_accuracy": 0.1})
    ours.save(str(tmp_path / "searcher.pkl"))
    restored = NSDEOptunaSearch(space=define_by_run(get_space("default")), metric=["clean_accuracy", "apgd_accuracy"],
                                mode=["max", "max"], sampler=optuna.samplers.RandomSampler(seed=1))
    restored.restore(str(tmp_path / "searcher.pkl"))
    restored.on_trial_complete("t1", {"rung_epoch": 3.0, "rung_clean_accuracy": 0.2, "rung_apgd_accuracy": 0.0,
                                      "clean_accuracy": math.nan, "apgd_accuracy": math.nan, "evaluated": False})
    trial = _trial(db)
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.user_attrs["stopped_at_rung"] == 3
    assert trial.user_attrs["rung_1"] == {"clean_accuracy": 0.4, "apgd_accuracy": 0.1}
    assert trial.user_attrs["rung_3"] == {"clean_accuracy": 0.2, "apgd_accuracy": 0.0}


def test_fail_orphans_fails_only_trials_left_running(tmp_path):
    study = optuna.create_study(directions=["maximize"], storage=f"sqlite:///{tmp_path / 'o.db'}")
    done, orphan = study.ask(), study.ask()
    study.tell(done, [1.0])
    assert fail_orphans(study) == 1
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]
    assert orphan.number == 1


def test_integer_keys_given_as_floats_and_unset_shape():
    model_cfg, train_cfg = trial_configs({"noise/shape": "fbm", "noise/sigma": 0.1, "noise/mc_samples": 4.0,
                                          "train/epochs": 3.0})
    assert model_cfg.noise.mc_samples == 4 and train_cfg.epochs == 3
    # without noise/shape the nsde default (fbm) applies: sigma still injects noise
    model_cfg, _ = trial_configs({"noise/sigma": 0.1})
    assert model_cfg.noise.shape == "fbm" and model_cfg.noise.sigma == 0.1
