"""`python -m search.run`: a multi-objective noise-shape search with Ray Tune, Optuna and MLflow.

With no arguments it runs the embedded default: a local Ray, the `default` space, a few
trials on the default data set, MLflow in ./mlflow.db. It ends by printing the
Pareto-optimal trials, the command that opens the MLflow UI on them and the path of the
search's HTML report (`analysis.report`: fronts, hypervolume, baseline comparison, figures).

    python -m search.run                                   # the default search (~30 min, 2 cores)
    python -m search.run --space shapes --num-samples 40 --sampler nsga2
    python -m search.run --space my_space.yaml --scheduler asha --scheduler-metric val_accuracy
    python -m search.run --address auto --preset paper --space paper --gpus-per-trial 0.25
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from nsde.cli import user_errors
from record import (
    COMPLETE,
    FAILED,
    METRICS,
    OBJECTIVE_SPLIT,
    PRUNED,
    RUNGS_FILE,
    SEED_KEY,
    STATUSES,
    TIMING_FILE,
    SearchFile,
    TrialRecord,
    parse_constraints,
    parse_objectives,
)
from record.schema import FINAL_EVAL_PARAM, SEARCH_EVAL_PARAM
from search.config import trial_configs
from search.final import FrontChange, as_search, finish, front_ids, pick_baseline
from search.launch import max_epochs, optuna_hint, require_server, tracker_state, tune_trials
from search.moasha import rung_epochs
from search.searcher import SAMPLERS
from search.settings import DEFAULT_TRIALS, SCHEDULERS, SearchContext, SearchSettings
from search.tracking import (
    TrackingUnavailable,
    check_mlflow,
    check_resumed_block,
    find_parent_run,
    log_importance,
    log_parent,
    log_pareto_model,
    mlflow_ui_hint,
    start_parent_run,
)

__all__ = ["SearchOutcome", "SearchSettings", "format_front", "main", "run_search"]

logger = logging.getLogger(__name__)


@dataclass
class SearchOutcome:
    """What a finished search returns (and prints)."""

    name: str
    experiment_id: str
    parent_run_id: str
    objectives: tuple
    rows: list[TrialRecord]
    front: list[str]  # the Pareto-optimal trial ids (final numbers when re-evaluated)
    change: FrontChange | None
    experiment_dir: Path
    timing: dict[str, Any] = field(default_factory=dict)
    ui_hint: str = ""
    optuna_hint: str = ""  # the optuna-dashboard command for the search's Optuna study
    report: Path | None = None  # the HTML report (analysis.report), None when it could not be written
    keep_flagged: bool = False
    rules: dict[str, Any] = field(default_factory=dict)  # SearchContext.rules(): what decides the fronts

    def row(self, trial_id: str) -> TrialRecord:
        return next(r for r in self.rows if r.trial_id == trial_id)


# ----------------------------------------------------------------------- checks


def _port_is_open(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _check_ray_address(address: str | None) -> None:
    """A cluster address that can't be reached is an error before anything starts."""
    if address in (None, "auto", "local"):
        return
    parsed = urlparse(address if "://" in address else f"ray://{address}")
    if parsed.hostname is None or parsed.port is None:
        raise ValueError(f"--address must be 'auto', 'host:port' or 'ray://host:port', but got {address!r}")
    if not _port_is_open(parsed.hostname, parsed.port):
        raise ValueError(f"Ray cluster at {address} cannot be reached (no answer on {parsed.hostname}:{parsed.port}); "
                         f"start it (`ray start --head` or `ray up ray_cluster.yaml`) or leave out --address")


def _prepare(settings: SearchSettings) -> SearchContext:
    """Validate everything that can be validated before Ray or any trial starts."""
    from nsde.data import PRESET_RULE, PRESETS
    from nsde.metrics import eval_config
    from spaces import get_space

    space = get_space(settings.space)
    block = settings.point_indices(space)
    if block is not None:  # a block of a long design: its points only, in the design's order
        if block[0] != 0 and any(c.relative for c in parse_constraints(settings.constraints)):
            raise ValueError(f"--points {settings.points}: a --constraint relative to the baseline needs the "
                             f"design's first point (the baseline) in the block")
        space = replace(space, points=tuple(space.points[i] for i in block))
    settings = replace(settings, num_samples=settings.trials(space))
    seeded = SEED_KEY in space.constants or any(p.target(n) == SEED_KEY for n, p in space.params.items())
    if not seeded:  # every trial trains with the search's seed
        space = replace(space, constants={**space.constants, SEED_KEY: settings.seed})
    if settings.final_seeds is not None:
        space = replace(space, final_seeds=settings.final_seeds)
    objectives = parse_objectives(settings.objectives)
    preset = settings.preset or space.preset
    PRESET_RULE.check(preset, "--preset")
    for point in space.points:  # a starting point the nsde configs reject fails now, not in a trial
        trial_configs(space.config(point))
    if settings.scheduler in ("asha", "moasha") and settings.grace_period >= max_epochs(space):
        raise ValueError(f"`--grace-period < epochs` must hold for {settings.scheduler.upper()}, but got grace "
                         f"period {settings.grace_period} and at most {max_epochs(space)} epochs")
    if settings.scheduler == "moasha":
        rungs = rung_epochs(settings.grace_period, settings.reduction_factor, max_epochs(space))
        if settings.rung_brackets > len(rungs) + 1:
            raise ValueError(f"`--rung-brackets <= {len(rungs) + 1}` (the rungs {list(rungs)} + 1) must hold, but got "
                             f"{settings.rung_brackets}")
    constraints = parse_constraints(settings.constraints)
    if any(c.relative for c in constraints) and not space.points:
        raise ValueError(f"--constraint {next(str(c) for c in constraints if c.relative)}: a bound relative to the "
                         f"baseline needs the space's first point (the deterministic baseline); space "
                         f"{space.name!r} has no points")
    check_mlflow(settings.mlflow_uri)
    prior = []
    if settings.warm_start and not settings.resume:  # (a resumed study holds its prior trials already)
        from search.warmstart import load_prior_search, prior_trials

        earlier = load_prior_search(settings.warm_start, experiment=settings.experiment,
                                    tracking_uri=settings.mlflow_uri)
        prior = prior_trials(earlier, space, objectives)
        logger.info("warm start: %d prior trials from search %s", len(prior), earlier.name)
    _check_ray_address(settings.address)
    name = settings.name or f"{space.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    storage, exp_dir = _storage(settings.storage_path, name)
    return SearchContext(settings, space, objectives, PRESETS[preset],
                         eval_config(settings.search_profile or space.search_profile, seed=settings.seed),
                         eval_config(settings.final_profile or space.final_profile, seed=settings.seed),
                         name, storage, exp_dir, rung_cfg=eval_config(settings.rung_profile, seed=settings.seed),
                         prior=prior)


def _storage(path: str, name: str) -> tuple[str, Path]:
    """Tune's storage path, and the local folder of the search's own files (the Optuna study,
    timing.json): the experiment folder itself, or $NSDE_CACHE_DIR/searches/NAME when Tune stores
    in the cloud (on the cluster, NSDE_CACHE_DIR is the shared file system: --resume finds it)."""
    if "://" in path:  # s3://, gs://: Ray's pyarrow filesystems; the study stays in the (shared) cache
        from nsde.data import default_cache_dir

        local = default_cache_dir() / "searches" / name
    else:
        path = str(Path(path).expanduser().resolve())
        local = Path(path) / name
    local.mkdir(parents=True, exist_ok=True)
    return path, local


# ------------------------------------------------------------------------ search


def run_search(settings: SearchSettings) -> SearchOutcome:
    """Run a search end to end; see the module docstring."""
    t0 = time.perf_counter()
    ctx = _prepare(settings)
    _check_resume(ctx)
    _start_ray(ctx)
    _prepare_data(ctx)
    _start_tracking(ctx)
    try:
        records = tune_trials(ctx)
        change = finish(ctx, records)
        front = list(change.final_front) if change else front_ids(records, ctx.objectives, **ctx.rules())
        with ctx.timed("models_s"):
            for r in (r for r in records if r.trial_id in front):
                log_pareto_model(settings.mlflow_uri, r.run_id, r.checkpoint)
        ctx.timing["total_s"] = time.perf_counter() - t0
        _add_trial_timing(ctx, records)
        log_parent(ctx.client, ctx.parent_run_id, ctx.objectives, records, front, change, ctx.timing)
        if (ctx.exp_dir / RUNGS_FILE).exists():  # MOASHA's tables and decisions (and, audited, what it would stop)
            ctx.client.log_artifact(ctx.parent_run_id, str(ctx.exp_dir / RUNGS_FILE))
        _write_search_file(ctx, records, change)
        ctx.client.set_terminated(ctx.parent_run_id, "FINISHED")
    except TrackingUnavailable:
        raise  # the parent stays open: --resume continues it
    except BaseException:
        require_server(ctx)  # a server gone in the steps after the trials: TrackingUnavailable, in one line
        ctx.client.set_terminated(ctx.parent_run_id, "FAILED")
        raise
    (ctx.exp_dir / TIMING_FILE).write_text(json.dumps(ctx.timing, indent=2))
    report = _write_report(ctx, ctx.exp_dir / "report.html")
    return SearchOutcome(ctx.name, ctx.experiment_id, ctx.parent_run_id, ctx.objectives, records, front, change,
                         ctx.exp_dir, ctx.timing, mlflow_ui_hint(settings.mlflow_uri, ctx.experiment_id,
                                                                 ctx.parent_run_id), optuna_hint(ctx), report,
                         settings.keep_flagged, ctx.rules())


def _check_resume(ctx: SearchContext) -> None:
    from ray import tune

    if ctx.settings.resume and not tune.Tuner.can_restore(ctx.tune_path):
        raise ValueError(f"--resume: no interrupted search to continue at {ctx.tune_path}")
    if not ctx.settings.resume and tune.Tuner.can_restore(ctx.tune_path):
        raise ValueError(f"a search named {ctx.name!r} already exists at {ctx.tune_path}; continue it with --resume "
                         f"or choose another --name")


def _start_ray(ctx: SearchContext) -> None:
    import ray

    with ctx.timed("ray_init_s"):
        if not ray.is_initialized():
            ray.init(address=ctx.settings.address, include_dashboard=False, logging_level=logging.WARNING,
                     configure_logging=True)


def _prepare_data(ctx: SearchContext) -> None:
    """The data set once per search, on the driver (trials load the cache by path), and the SNR
    sweep's spectrograms: the trials and the final re-evaluation read validation's (both
    profiles' levels), the held-out scoring test's."""
    from nsde.data import prepare
    from nsde.data.snr import snr_spectrograms

    with ctx.timed("data_s"):
        logger.info("data set: preset %r", ctx.settings.preset or ctx.space.preset)
        data = prepare(ctx.data_cfg)
        levels = {OBJECTIVE_SPLIT: {*ctx.search_cfg.snr_levels, *ctx.final_cfg.snr_levels},
                  "test": set(ctx.final_cfg.snr_levels) if ctx.settings.final else set()}  # --no-final: no test
        for split, split_levels in levels.items():
            for level in sorted(split_levels, reverse=True):
                snr_spectrograms(data, split, level, progress=True)
    ctx.data_path = str(data.path)


def _start_tracking(ctx: SearchContext) -> None:
    """The search's MLflow parent run: a new one, or the interrupted search's (--resume)."""
    from mlflow.tracking import MlflowClient

    s = ctx.settings
    ctx.client = MlflowClient(s.mlflow_uri)
    if s.resume:
        ctx.experiment_id, ctx.parent_run_id = find_parent_run(ctx.client, s.experiment, ctx.name)
        check_resumed_block(ctx.client, ctx.parent_run_id, ctx.name, s.points)
        return
    params = {**{k: v for k, v in asdict(s).items() if v is not None}, "name": ctx.name, "data_path": ctx.data_path,
              **({"warm_start_trials": len(ctx.prior)} if s.warm_start else {}),
              SEARCH_EVAL_PARAM: json.dumps(asdict(ctx.search_cfg)), FINAL_EVAL_PARAM: json.dumps(asdict(ctx.final_cfg))}
    ctx.experiment_id, ctx.parent_run_id = start_parent_run(ctx.client, s.experiment, ctx.name, params,
                                                            ctx.space.to_dict())


def _add_trial_timing(ctx: SearchContext, records: list[TrialRecord]) -> None:
    """Per trial: start, wall time as the driver saw it, training and evaluation work, overhead;
    the tracker's retries and its own time."""
    state = tracker_state(ctx)
    trials = []
    for r in records:
        wall = state["wall_seconds"].get(r.trial_id)
        work = r.metrics.get("train_seconds", 0.0) + r.metrics.get("eval_seconds_total", 0.0)
        trials.append({"trial_id": r.trial_id, "status": r.status, "started_at": state["started"].get(r.trial_id),
                       "wall_s": wall, "train_s": r.metrics.get("train_seconds"),
                       "eval_s": r.metrics.get("eval_seconds_total"),
                       "overhead_s": None if wall is None or r.status != COMPLETE else wall - work})
    ctx.timing.update(trials=trials, mlflow_callback_s=state["logging_seconds"],
                      recoveries=[tuple(x) for x in state["recoveries"]], restarts=[tuple(x) for x in state["restarts"]])


def _write_search_file(ctx: SearchContext, records: list[TrialRecord], change: FrontChange | None) -> None:
    """`search.json` in the search's folder: what `analysis.load_tune` needs beside Tune's own files."""
    baseline = pick_baseline(records)
    SearchFile(
        name=ctx.name, objectives=SearchFile.objective_pairs(ctx.objectives),
        settings={k: v for k, v in asdict(ctx.settings).items() if v is not None}, space=ctx.space.to_dict(),
        baseline=baseline.trial_id if baseline is not None and baseline.final else None,
        final={r.trial_id: r.final for r in records if r.final}, test={r.trial_id: r.test for r in records if r.test},
        front_change=asdict(change) if change is not None else None, run_ids={r.trial_id: r.run_id for r in records},
        mlflow={"tracking_uri": ctx.settings.mlflow_uri, "experiment_id": ctx.experiment_id,
                "parent_run_id": ctx.parent_run_id},
    ).write(ctx.exp_dir)


def _write_report(ctx: SearchContext, path: Path) -> Path | None:
    """The search's HTML report (analysis.report), also logged to the parent run with the
    parameter importance per objective (`param_importance.json`). A failure here
    loses nothing (every number is in MLflow already): it says how to write the report later."""
    from analysis import load_search
    from analysis.importance import param_importances
    from analysis.report import write_report

    uri = ctx.settings.mlflow_uri
    try:
        search = load_search(run_id=ctx.parent_run_id, tracking_uri=uri)
        write_report(search, path)
        ctx.client.log_artifact(ctx.parent_run_id, str(path))
        log_importance(ctx.client, ctx.parent_run_id, param_importances(search))
    except Exception as err:  # noqa: BLE001 - the search itself has finished and is recorded
        logger.warning("the report could not be written (%s: %s); write it with `python -m analysis.report "
                       "--run-id %s --tracking-uri %s`", type(err).__name__, err, ctx.parent_run_id, uri)
        return None
    return path


# --------------------------------------------------------------------------- CLI


def format_front(outcome: SearchOutcome) -> str:
    """The Pareto-optimal trials (selected on validation): parameters, objectives and the attack's
    checks, one row each; then their held-out test numbers and the baseline's; then the trials
    whose attack failed a sanity check. The tables are the report's (`analysis.report`), as text."""
    from analysis.report import front_table, held_out_table

    final = outcome.change is not None
    search = as_search(outcome.rows, outcome.objectives, name=outcome.name, **outcome.rules)
    table = front_table(search, final=final).drop(columns="run id")
    if table.empty:
        return "no trial completed; see the Tune folder and the MLflow runs for the reasons"
    which = "final profile" if final else "search profile"
    text = (f"Pareto-optimal trials (selected on the {OBJECTIVE_SPLIT} split, {which}; value [95 % interval]; "
            f"* knee point):\n" + _text_table(table))
    held = held_out_table(search)
    if not held.empty:
        seeds = int(held["seeds"].max())
        held = held[[c for c in held.columns if not c.endswith(" n")]]  # the HTML report gives the counts
        text += (f"\n\nHeld-out TEST estimates of the final front and the baseline (scored once; value [95 % "
                 f"interval], {seeds} training seed{'s' if seeds > 1 else ''} each):\n" + _text_table(held))
    return text + _format_convergence(outcome, list(table.index)) + _format_flagged(outcome)


def _format_convergence(outcome: SearchOutcome, front: list) -> str:
    """A plain warning when front members had not converged (nsde.train.convergence): such a
    front ranks speed of learning, not the methods."""
    from nsde.train.convergence import ConvergenceRule

    rows = {r.trial_id: r for r in outcome.rows if r.status == COMPLETE}
    known = [t for t in front if t in rows and "converged" in rows[t].metrics]
    short = [t for t in known if rows[t].metrics["converged"] != 1.0]
    if not short:
        return ""
    return (f"\n\nNOT CONVERGED: {len(short)} of the {len(known)} front trials were still learning at their last "
            f"epoch (not {ConvergenceRule().describe()}). This is a "
            f"smoke run at a fraction of convergence; its front is not an answer about the methods "
            f"(docs/benchmarks.md, 'Convergence', gives the budget the study preset needs).")


def _format_flagged(outcome: SearchOutcome) -> str:
    from record import failed_checks

    flagged = [r for r in outcome.rows if r.status == COMPLETE and r.flagged(final=True)]
    if not flagged:
        return ""
    kept = "kept on the fronts (--keep-flagged)" if outcome.keep_flagged else "kept off the fronts"
    return f"\n\nTrials whose attack failed a sanity check ({kept}):\n" + "\n".join(
        f"  {r.trial_id}: {', '.join(failed_checks(r.numbers(final=True)))}" for r in flagged)


def _text_table(df) -> str:
    """A frame of formatted cells as aligned text, its index (the trial ids) first."""
    header = ["trial", *map(str, df.columns)]
    body = [[str(tid), *map(str, row)] for tid, row in zip(df.index, df.itertuples(index=False))]
    widths = [max(len(x) for x in col) for col in zip(header, *body)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in [header, *body])


def _parser() -> argparse.ArgumentParser:
    d = SearchSettings()
    p = argparse.ArgumentParser(prog="python -m search.run", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--space", default=d.space, help="a named space (default, paper, shapes) or a .yaml/.py file")
    p.add_argument("--num-samples", type=int, default=None,
                   help=f"trials to run (default: {DEFAULT_TRIALS}, or every point of a designed space such as study)")
    p.add_argument("--points", default=None, metavar="START:STOP",
                   help="a designed space's points START..STOP-1 (0-based): one block of a long design, e.g. "
                        "0:18 for the first three seeds of six arms, or several joined by commas (0:3,4:6); "
                        "its own --name, resumable with --resume")
    p.add_argument("--objectives", default=d.objectives,
                   help=f"comma-separated name[:max|min]; names: {', '.join(METRICS)}")
    p.add_argument("--sampler", choices=SAMPLERS, default=d.sampler,
                   help="Optuna sampler; 'seeded' = scrambled Sobol sequence (quasi-random, fixed by --seed)")
    p.add_argument("--scheduler", choices=SCHEDULERS, default=d.scheduler,
                   help="fifo: every trial runs to the end; asha: stop weak trials early on --scheduler-metric; "
                        "moasha: stop trials early on all objectives, from a rung evaluation")
    p.add_argument("--scheduler-metric", default=d.scheduler_metric, help="the per-epoch metric ASHA compares")
    p.add_argument("--grace-period", type=int, default=d.grace_period,
                   help="ASHA, MOASHA: epochs before a trial may stop (the first rung)")
    p.add_argument("--reduction-factor", type=float, default=d.reduction_factor,
                   help="MOASHA: eta; rungs at grace period x eta^k epochs, the top 1/eta of a rung continue")
    p.add_argument("--rung-profile", default=d.rung_profile, help="MOASHA: evaluation profile of the rungs")
    p.add_argument("--rung-keep-front", action="store_true",
                   help="MOASHA: a trial on its rung's non-dominated front always continues (better with 3+ "
                        "objectives in the simulated benchmark; docs/benchmarks.md)")
    p.add_argument("--rung-brackets", type=int, default=d.rung_brackets,
                   help="MOASHA: Hyperband-style brackets; trials take brackets 0..N-1 in turn, bracket b's first "
                        "rung is the b-th (N = the rungs + 1: the last bracket never stops), ranked within their bracket")
    p.add_argument("--rung-extrapolate", action="store_true",
                   help="MOASHA: rank each trial on its values extrapolated to the budget (the line through its "
                        "previous and present rung in log-epochs) instead of its rung values; a trial's first "
                        "rung only records")
    p.add_argument("--rung-audit", action="store_true",
                   help="MOASHA: evaluate every rung and decide as the rule would, but stop nothing; the report "
                        "and rungs.json on the parent run then show the trials the rule would have stopped that "
                        "end on the front, and each rung's rank agreement with the end (Kendall tau)")
    p.add_argument("--constraint", dest="constraints", action="append", default=[], metavar="EXPR",
                   help="a bound every front member must keep, e.g. 'clean_accuracy>=0.7' or, against the "
                        "deterministic baseline (the space's first point), 'clean_accuracy>=baseline-0.02'; "
                        "repeat for several; TPE, NSGA-II and GP sample with them")
    p.add_argument("--warm-start", default=None, metavar="NAME_OR_RUN_ID",
                   help="start the sampler from an earlier search's complete trials (its name in --experiment, "
                        "or its parent run id); they run no trial and do not count toward --num-samples")
    p.add_argument("--gpus-per-trial", type=float, default=d.gpus_per_trial,
                   help="GPUs per trial; a fraction packs several trials on one GPU, N > 1 runs each trial as "
                        "a DDP job over N GPUs (Ray Train TorchTrainer)")
    p.add_argument("--ddp-workers", type=int, default=d.ddp_workers,
                   help="CPU data-parallel workers per trial (gloo); with GPUs use --gpus-per-trial N > 1")
    p.add_argument("--cpus-per-trial", type=float, default=d.cpus_per_trial, help="CPU cores per trial (torch threads)")
    p.add_argument("--max-concurrent", type=int, default=None, help="trials at once (default: as resources allow)")
    p.add_argument("--address", default=None, help="an existing Ray cluster ('auto', 'host:port'); default: local Ray")
    p.add_argument("--storage-path", default=d.storage_path, help="Tune results and checkpoints (shared on a cluster)")
    p.add_argument("--mlflow-uri", default=d.mlflow_uri, help="MLflow tracking URI (sqlite:///..., http://host:port)")
    p.add_argument("--experiment", default=d.experiment, help="MLflow experiment name")
    p.add_argument("--name", default=None, help="the search's name (default: SPACE-YYYYmmdd-HHMMSS)")
    p.add_argument("--seed", type=int, default=d.seed, help="seeds the sampler, the training and the evaluation")
    p.add_argument("--preset", default=None, help="data preset (default: the space's; e.g. paper)")
    p.add_argument("--search-profile", default=None, help="evaluation profile of every trial (default: the space's)")
    p.add_argument("--final-profile", default=None, help="profile that re-scores the front (default: the space's)")
    p.add_argument("--no-final", dest="final", action="store_false",
                   help="skip the final re-evaluation and the held-out test scores")
    p.add_argument("--final-seeds", type=int, default=None,
                   help="training seeds behind each held-out test number of the final front and the baseline "
                        "(N > 1 retrains N - 1 more; default: the space's, 1 in default, 3 in paper)")
    p.add_argument("--keep-flagged", action="store_true",
                   help="let trials whose attack failed a sanity check onto the fronts (default: kept off)")
    p.add_argument("--max-failures", type=int, default=d.max_failures,
                   help="retries of a failing trial (a lost node, a crash), each from its last checkpoint")
    p.add_argument("--tracking-outage-limit", type=float, default=d.tracking_outage_limit, metavar="SECONDS",
                   help="how long an MLflow server may stay down before the tracker stops waiting and drops writes "
                        "(training goes on; what was dropped is replayed from Tune's records at the end)")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted search --name (same --storage-path and --mlflow-uri): finished "
                        "trials are kept, unfinished ones continue from their checkpoints")
    return p


@user_errors
def main(argv: list[str] | None = None) -> int:
    args = vars(_parser().parse_args(argv))
    _show_progress()
    try:
        outcome = run_search(SearchSettings(**{**args, "constraints": tuple(args["constraints"])}))
    except (ValueError, ConnectionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    counts = {s: sum(r.status == s for r in outcome.rows) for s in STATUSES}
    print(f"\nsearch {outcome.name}: {counts[COMPLETE]} complete, {counts[PRUNED]} stopped early, "
          f"{counts[FAILED]} failed, in {outcome.timing['total_s'] / 60:.1f} min")
    for r in outcome.rows:
        if r.status == FAILED:
            print(f"  trial {r.trial_id} failed: {r.error}")
    print(format_front(outcome))
    if outcome.change is not None:
        print(outcome.change.summary())
    print(f"\nMLflow: {outcome.ui_hint}")
    print(f"Optuna: {outcome.optuna_hint}")
    print(f"Tune results: {outcome.experiment_dir}")
    if outcome.report is not None:
        print(f"Report: {outcome.report}")
    return 0


def _show_progress() -> None:
    """The CLI shows the search's own progress lines (the `search` loggers at INFO) on stdout."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("[search] %(message)s"))
    root = logging.getLogger("search")
    root.addHandler(handler)
    root.setLevel(logging.INFO)


if __name__ == "__main__":
    sys.exit(main())
