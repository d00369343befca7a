"""The search platform: `python -m search.run` (Ray Tune trials, Optuna multi-objective, MLflow)."""
