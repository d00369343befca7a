"""Reading finished searches: Pareto fronts and (later) hypervolume, plots and reports."""

from analysis.pareto import pareto_mask, to_maximise

__all__ = ["pareto_mask", "to_maximise"]
