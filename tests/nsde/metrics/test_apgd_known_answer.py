"""Known answer for apgd_robust_accuracy: a linear classifier's exact L2 robust accuracy.

For logits z = W x + b (x flattened, K classes), the points of class j form the half-space
z_j(x') >= z_y(x'), whose L2 distance from x is (z_y - z_j) / ||w_y - w_j||_2. An L2 ball of
radius eps around x therefore holds a point of another class iff min_j of that distance is
below eps, provided the box [0, 1] does not cut the ball (checked below). So a point is
robust at eps iff it is classified correctly and every such distance exceeds eps; the
robust accuracy is a count, known in closed form, that APGD-CE L2 should reproduce: on a
linear model the CE loss has no local optima to trap the attack.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nsde.metrics.robustness import apgd_robust_accuracy

K, SIDE, N = 4, 8, 200
D = SIDE * SIDE
EPS = (0.05, 0.1, 0.15, 0.2, 0.25)  # the grid where the exact answers differ
TINY, HUGE = 1e-4, 2.0  # eps -> 0 (robust = clean) and eps beyond every boundary (robust = 0)
AMBIGUOUS = 2e-3  # a finite-step attack cannot judge points this close to the sphere of radius eps
# At most 1 point of 200 misjudged per eps. Measured (seed 0): exact at eps 0.05, 0.1, 0.2 and at
# TINY and HUGE; one point counted robust too many at 0.15 and at 0.25, the same at 50, 100 and 200
# steps and for seeds 0 and 1. Both have their nearest boundary just inside the ball (distance 0.1464
# at 0.15, 0.2478 at 0.25) and a second one close behind, where CE's gradient splits between two classes and
# its maximum in the ball stays correctly classified: a limit of the CE loss (what DLR was made
# for), not of the step count. With 1 step the gap is 3-16 points per eps, so the test can fail.
# The error may only go one way: no attack can break a point whose every boundary lies more than
# AMBIGUOUS beyond eps, so APGD never reports fewer robust points than the exact count.
TOLERANCE = 1


class Linear(torch.nn.Module):
    def __init__(self, w: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.w = torch.nn.Parameter(w.clone())
        self.b = torch.nn.Parameter(b.clone())

    def forward(self, x):
        return x.flatten(1) @ self.w.T + self.b


def _walsh(k: int) -> torch.Tensor:
    """(D, k): k orthonormal Walsh-Hadamard columns, entries +-1/8, so combinations stay small per pixel."""
    h = torch.ones(1, 1)
    while len(h) < D:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h[1 : k + 1].T / SIDE


def _boundary_distances(w, b, x, y):
    """(n, K) signed L2 distance from each x to the boundary between y and each class (inf for j = y)."""
    z = x.flatten(1).double() @ w.double().T + b.double()
    dist = torch.full(z.shape, float("inf"), dtype=torch.float64)
    for j in range(K):
        dw = w.double()[y] - w.double()[j]
        other = y != j
        dist[other, j] = (z[other, y[other]] - z[other, j]) / dw[other].norm(dim=1)
    return dist, z


def _case():
    g = torch.Generator().manual_seed(0)
    basis = _walsh(K)
    # W = 12 (I + 0.3 R) E^T: rows of different norms and angles, so ||w_y - w_j|| varies per pair.
    # Scale 12 keeps every logit margin under ~20: a saturated softmax would give CE a zero gradient
    # in float32, a failure of the data, not of the attack.
    w = 12.0 * (torch.eye(K) + 0.3 * torch.randn(K, K, generator=g)) @ basis.T
    b = -w @ torch.full((D,), 0.5) + 0.5 * torch.randn(K, generator=g)
    n = 3 * N
    coef = (torch.rand(n, K, generator=g) * 2 - 1) * 0.4
    x = 0.5 + coef @ basis.T + 0.02 * (torch.rand(n, D, generator=g) * 2 - 1)
    y = (x @ w.T + b).argmax(1)
    flip = torch.rand(n, generator=g) < 0.05  # some points start misclassified: never robust
    y[flip] = (y[flip] + 1 + torch.randint(0, K - 1, (int(flip.sum()),), generator=g)) % K
    dist, _ = _boundary_distances(w, b, x, y)
    dmin = dist.min(1).values
    # Leave out the ambiguous points (within AMBIGUOUS of any eps, or of 0: a near-tie in the clean
    # prediction), then keep the first N.
    radii = torch.tensor((0.0, TINY, *EPS), dtype=torch.float64)
    clear = ((dmin[:, None] - radii[None]).abs() > AMBIGUOUS).all(1)
    keep = clear.nonzero().squeeze(1)[:N]
    assert len(keep) == N
    return Linear(w, b), x[keep].reshape(N, 1, SIDE, SIDE), y[keep], w, b


def test_apgd_matches_the_exact_robust_accuracy_of_a_linear_model():
    model, x, y, w, b = _case()
    dist, z = _boundary_distances(w, b, x, y)
    dmin_t = dist.min(1).values
    dmin = dmin_t.numpy()
    clean = z.argmax(1) == y
    assert np.array_equal(clean.numpy(), dmin > 0)  # correct iff every signed distance is positive
    exact = {e: float(np.mean(dmin > e)) for e in (TINY, *EPS, HUGE)}

    # The box never binds on the grid: every pixel lies farther than the largest eps from 0 and 1,
    # so the whole ball (and every iterate APGD projects into it) is inside [0, 1].
    face = torch.minimum(x, 1 - x).min()
    assert face > max(EPS), f"pixels come within {float(face):.3f} of the box; the closed form would not hold"
    # At HUGE the ball leaves the box, but the closest point of the nearest other class (overshot by
    # 1e-3) is inside it and inside the ball, so every point is breakable: the exact answer is 0.
    flat = x.flatten(1).double()
    j = dist.argmin(1)
    dw = w.double()[y] - w.double()[j]
    step = (dmin_t + 1e-3)[:, None] * dw / dw.norm(dim=1, keepdim=True)
    nearest = flat - step
    assert nearest.min() >= 0 and nearest.max() <= 1 and (step.norm(dim=1) < HUGE).all()
    assert ((nearest.float() @ w.T + b).argmax(1) != y).all()
    assert exact[HUGE] == 0.0
    assert exact[TINY] == pytest.approx(float(clean.double().mean())) and 0.9 < exact[TINY] < 1

    # The case can fail: the exact answers spread over the grid, and a wrong closed form (margin
    # over ||w_y|| instead of ||w_y - w_j||) disagrees with them by far more than TOLERANCE.
    grid = [exact[e] for e in EPS]
    assert len(set(grid)) == len(grid) and grid[0] - grid[-1] > 0.3
    margin = z.gather(1, y[:, None]).squeeze(1)[:, None] - z
    margin[torch.arange(N), y] = float("inf")
    wrong = (margin / w.double()[y].norm(dim=1, keepdim=True)).min(1).values.numpy()
    assert max(abs(np.sum(wrong > e) - np.sum(dmin > e)) for e in EPS) > 5 * TOLERANCE

    measured, _ = apgd_robust_accuracy(
        model, x, y, eps=(TINY, *EPS, HUGE), steps=50, eot_iter=1, seed=0, batch_size=128
    )
    report = {e: (exact[e], measured[e].value) for e in exact}
    for e, (want, got) in report.items():
        assert measured[e].n == N
        assert round(got * N) >= round(want * N), f"eps={e}: APGD broke a robust point; exact vs APGD {report}"
        assert round(got * N) - round(want * N) <= TOLERANCE, f"eps={e}: exact vs APGD {report}"
    assert measured[TINY].value == exact[TINY]
    assert measured[HUGE].value == 0.0
