"""The record of a search, below both `search` (which writes it) and `analysis` (which reads it).

One trial record (`TrialRecord`, built from Tune's results by `from_result`), one status rule
(`trial_status`), the objectives and their directions, and the names and schema of the files
a search leaves (`search.json`, `final_reports/`, `test_reports/`, the trial's checkpoint), and
the constraints a search puts on its trials.
It imports nothing above `nsde`.
"""

from record.constraints import Constraint, baseline_trial, feasible, parse_constraints, violations
from record.files import (
    DATA_FILE,
    FIGURE_FILE,
    FINAL_FILE,
    FINAL_REPORT_FILE,
    FINAL_REPORTS,
    MODEL_FILE,
    REPORT_FILE,
    RUNGS_FILE,
    SEARCH_FILE,
    TEST_FILE,
    TEST_REPORTS,
    TIMING_FILE,
    SearchFile,
)
from record.objectives import (
    CHECKS_PASSED,
    DEFAULT_OBJECTIVES,
    EVALUATED,
    METRICS,
    OBJECTIVE_SPLIT,
    RUNG_EPOCH,
    RUNG_PREFIX,
    SCHEDULER_METRICS,
    TEST_PREFIX,
    Objective,
    parse_objectives,
)
from record.trial import (
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
    "CHECKS_PASSED", "Constraint", "baseline_trial", "feasible", "parse_constraints", "violations", "DATA_FILE", "DEFAULT_OBJECTIVES", "EVALUATED", "FIGURE_FILE", "FINAL_FILE", "FINAL_REPORTS",
    "FINAL_REPORT_FILE", "METRICS", "MODEL_FILE", "OBJECTIVE_SPLIT", "REPORT_FILE", "RUNGS_FILE",
    "RUNG_EPOCH", "RUNG_PREFIX", "SCHEDULER_METRICS", "SEARCH_FILE", "SEED_KEY",
    "STATUSES", "TEST_FILE", "TEST_PREFIX", "TEST_REPORTS", "TIMING_FILE", "Objective", "SearchFile", "TrialRecord",
    "config_differences", "failed_checks", "flatten", "from_result", "is_deterministic", "last_error_line", "parse_objectives",
    "trial_status", "unflatten",
]
