"""Pair the arms of bench/study_gpu.sh with the plain model: each metric of the designed study
(nsde.metrics.evaluate.STUDY_METRICS) and each input noise of the sweep, seed k against seed
k, example by example on the test split, with Holm's correction over the arms (one family a
metric). Needs only the nsde package (no pandas, Ray or MLflow).

    python bench/study_pairs.py outputs/study-gpu --arms plain published best --seeds 0 1 2

Reads OUT/<arm>-<seed>/eval_report.json (written by `python -m nsde.train --evaluate`), prints
the differences and writes OUT/pairs.json. These intervals resample the test examples: they
describe these trained models. The method-level comparison (the seeds as replicates,
`analysis.method`, which needs statsmodels) runs on a CPU machine from the reports, or from the
per-seed values in pairs.json (`member_seeds`, `baseline_seeds`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nsde.metrics.evaluate import STUDY_METRICS  # noqa: E402
from nsde.metrics.paired import paired_comparison  # noqa: E402
from nsde.metrics.stats import holm  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="the folder bench/study_gpu.sh wrote")
    p.add_argument("--arms", nargs="+", default=["plain", "published", "best"], help="the first is the baseline")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = p.parse_args(argv)
    reports = {}
    for arm in args.arms:
        paths = [args.out / f"{arm}-{s}" / "eval_report.json" for s in args.seeds]
        missing = [str(q) for q in paths if not q.exists()]
        if missing:
            print(f"error: missing {missing}", file=sys.stderr)
            return 2
        reports[arm] = [json.loads(q.read_text()) for q in paths]
    base, *arms = args.arms
    kinds = reports[base][0]["settings"]["sweep_kinds"]
    metrics = [*STUDY_METRICS, *((f"sweep_area@{k}", "max") for k in kinds)]
    rows = []
    for name, mode in metrics:
        part = [{"arm": arm, "metric": name, **paired_comparison(reports[arm], reports[base], name, mode,
                                                                   names=(arm, base))} for arm in arms]
        for row, adjusted in zip(part, holm([r["p"] for r in part])):
            row["p_holm"] = float(adjusted)
        rows += part
    print(f"these trained models (test examples resampled; seeds {args.seeds}):")
    print(f"{'metric':34s} {'arm':10s} {'arm':>7s} {base:>7s}  difference [95 % interval]   Holm p")
    for r in rows:
        p_text = f"< {r['p_holm']:.2g}" if r["p_bound"] else f"{r['p_holm']:.3g}"  # no resample crossed 0
        print(f"{r['metric']:34s} {r['arm']:10s} {r['member']:7.3f} {r['baseline']:7.3f}  "
              f"{r['difference']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}]   {p_text}")
    (args.out / "pairs.json").write_text(json.dumps({"baseline": base, "seeds": args.seeds, "rows": rows}, indent=1))
    print(f"wrote {args.out / 'pairs.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
