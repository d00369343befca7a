"""The rung audit: would early stopping have stopped the trials that end best?

A search run with `--scheduler moasha --rung-audit` evaluates every rung and lets MOASHA's rule
decide as it would, but stops nothing (`search.moasha.RungTables`, audit mode), so every trial
reaches its end. `rung_audit` then sets what the rule saw at each rung against how the trials
ended:

- **rank agreement**: per rung and objective, Kendall's tau (scipy) between the trials' rung
  values and their final values (validation, the search profile), with its p-value and the
  trials it is computed on; a rung whose tau is low ranks by something other than the end;
- **regret**: the trials the rule would have stopped at that rung that end on the final Pareto
  front (`front`), by name. A rule that stops a front member loses what the search exists to find.

`grace_from_audit` proposes a grace period: the first rung at which every objective's tau
reaches a threshold. Input is the rungs file's JSON (`record.RUNGS_FILE`), so that this module
needs nothing of `search`.

`best_kept` compares two finished searches instead of a search with itself: for each objective,
the configuration that ended best in a reference search that stopped nothing (FIFO), and what the
rule's search did with the same configuration (complete, stopped, or never sampled). With the
same sampler seed a random sampler draws the same configurations in the same order whatever the
scheduler does, so the two searches share their first trials.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

__all__ = ["best_kept", "grace_from_audit", "rung_audit", "would_stop"]


def would_stop(rungs: Mapping[str, Any]) -> dict[str, int]:
    """Trial id -> the rung epoch at which the rule stopped (or, in an audit, would have stopped) it."""
    out = {}
    for tid, decisions in rungs.get("decisions", {}).items():
        for d in decisions:
            if d.get("stop"):
                out[tid] = int(d["epoch"])
                break
    return out


def rung_audit(rungs: Mapping[str, Any], final: pd.DataFrame, objectives: Sequence[str],
               front: Sequence[str]) -> pd.DataFrame:
    """Per (rung epoch, objective): `trials` (with a rung value and a final value), `kendall_tau`,
    `p`, `would_stop` (trials the rule stops at this rung), `regret` (how many of them end on
    `front`) and `regret_trials` (their ids). `final` holds each trial's final objectives (index =
    trial id, columns = `objectives`); `rungs` is the rungs file's JSON, its values in the order of
    `rungs["directions"]`, which must be the objectives'."""
    names = list(objectives)
    if len(rungs.get("directions", [])) != len(names):
        raise ValueError(f"the rungs file ranks {len(rungs.get('directions', []))} objectives, but {len(names)} "
                         f"were given ({names})")
    stops, on_front = would_stop(rungs), set(map(str, front))
    rows = []
    for epoch in sorted(int(e) for e in rungs.get("tables", {})):
        values = {**rungs["tables"].get(str(epoch), {}), **rungs.get("shadow", {}).get(str(epoch), {})}
        stopped_here = sorted(t for t, e in stops.items() if e == epoch)
        regret = [t for t in stopped_here if t in on_front]
        for k, name in enumerate(names):
            pairs = [(v[k], float(final.loc[t, name])) for t, v in values.items()
                     if t in final.index and math.isfinite(v[k]) and math.isfinite(float(final.loc[t, name]))]
            tau, p = (kendalltau(*zip(*pairs)) if len(pairs) >= 3 else (math.nan, math.nan))
            rows.append({"rung": epoch, "objective": name, "trials": len(pairs), "kendall_tau": float(tau),
                         "p": float(p), "would_stop": len(stopped_here), "regret": len(regret),
                         "regret_trials": ", ".join(regret)})
    return pd.DataFrame(rows, columns=["rung", "objective", "trials", "kendall_tau", "p", "would_stop", "regret",
                                       "regret_trials"]).set_index(["rung", "objective"])


def grace_from_audit(audit: pd.DataFrame, *, min_tau: float = 0.6) -> int | None:
    """The first rung at which every objective's Kendall tau is at least `min_tau` (None: no rung)."""
    if audit.empty:
        return None
    by_rung = audit["kendall_tau"].groupby(level="rung").min()
    ok = by_rung[np.asarray(by_rung >= min_tau)]
    return int(ok.index[0]) if len(ok) else None


def best_kept(reference, rule) -> pd.DataFrame:
    """Per objective of `reference` (an `analysis.load.Search`, the search that stopped nothing):
    `best` (its complete trial that ends best on the objective, validation), `value`, `rule_trial`
    (the trial of `rule` with the same configuration over the parameters either search varied,
    "" when `rule` never sampled it) and `rule_status` (that trial's status: complete, pruned,
    failed, or "not sampled"). `kept` is True when the rule let it complete."""
    params = sorted(set(reference.varied_params) | set(rule.varied_params))

    def key(search, tid) -> tuple:
        config = search.config(tid)
        return tuple(repr(config.get(p)) for p in params)

    in_rule = {}
    for tid in rule.trials.index:
        in_rule.setdefault(key(rule, tid), str(tid))  # the first trial of a configuration drawn twice
    values = reference.values()
    rows = []
    for k, (name, mode) in enumerate(reference.objectives):
        column = values[:, k]
        if not np.isfinite(column).any():
            continue
        i = int(np.nanargmax(column) if mode == "max" else np.nanargmin(column))
        best = str(reference.trials.index[i])
        match = in_rule.get(key(reference, best), "")
        status = str(rule.trials.loc[match, "status"]) if match else "not sampled"
        rows.append({"objective": name, "best": best, "value": float(column[i]), "rule_trial": match,
                     "rule_status": status, "kept": status == "complete"})
    return pd.DataFrame(rows, columns=["objective", "best", "value", "rule_trial", "rule_status", "kept"]
                        ).set_index("objective")
