"""The record of a search, below both `search` (which writes it) and `analysis` (which reads it).

One trial record (`TrialRecord`, built from Tune's results by `from_result`), one status rule
(`trial_status`) and the status names, the metrics and their directions and ranges (derived
from the objective registry of `nsde.metrics`), how an estimate becomes flat metrics, the
names and schema of the files a search leaves (`search.json`, `timing.json`, `final_reports/`,
`test_reports/`, the trial's checkpoint), its MLflow layout (`record.schema`: tags, parent
artifacts, metric prefixes), and the constraints a search puts on its trials.
It imports nothing above `nsde`.
"""

from record import schema
from record.constraints import Constraint, baseline_trial, feasible, parse_constraints, violations
from record.files import (
    DATA_FILE,
    FIGURE_FILE,
    FINAL_EVAL_SECONDS,
    FINAL_FILE,
    FINAL_REPORT_FILE,
    FINAL_REPORTS,
    MODEL_FILE,
    REPORT_FILE,
    RUNGS_FILE,
    SEARCH_FILE,
    TEST_EVAL_SECONDS,
    TEST_FILE,
    TEST_REPORTS,
    TIMING_FILE,
    SearchFile,
)
from record.objectives import (
    CHECKS_PASSED,
    DEFAULT_OBJECTIVES,
    EVALUATED,
    FINAL_PREFIX,
    METRIC_BOUNDS,
    METRICS,
    OBJECTIVE_SPLIT,
    RUNG_EPOCH,
    RUNG_PREFIX,
    SCHEDULER_METRICS,
    TEST_PREFIX,
    TRAINING_METRICS,
    Objective,
    estimate_metrics,
    parse_objectives,
    profile_prefix,
)
from record.trial import (
    COMPLETE,
    FAILED,
    LOST,
    PRUNED,
    RUNNING,
    SEED_KEY,
    STATUSES,
    TrialRecord,
    config_differences,
    failed_checks,
    flatten,
    from_result,
    is_deterministic,
    last_error_line,
    trial_status,
    unflatten,
)

__all__ = [
    "CHECKS_PASSED", "COMPLETE", "Constraint", "DATA_FILE", "DEFAULT_OBJECTIVES", "EVALUATED", "FAILED",
    "FIGURE_FILE", "FINAL_EVAL_SECONDS", "FINAL_FILE", "FINAL_PREFIX", "FINAL_REPORTS", "FINAL_REPORT_FILE", "LOST",
    "METRICS", "METRIC_BOUNDS", "MODEL_FILE", "OBJECTIVE_SPLIT", "Objective", "PRUNED", "REPORT_FILE", "RUNGS_FILE",
    "RUNG_EPOCH", "RUNG_PREFIX", "RUNNING", "SCHEDULER_METRICS", "SEARCH_FILE", "SEED_KEY", "STATUSES",
    "SearchFile", "TEST_EVAL_SECONDS", "TEST_FILE", "TEST_PREFIX", "TEST_REPORTS", "TIMING_FILE", "TRAINING_METRICS",
    "TrialRecord", "baseline_trial", "config_differences", "estimate_metrics", "failed_checks", "feasible", "flatten",
    "from_result", "is_deterministic", "last_error_line", "parse_constraints", "parse_objectives", "profile_prefix",
    "schema", "trial_status", "unflatten", "violations",
]
