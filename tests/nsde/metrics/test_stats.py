"""nsde.metrics.stats against known values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nsde.metrics.stats import auroc, mean_estimate, proportion


def test_wilson_interval_known_values():
    e = proportion([True] * 8 + [False] * 2)
    assert (e.value, e.n) == (0.8, 10)
    assert e.low == pytest.approx(0.4902, abs=1e-4) and e.high == pytest.approx(0.9433, abs=1e-4)
    all_right = proportion([True] * 20)
    assert all_right.high == 1.0 and all_right.low == pytest.approx(0.8389, abs=1e-4)
    assert math.isnan(proportion([]).value) and proportion([]).n == 0


def test_mean_interval():
    e = mean_estimate([1.0, 2.0, 3.0, 4.0])
    half = 3.182446305284263 * np.std([1, 2, 3, 4], ddof=1) / 2  # Student t, 3 degrees of freedom
    assert e.value == 2.5 and e.low == pytest.approx(2.5 - half) and e.high == pytest.approx(2.5 + half)


def test_auroc_known_cases():
    pos = np.array([True, True, False, False])
    assert auroc(np.array([0.9, 0.8, 0.2, 0.1]), pos) == 1.0
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), pos) == 0.0
    assert auroc(np.array([0.5, 0.5, 0.5, 0.5]), pos) == 0.5
    # 3 of the 4 positive/negative pairs are ordered correctly.
    assert auroc(np.array([0.9, 0.3, 0.5, 0.1]), pos) == 0.75
    assert math.isnan(auroc(np.array([0.1, 0.2]), np.array([True, True])))
