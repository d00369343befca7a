"""`python -m nsde.metrics RUN [RUN ...]`: evaluate trained models and compare them side by side.

    python -m nsde.train --sigma 0 --out runs/baseline
    python -m nsde.train --sigma 0.1 --hurst 0.5 --out runs/nsde
    python -m nsde.metrics runs/baseline runs/nsde --figure runs/attributions.png

Each RUN is a folder written by `python -m nsde.train` (its checkpoint.pt names the model
and the data set). Prints the study's tables: 1 clean accuracy, 2 noise sweep (and 2b the SNR
sweep, noise in the waveform), 3 APGD-CE L2 robust accuracy, 4 attribution-based confidence
and stability, plus per-location accuracy and the attack's sanity checks, all on one split
(`--split val`, the default, or `test`). Every registered objective (`nsde.metrics.objectives`)
is a row of the table of its stage, and a legend says what each is; writes every report as
JSON next to its checkpoint (eval_report.json).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from nsde.cli import user_errors
from nsde.data import data_config_from_dict, load, prepare
from nsde.metrics.config import EVAL_PROFILES, eval_config
from nsde.metrics.evaluate import evaluate
from nsde.metrics.explain import attribution_figure
from nsde.metrics.objectives import objective_specs
from nsde.metrics.report import EvalReport
from nsde.metrics.stages import list_stages
from nsde.train import CHECKPOINT, load_checkpoint  # training never imports the metrics: no cycle


def _load_run(run: Path, device: str | None):
    ckpt_path = run / CHECKPOINT if run.is_dir() else run
    if not ckpt_path.exists():
        raise FileNotFoundError(f"{run}: no {CHECKPOINT} (is it a folder written by `python -m nsde.train`?)")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    data_path = Path(ckpt["data"]["path"])
    data = load(data_path) if (data_path / "meta.json").exists() else prepare(data_config_from_dict(ckpt["data"]["config"]))
    return load_checkpoint(ckpt_path, device=device), data


def _row(cells: list[str], widths: list[int]) -> str:
    return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [title, _row(header, widths), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(lines + [_row(r, widths) for r in rows])


def _pct(e) -> str:
    if not math.isfinite(e.value):
        return f"undefined (n={e.n})"
    return f"{100 * e.value:5.1f} [{100 * e.low:.1f}, {100 * e.high:.1f}]"


def _plain(e) -> str:
    return str(e) if math.isfinite(e.value) else f"undefined (n={e.n})"


# Tables 1-3 hold the levels of their stage and that stage's objectives, in %; the objectives
# of every other stage (ABC, attribution stability, and any registered later) are in Table 4.
_PERCENT_STAGES = ("clean", "sweep", "snr", "apgd")


def _objective_rows(est: dict[str, dict], names: list[str], stages: tuple[str, ...], fmt) -> list[list[str]]:
    """One row per registered objective of `stages`, each model's estimate formatted by `fmt`."""
    return [[spec.name, *[fmt(est[n][spec.name]) for n in names]] for spec in objective_specs()
            if spec.stage in stages]


def _legend() -> str:
    return "Objectives (better: max | min):\n" + "\n".join(
        f"  {spec.name} ({spec.direction}): {spec.doc}" for spec in objective_specs())


def comparison_tables(reports: dict[str, EvalReport]) -> str:
    """The study's tables 1-4 (and attribution stability, the sanity checks) side by side; every
    registered objective is a row of the table of its stage."""
    names = list(reports)
    first = reports[names[0]]
    split = {"val": "validation", "test": "test"}[first.split]
    est = {n: reports[n].objective_estimates() for n in names}
    out = [_table(f"Table 1: clean accuracy on the {split} split, % [95 % interval]", ["", *names],
                  _objective_rows(est, names, ("clean",), _pct))]
    rows = []
    for kind, points in first.sweep.items():
        for i, (intensity, _) in enumerate(points):
            rows.append([f"{kind} {intensity:g}", *[_pct(reports[n].sweep[kind][i][1]) for n in names]])
    rows += _objective_rows(est, names, ("sweep",), _pct)
    out.append(_table(f"Table 2: accuracy under input noise (inputs clipped to [0, 1]; areas over intensities <= "
                      f"{first.settings['sweep_area_max']:g}), %", ["noise", *names], rows))
    if first.snr and all(len(reports[n].snr) == len(first.snr) for n in names):
        rows = [[f"{level:+g} dB", *[_pct(reports[n].snr[i][1]) for n in names]] for i, (level, _) in enumerate(first.snr)]
        rows += _objective_rows(est, names, ("snr",), _pct)
        out.append(_table("Table 2b: accuracy with noise added to the waveform before the STFT, by SNR, %",
                          ["SNR", *names], rows))
    locations = [loc for loc in first.per_location if all(loc in reports[n].per_location for n in names)]
    if locations:
        out.append(_table("Clean accuracy per sensor location, %", ["location", *names],
                          [[loc, *[_pct(reports[n].per_location[loc]) for n in names]] for loc in locations]))
    rows = [[f"{eps:g}", *[_pct(reports[n].apgd[eps]) for n in names]] for eps in first.apgd]
    rows += _objective_rows(est, names, ("apgd",), _pct)
    out.append(_table(
        f"Table 3: APGD-CE L2 robust accuracy, % ({first.settings['apgd_steps']} steps, EOT "
        f"{first.settings['eot_iter']} for stochastic models)", ["eps", *names], rows))
    others = tuple(stage for stage in list_stages() if stage not in _PERCENT_STAGES)
    out.append(_table("Table 4: attribution-based confidence, stability and the other objectives "
                      "(value [95 % interval] (n))", ["", *names],
                      _objective_rows(est, names, others, _plain)
                      + [["evaluation seconds", *[f"{reports[n].seconds['total']:.1f}" for n in names]]]))
    if any(reports[n].checks for n in names):
        check_names = list(next(reports[n].checks for n in names if reports[n].checks))
        out.append(_table("Sanity checks of the attack (pass / FAIL / n/a)", ["check", *names],
                          [[c, *[_verdict(reports[n].checks.get(c, {}).get("passed")) for n in names]]
                           for c in check_names]))
    return "\n\n".join(out + [_legend()])


def _verdict(passed) -> str:
    return "n/a" if passed is None else ("pass" if passed else "FAIL")


@user_errors
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nsde.metrics", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="folders written by python -m nsde.train")
    p.add_argument("--names", nargs="+", default=None, help="column names (default: the folder names)")
    p.add_argument("--profile", choices=sorted(EVAL_PROFILES), default="fast",
                   help="named profiles (docs/metrics.md): fast = search trials, full = the study's settings, cpu-search / cpu-final = the CPU-sized pair of the default search")
    p.add_argument("--split", choices=("val", "test"), default="val",
                   help="the split every number comes from (select on val; report test once)")
    p.add_argument("--attack-subset", type=int, default=None, help="examples attacked (0 = all)")
    p.add_argument("--apgd-steps", type=int, default=None)
    p.add_argument("--eot-iter", type=int, default=None)
    p.add_argument("--abc-subset", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--figure", type=Path, default=None, help="write the attribution figure (study's Fig. 4) here")
    args = p.parse_args(argv)
    names = args.names or [r.name for r in args.runs]
    if len(names) != len(args.runs):
        print(f"error: {len(names)} --names for {len(args.runs)} runs", file=sys.stderr)
        return 2
    cfg = eval_config(args.profile, attack_subset=args.attack_subset, apgd_steps=args.apgd_steps,
                      eot_iter=args.eot_iter, abc_subset=args.abc_subset, seed=args.seed)
    reports, models, data = {}, {}, None
    for name, run in zip(names, args.runs):
        model, data = _load_run(run, args.device)
        print(f"evaluating {name} ({run}) ...", flush=True)
        reports[name] = evaluate(model, data, cfg, split=args.split)
        (run if run.is_dir() else run.parent).joinpath("eval_report.json").write_text(reports[name].to_json())
        models[name] = model
    print(comparison_tables(reports))
    if args.figure is not None:
        test = data.split("test")
        picks = torch.tensor([int((test.y == c).nonzero()[0]) for c in test.y.unique()[:4]])
        attribution_figure(models, test.x[picks], args.figure)
        print(f"attribution figure: {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
