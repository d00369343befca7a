"""The MLflow layout of a search, by name: what `search.tracking` writes and `analysis.load` reads.

    parent run   tags ROLE_TAG = ROLE_SEARCH, SEARCH_TAG, SPLIT_TAG, FRONT_CHANGE_TAG, PARETO_TAG
                 params: the search's settings (SEARCH_EVAL_PARAM, FINAL_EVAL_PARAM: the profiles)
                 artifacts SPACE_FILE, PARETO_SEARCH_FILE, PARETO_FINAL_FILE, FRONT_CHANGE_FILE,
                 TEST_ESTIMATES_FILE, IMPORTANCE_FILE, record.TIMING_FILE
    child run    tags PARENT_TAG (MLflow's own), TRIAL_TAG, SEARCH_TAG, STATUS_TAG, ENDED_TAG,
                 SPLIT_TAG, BASELINE_TAG, FAILURE_TAG, STOP_TAG, STOP_REASON_TAG
                 params: the trial's flat config; metrics: its results (`record.estimate_metrics`),
                 `final_*` and `test_*` (`record.FINAL_PREFIX`, `record.TEST_PREFIX`)
                 artifacts record.REPORT_FILE, FIGURE_FILE, FINAL_REPORT_FILE, TEST_FILE, model/
"""

from __future__ import annotations

__all__ = [
    "BASELINE_TAG", "ENDED_TAG", "FAILURE_TAG", "FINAL_EVAL_PARAM", "FRONT_CHANGE_FILE", "FRONT_CHANGE_TAG",
    "IMPORTANCE_FILE", "PARENT_TAG", "PARETO_FINAL_FILE", "PARETO_SEARCH_FILE", "PARETO_TAG", "ROLE_SEARCH",
    "ROLE_TAG", "SEARCH_EVAL_PARAM", "SEARCH_TAG", "SPACE_FILE", "SPLIT_TAG", "STATUS_TAG", "STOP_REASON_TAG",
    "STOP_TAG", "TEST_ESTIMATES_FILE", "TRIAL_TAG",
]

PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: a child run names its parent
ROLE_TAG = "nsde.role"  # ROLE_SEARCH on a search's parent run
ROLE_SEARCH = "search"
SEARCH_TAG = "nsde.search"  # the search's name, on its parent and every child run
TRIAL_TAG = "nsde.trial_id"  # a child run's Tune trial id
STATUS_TAG = "nsde.status"  # record.STATUSES, or record.LOST for a run no Tune trial owns
ENDED_TAG = "nsde.ended"  # when the driver saw the trial end (seconds since the epoch)
SPLIT_TAG = "nsde.splits"  # which split each kind of number comes from
BASELINE_TAG = "nsde.baseline"  # "true" on the trial re-scored as the deterministic baseline
FAILURE_TAG = "nsde.failure"  # a failed trial's last error line
STOP_TAG = "nsde.stopped_at_rung"  # a trial MOASHA stopped: the rung's epoch, and why (STOP_REASON_TAG)
STOP_REASON_TAG = "nsde.stop_reason"
FRONT_CHANGE_TAG = "nsde.front_change"  # how the front moved from the search to the final profile
PARETO_TAG = "nsde.pareto_trials"  # the final front's trial ids, comma-separated

SEARCH_EVAL_PARAM = "search_eval"  # the search profile's EvalConfig, as JSON
FINAL_EVAL_PARAM = "final_eval"  # the final profile's

SPACE_FILE = "space.json"
PARETO_SEARCH_FILE = "pareto_search.json"
PARETO_FINAL_FILE = "pareto_final.json"
FRONT_CHANGE_FILE = "front_change.json"
TEST_ESTIMATES_FILE = "test_estimates.json"
IMPORTANCE_FILE = "param_importance.json"
