"""The rung audit: MOASHA decides but stops nothing, and the analysis sets its decisions and rung
rankings against how the trials ended, on hand-made tables whose answer is known."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.rungs import best_kept, grace_from_audit, rung_audit, would_stop
from search.moasha import RungTables


EPOCH1 = [("a", 0.5), ("b", 0.4), ("c", 0.3), ("late", 0.1)]
EPOCH3 = [("a", 0.6), ("b", 0.5), ("c", 0.35), ("late", 0.55)]


def _crossing(audit: bool) -> RungTables:
    """Four trials, rungs at epochs 1 and 3, eta 2, one objective, as the scheduler feeds them: a
    trial the real rule stopped reports no later rung. Each decision is asynchronous (among the
    trials at the rung so far), so b, c and 'late' stop at epoch 1; 'late' is the slow learner that
    ends best, as a regularised configuration does."""
    tables = RungTables(["max"], [1, 3], 2.0, audit=audit)
    for tid, v in EPOCH1:
        tables.record(tid, 1, [v])
    for tid, v in EPOCH3:
        if audit or tid not in tables.stopped():
            tables.record(tid, 3, [v])
    return tables


def test_the_audit_decides_as_the_rule_would_but_keeps_the_stopped_trials_values_apart():
    real, audit = _crossing(audit=False), _crossing(audit=True)
    assert set(real.stopped()) == set(audit.stopped()) == {"b", "c", "late"}
    assert audit.decisions == real.decisions  # every decision the real rule's
    assert audit.tables[3] == {"a": [0.6]} and set(audit.shadow[3]) == {"b", "c", "late"}
    assert audit.values_at(3) == {tid: [v] for tid, v in EPOCH3}
    again = RungTables.from_dict(json.loads(json.dumps(audit.to_dict())))
    assert again.audit and again.shadow[3] == audit.shadow[3] and again.decisions == audit.decisions


def test_rung_audit_names_the_front_member_the_rule_would_have_stopped():
    rungs = _crossing(audit=True).to_dict()
    final = pd.DataFrame({"clean_accuracy": {"a": 0.70, "b": 0.60, "c": 0.50, "late": 0.80}})
    audit = rung_audit(rungs, final, ["clean_accuracy"], front=["late"])
    first = audit.loc[(1, "clean_accuracy")]
    assert first["trials"] == 4 and first["would_stop"] == 3
    assert first["regret"] == 1 and first["regret_trials"] == "late"
    # epoch 1: rung order a > b > c > late, final late > a > b > c: 3 of 6 pairs agree, tau 0
    assert first["kendall_tau"] == pytest.approx(0.0)
    # epoch 3: every trial reported (the audit stops nothing); 5 of 6 pairs agree, tau 2/3
    third = audit.loc[(3, "clean_accuracy")]
    assert third["trials"] == 4 and third["kendall_tau"] == pytest.approx(2 / 3) and third["would_stop"] == 0
    assert would_stop(rungs) == {"b": 1, "c": 1, "late": 1}
    assert grace_from_audit(audit, min_tau=0.6) == 3 and grace_from_audit(audit, min_tau=0.9) is None


def test_a_ranking_that_agrees_with_the_end_has_tau_one_and_no_regret():
    tables = RungTables(["max", "min"], [2], 2.0, audit=True)
    for i, tid in enumerate("abcde"):
        tables.record(tid, 2, [0.9 - 0.1 * i, 0.1 + 0.1 * i])
    final = pd.DataFrame({"acc": [0.95, 0.85, 0.75, 0.65, 0.55], "stab": [0.1, 0.2, 0.3, 0.4, 0.5]}, index=list("abcde"))
    audit = rung_audit(tables.to_dict(), final, ["acc", "stab"], front=["a"])
    np.testing.assert_allclose(audit["kendall_tau"], [1.0, 1.0])
    # asynchronous halving: each newcomer is ranked among those before it, so b, c, d, e stop
    assert (audit["regret"] == 0).all() and (audit["would_stop"] == 4).all()
    with pytest.raises(ValueError, match="ranks 2 objectives, but 1 were given"):
        rung_audit(tables.to_dict(), final, ["acc"], front=[])


def test_the_report_shows_the_audit_and_names_the_front_member_it_would_have_lost():
    from analysis.load import Search
    from analysis.report import render_report
    from record import Objective, TrialRecord

    rungs = _crossing(audit=True).to_dict()
    final = {"a": 0.70, "b": 0.60, "c": 0.50, "late": 0.80}
    records = [TrialRecord(t, "complete", {"train/lr": 0.001 * (i + 1)}, metrics={"clean_accuracy": v},
                           started=float(i)) for i, (t, v) in enumerate(final.items())]
    search = Search.from_records("audited", records, [Objective("clean_accuracy", "max")], rungs=rungs)
    assert search.front() == ["late"]
    audit = search.rung_audit()
    assert audit.loc[(1, "clean_accuracy"), "regret_trials"] == "late"
    html = render_report(search)
    assert "Rung audit: what early stopping would have cost" in html
    assert "The rule would have stopped 1 front member(s): late" in html


def test_best_kept_follows_the_reference_searchs_best_configurations_into_the_rules_search():
    from analysis.load import Search
    from record import Objective, TrialRecord

    objectives = [Objective("clean_accuracy", "max"), Objective("apgd_accuracy", "max")]

    def search(name, rows):
        records = [TrialRecord(t, status, {"train/lr": lr, "noise/shape": shape},
                               metrics={"clean_accuracy": c, "apgd_accuracy": r} if status == "complete" else
                               {"val_accuracy": 0.1}, started=float(i))
                   for i, (t, status, lr, shape, c, r) in enumerate(rows)]
        return Search.from_records(name, records, objectives)

    # FIFO: 'late' (fbm, lr 3e-3) ends best on clean accuracy, 'white' best on APGD
    fifo = search("fifo", [("a", "complete", 1e-3, "none", 0.70, 0.30), ("late", "complete", 3e-3, "fbm", 0.80, 0.40),
                           ("white", "complete", 2e-3, "white", 0.75, 0.50)])
    # the rule's search drew the same first configurations (other ids) and stopped 'late''s twin;
    # 'white''s configuration it never drew (another lr)
    rule = search("rule", [("r1", "complete", 1e-3, "none", 0.71, 0.31), ("r2", "pruned", 3e-3, "fbm", 0, 0),
                           ("r3", "complete", 2.5e-3, "white", 0.74, 0.52)])
    table = best_kept(fifo, rule)
    assert table.loc["clean_accuracy", "best"] == "late" and table.loc["clean_accuracy", "rule_trial"] == "r2"
    assert table.loc["clean_accuracy", "rule_status"] == "pruned" and not table.loc["clean_accuracy", "kept"]
    assert table.loc["apgd_accuracy", "best"] == "white"
    assert table.loc["apgd_accuracy", "rule_status"] == "not sampled" and table.loc["apgd_accuracy", "rule_trial"] == ""
    assert table.loc["apgd_accuracy", "value"] == pytest.approx(0.50)
    # the same configuration completed: kept
    kept = best_kept(fifo, search("rule2", [("s1", "complete", 3e-3, "fbm", 0.6, 0.2)]))
    assert kept.loc["clean_accuracy", "kept"] and kept.loc["clean_accuracy", "rule_trial"] == "s1"
