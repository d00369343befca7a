"""Reading finished searches: trials as DataFrames, Pareto fronts, hypervolume, plots, reports.

    from analysis import load_search, hypervolume, reference_point
    search = load_search(experiment="nsde-search")      # the latest search in the experiment
    search.trials                                       # one row a trial
    search.front(final=True)                            # Pareto-optimal trial ids (validation numbers)
    paired_versus_baseline(search)                      # the final front vs the baseline on test, paired
    from analysis import plots; plots.scatter_matrix(search)
    python -m analysis.report --experiment nsde-search  # everything in one HTML file

`plots` (matplotlib) and `report` are submodules, imported on use.
"""

from analysis.compare import (
    baseline_id,
    front_and_baseline,
    front_hursts,
    group_summary,
    paired_test,
    paired_versus_baseline,
    versus_baseline,
)
from analysis.hypervolume import BOUNDS, hypervolume, hypervolume_progress, reference_point
from analysis.load import Search, load_runs, load_search, load_tune
from analysis.pareto import crowding_distance, knee_index, pareto_front, pareto_mask, pareto_ranks, to_maximise

__all__ = [
    "BOUNDS", "Search", "baseline_id", "crowding_distance", "front_and_baseline", "front_hursts", "group_summary", "hypervolume",
    "hypervolume_progress", "knee_index", "load_runs", "load_search", "load_tune", "paired_test",
    "paired_versus_baseline", "pareto_front", "pareto_mask", "pareto_ranks", "reference_point", "to_maximise",
    "versus_baseline",
]
