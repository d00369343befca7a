"""record.constraints: parsing, violations with known answers, and finding the baseline trial."""

from __future__ import annotations

import math

import pytest

from record import Constraint, baseline_trial, feasible, parse_constraints, violations


def test_parse_absolute_and_relative_bounds():
    assert parse_constraints(["clean_accuracy>=0.7", "abc_incorrect <= 0.6"]) == (
        Constraint("clean_accuracy", ">=", 0.7), Constraint("abc_incorrect", "<=", 0.6))
    assert parse_constraints("clean_accuracy>=baseline-0.02,apgd_accuracy>=baseline") == (
        Constraint("clean_accuracy", ">=", -0.02, relative=True), Constraint("apgd_accuracy", ">=", 0.0, relative=True))
    assert [str(c) for c in parse_constraints(["clean_accuracy>=baseline-0.02", "sweep_area>=1e-2"])] == [
        "clean_accuracy>=baseline-0.02", "sweep_area>=0.01"]
    assert parse_constraints(None) == ()


@pytest.mark.parametrize("text, message", [
    ("clean>=0.7", "unknown metric 'clean'"),
    ("clean_accuracy>0.7", "must read METRIC>=BOUND or METRIC<=BOUND"),
    ("clean_accuracy>=baseline*0.9", "must read METRIC>=BOUND"),
    ("clean_accuracy>=", "must read METRIC>=BOUND"),
])
def test_bad_constraints_are_one_line_errors_naming_the_text(text, message):
    with pytest.raises(ValueError, match=message) as err:
        parse_constraints([text])
    assert repr(text) in str(err.value)


def test_violations_follow_optunas_sign_and_use_the_baseline():
    at_least, at_most, relative = parse_constraints(
        ["clean_accuracy>=0.7", "abc_incorrect<=0.6", "clean_accuracy>=baseline-0.02"])
    assert at_least.violation({"clean_accuracy": 0.65}) == pytest.approx(0.05)  # missed by 5 points
    assert at_least.violation({"clean_accuracy": 0.8}) == pytest.approx(-0.1)  # kept with 10 to spare
    assert at_most.violation({"abc_incorrect": 0.7}) == pytest.approx(0.1)
    assert relative.violation({"clean_accuracy": 0.85}) is None  # no baseline yet: unknown
    assert relative.violation({"clean_accuracy": 0.85}, {"clean_accuracy": 0.9}) == pytest.approx(0.03)
    assert relative.violation({"clean_accuracy": 0.89}, {"clean_accuracy": 0.9}) == pytest.approx(-0.01)
    assert at_least.violation({"clean_accuracy": math.nan}) > 1  # no value: violated
    both = (at_least, relative)
    assert violations(both, {"clean_accuracy": 0.8}) == [pytest.approx(-0.1), None]
    assert feasible(both, {"clean_accuracy": 0.8}) is None  # nothing violated, one unknown
    assert feasible(both, {"clean_accuracy": 0.6}) is False  # violated whatever the baseline
    assert feasible(both, {"clean_accuracy": 0.8}, {"clean_accuracy": 0.81}) is True


def test_the_baseline_is_the_trial_of_the_spaces_first_point_whatever_its_seed():
    point = {"noise/shape": "none", "train/lr": 4e-3, "train/seed": 0, "noise/depth": (0, 1)}
    configs = {"a": {"noise/shape": "fbm", "train/lr": 4e-3, "train/seed": 3},
               "b": {"noise/shape": "none", "train/lr": 4e-3, "train/seed": 3, "noise/depth": [0, 1]},
               "c": {"noise/shape": "none", "train/lr": 4e-3, "train/seed": 3, "noise/depth": (0, 1)}}
    assert baseline_trial(configs, point) == "b"
    assert baseline_trial({"a": configs["a"]}, point) is None and baseline_trial(configs, None) is None
