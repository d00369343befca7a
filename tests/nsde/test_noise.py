"""nsde.noise: the law of the fields (analytically and by sampling), determinism, errors."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from nsde.noise import (
    ANCHORS,
    DENSE_MAX_POINTS,
    dense_factor,
    estimate_hurst,
    fractional_brownian_field,
    get_noise,
    list_noises,
    sample_noise,
    stationary_field,
    stein_embedding,
    white_field,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ exactness of the law


def _circulant_row(emb) -> np.ndarray:
    """First row of the block-circulant covariance that the sampler's eigenvalues define."""
    return np.fft.ifft2(emb.sqrt_eig**2 * emb.sqrt_eig.size).real


def _grid(h: int, w: int, y0: int = 0, x0: int = 0) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = (a.ravel() for a in np.meshgrid(np.arange(h), np.arange(w), indexing="ij"))
    return ys + y0, xs + x0


def _implied_covariance(hurst: float, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Covariance of one of the exact sampler's fields (before normalisation), from the embedding alone."""
    emb = stein_embedding(hurst, h, w)
    circ = _circulant_row(emb)
    ys, xs = _grid(h, w)
    dy, dx = ys[:, None] - ys[None, :], xs[:, None] - xs[None, :]
    linear = 2.0 * emb.c2 * emb.delta**2 * (xs[:, None] * xs[None, :] + ys[:, None] * ys[None, :])
    cov = circ[dy % emb.torus[0], dx % emb.torus[1]] + linear
    dist = emb.delta * np.hypot(dy, dx)
    return cov, dist, np.array(emb.torus), emb.scale


@pytest.mark.parametrize("hurst", [0.1, 0.3, 0.5, 0.75, 0.8, 0.9])
@pytest.mark.parametrize("size", [(8, 8), (5, 9), (2, 2)])
def test_exact_method_has_the_fbm_variogram_for_every_pair(hurst, size):
    # Stein's construction is exact: E[(B(s)-B(t))^2] = 2 r^(2H) at *every* pair of grid
    # points, diagonals included (no sampling error: computed from the embedding itself).
    cov, dist, _, _ = _implied_covariance(hurst, *size)
    d = np.diag(cov)
    variogram = d[:, None] + d[None, :] - 2.0 * cov
    np.testing.assert_allclose(variogram, 2.0 * dist ** (2 * hurst), atol=1e-12)


@pytest.mark.parametrize("hurst", [0.3, 0.9])
@pytest.mark.parametrize("size", [(8, 8), (5, 9)])
def test_windows_of_one_torus_sample_are_independent(hurst, size):
    # Several fields are cut from one torus sample; their stationary parts must have zero
    # cross-covariance (rho is exactly 0 beyond R), across the wrap-around too.
    emb = stein_embedding(hurst, *size)
    circ = _circulant_row(emb)
    windows = [_grid(*size, y0, x0) for y0 in emb.offsets[0] for x0 in emb.offsets[1]]
    assert len(windows) == 4
    for i, (ya, xa) in enumerate(windows):
        for yb, xb in windows[i + 1 :]:
            cross = circ[(ya[:, None] - yb[None, :]) % emb.torus[0], (xa[:, None] - xb[None, :]) % emb.torus[1]]
            assert np.abs(cross).max() < 1e-12 * circ[0, 0]


@pytest.mark.parametrize("hurst", [0.2, 0.5, 0.9])
def test_normalisation_gives_expected_spatial_variance_one(hurst):
    h, w = 7, 10
    cov, _, _, scale = _implied_covariance(hurst, h, w)
    centre = np.eye(h * w) - 1.0 / (h * w)
    expected_var = np.trace(centre @ cov @ centre) / (h * w) * scale**2
    assert expected_var == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("hurst", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("size", [(6, 6), (3, 8), (2, 2)])
def test_dense_factor_is_the_normalised_fbm_covariance(hurst, size):
    h, w = size
    factor = dense_factor(hurst, h, w)
    cov = factor.T @ factor  # covariance of z @ factor
    ys, xs = (a.ravel() for a in np.meshgrid(np.arange(h), np.arange(w), indexing="ij"))
    r = np.hypot(ys[:, None] - ys[None, :], xs[:, None] - xs[None, :])
    d = np.diag(cov)
    variogram = d[:, None] + d[None, :] - 2.0 * cov
    off = r > 0
    ratio = variogram[off] / r[off] ** (2 * hurst)  # one constant for every pair: the fBm law
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)
    np.testing.assert_allclose(cov.sum(1), 0.0, atol=1e-9)  # spatial mean removed
    assert np.trace(cov) / (h * w) == pytest.approx(1.0, abs=1e-12)


def test_embedding_failure_is_loud_not_clamped():
    # H = 0.9 with the R = 1 embedding has negative eigenvalues: it must raise.
    with pytest.raises(ValueError, match="eigenvalue"):
        stein_embedding(0.9, 16, 16, radius=1.0)
    emb = stein_embedding(0.9, 16, 16)  # the automatic choice is R = 2, which is valid
    assert emb.radius == 2.0 and emb.min_eig_ratio > -1e-9


def test_eigenvalues_are_cached():
    assert stein_embedding(0.37, 12, 12) is stein_embedding(0.37, 12, 12)


# ------------------------------------------------------------------- sampled statistics


@pytest.mark.parametrize("method", ["exact", "stein", "dense"])
@pytest.mark.parametrize("hurst", [0.2, 0.5, 0.8])
def test_exact_hurst_estimate_within_005(hurst, method):
    size = 64 if method != "dense" else 32
    fields = fractional_brownian_field((256, size, size), hurst, method=method, generator=_gen(1))
    assert estimate_hurst(fields) == pytest.approx(hurst, abs=0.05)


def test_exact_picks_dense_for_small_and_stein_for_large_fields():
    side = int(math.isqrt(DENSE_MAX_POINTS))
    for size, method in ((side, "dense"), (side + 1, "stein")):
        a = fractional_brownian_field((2, size, size), 0.6, generator=_gen(6))
        b = fractional_brownian_field((2, size, size), 0.6, method=method, generator=_gen(6))
        assert torch.equal(a, b)


def test_hurst_estimator_separates_shapes():
    # The estimator must be able to fail: white noise has no long-range structure.
    white = white_field((64, 64, 64), generator=_gen(2))
    assert estimate_hurst(white) < 0.05
    rough = fractional_brownian_field((64, 64, 64), 0.2, generator=_gen(3))
    smooth = fractional_brownian_field((64, 64, 64), 0.8, generator=_gen(3))
    assert estimate_hurst(smooth) - estimate_hurst(rough) > 0.4


@pytest.mark.parametrize(
    "sampler",
    [
        lambda s, g: fractional_brownian_field(s, 0.3, method="stein", generator=g),
        lambda s, g: fractional_brownian_field(s, 0.85, method="stein", generator=g),
        lambda s, g: fractional_brownian_field(s, 0.85, method="dense", generator=g),
        lambda s, g: fractional_brownian_field(s, 0.6, method="spectral", generator=g),
        lambda s, g: white_field(s, generator=g),
    ],
    ids=["stein-0.3", "stein-0.85", "dense-0.85", "spectral-0.6", "white"],
)
def test_zero_mean_and_unit_mean_spatial_variance(sampler):
    fields = sampler((4000, 12, 12), _gen(4))
    means = fields.mean(dim=(-2, -1))
    assert means.abs().max() < 1e-5
    var = fields.var(dim=(-2, -1), unbiased=False).double()
    stderr = float(var.std() / math.sqrt(var.numel()))
    assert abs(float(var.mean()) - 1.0) < 4 * stderr + 1e-3


@pytest.mark.parametrize("method", ["stein", "dense"])
def test_leading_dims_are_independent_samples(method):
    fields = fractional_brownian_field((3000, 2, 8, 8), 0.7, method=method, generator=_gen(5)).reshape(3000, 2, 64)
    # The two channels of one sample, and neighbouring samples (which share one complex
    # FFT as real/imaginary parts), must be uncorrelated at every pixel.
    pairs = [(fields[:, 0], fields[:, 1]), (fields[:1500, 0], fields[1500:, 0]), (fields[:-1, 0], fields[1:, 0])]
    for a, b in pairs:
        a = (a - a.mean(0)) / a.std(0)
        b = (b - b.mean(0)) / b.std(0)
        corr = (a * b).mean(0)  # one correlation per pixel, each with stderr ~ 1/sqrt(n)
        assert corr.abs().max() < 5 / math.sqrt(a.shape[0])
    assert not torch.equal(fields[0], fields[1])


@pytest.mark.parametrize("method", ["stein", "dense", "spectral"])
def test_same_seed_same_fields_different_seed_different(method):
    a = fractional_brownian_field((4, 16, 16), 0.6, method=method, generator=_gen(7))
    b = fractional_brownian_field((4, 16, 16), 0.6, method=method, generator=_gen(7))
    c = fractional_brownian_field((4, 16, 16), 0.6, method=method, generator=_gen(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_shapes_dtypes_and_odd_sizes():
    for method in ("stein", "dense", "spectral"):
        f = fractional_brownian_field((3, 5, 7, 11), 0.4, method=method, generator=_gen(), dtype=torch.float64)
        assert f.shape == (3, 5, 7, 11) and f.dtype == torch.float64
    assert fractional_brownian_field((2, 2), 0.5).shape == (2, 2)
    assert fractional_brownian_field((1, 9, 9), 0.5, dtype=torch.bfloat16).dtype == torch.bfloat16
    assert fractional_brownian_field((0, 9, 9), 0.5).shape == (0, 9, 9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fields_on_device_and_seedable():
    g = torch.Generator(device="cuda").manual_seed(0)
    for method in ("stein", "dense", "spectral"):
        g.manual_seed(0)
        f = fractional_brownian_field((64, 32, 32), 0.8, method=method, generator=g)
        assert f.device.type == "cuda"
        g.manual_seed(0)
        assert torch.equal(f, fractional_brownian_field((64, 32, 32), 0.8, method=method, generator=g))
    for method in ("stein", "dense"):
        f = fractional_brownian_field((256, 32, 32), 0.8, method=method, device="cuda")
        assert estimate_hurst(f) == pytest.approx(0.8, abs=0.05)


# ------------------------------------------------------------------- registry and errors


def test_registry_lists_and_rejects_unknown():
    assert {"fbm", "white"} <= set(list_noises())
    assert get_noise("fbm").uses_hurst and not get_noise("white").uses_hurst
    with pytest.raises(ValueError, match=r"unknown noise shape 'pink'.*fbm.*white"):
        get_noise("pink")
    with pytest.raises(ValueError, match="needs a Hurst exponent"):
        sample_noise("fbm", (4, 4))
    assert sample_noise("white", (2, 4, 4)).shape == (2, 4, 4)
    assert sample_noise("fbm", (2, 4, 4), 0.5, method="spectral").shape == (2, 4, 4)


@pytest.mark.parametrize("hurst", [0.0, 1.0, -0.1, 1.5, float("nan"), True, "0.5"])
def test_bad_hurst_raises_naming_value(hurst):
    with pytest.raises(ValueError, match="hurst"):
        fractional_brownian_field((4, 4), hurst)


def test_hurst_is_checked_by_one_rule_with_one_message():
    from nsde.models import NoiseConfig

    calls = [
        lambda: fractional_brownian_field((4, 4), 1.5),
        lambda: fractional_brownian_field((4, 4), 1.5, method="spectral"),
        lambda: sample_noise("stationary", (4, 4), 1.5),
        lambda: dense_factor(1.5, 4, 4),
        lambda: NoiseConfig(shape="fbm", hurst=1.5, sigma=0.1),
    ]
    messages = set()
    for call in calls:
        with pytest.raises(ValueError) as err:
            call()
        messages.add(str(err.value))
    assert messages == {"`0.0 < hurst < 1.0` must hold, but got 1.5"}


@pytest.mark.parametrize("shape", [(1, 5), (5, 1), (5,), (3, 1, 4), ()])
def test_bad_shape_raises(shape):
    with pytest.raises(ValueError, match="shape|sizes"):
        fractional_brownian_field(shape, 0.5)
    with pytest.raises(ValueError, match="shape|sizes"):
        white_field(shape)


def test_bad_method_and_dtype_raise():
    with pytest.raises(ValueError, match=r"unknown fBm method 'fast'"):
        fractional_brownian_field((4, 4), 0.5, method="fast")
    with pytest.raises(ValueError, match="floating-point"):
        fractional_brownian_field((4, 4), 0.5, dtype=torch.int64)
    with pytest.raises(ValueError, match="max_lag"):
        estimate_hurst(torch.zeros(2, 8, 8), max_lag=8)


def test_chunked_draws_keep_the_law(monkeypatch):
    # Many fields are drawn in chunks to bound memory; chunk boundaries must not matter.
    import nsde.noise as noise

    monkeypatch.setattr(noise, "_CHUNK_ELEMS", 4096)  # a few fields per chunk
    fields = fractional_brownian_field((300, 32, 32), 0.3, method="stein", generator=_gen(9))
    assert estimate_hurst(fields) == pytest.approx(0.3, abs=0.05)
    assert fields.mean(dim=(-2, -1)).abs().max() < 1e-5
    flat = fields.reshape(300, -1)
    assert len({tuple(f[:3].tolist()) for f in flat}) == 300  # no repeated field


# ------------------------------------------------------------------ anchors: the law


def _pinned_formula(hurst: float, h: int, w: int) -> np.ndarray:
    """|s|^(2H) + |t|^(2H) - |s - t|^(2H) on the grid, scaled to mean per-pixel variance 1."""
    ys, xs = _grid(h, w)
    d0 = np.hypot(ys, xs) ** (2 * hurst)
    k = d0[:, None] + d0[None, :] - np.hypot(ys[:, None] - ys[None, :], xs[:, None] - xs[None, :]) ** (2 * hurst)
    return k / (np.trace(k) / (h * w))


@pytest.mark.parametrize("hurst", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("size", [(6, 6), (3, 8), (2, 2)])
def test_dense_corner_factor_is_the_pinned_fbm_covariance(hurst, size):
    factor = dense_factor(hurst, *size, anchor="corner")
    assert factor.shape == (size[0] * size[1] - 1, size[0] * size[1])
    assert not factor[:, 0].any()  # B(0, 0) = 0 for every draw, not only in law
    np.testing.assert_allclose(factor.T @ factor, _pinned_formula(hurst, *size), atol=1e-11)


@pytest.mark.parametrize("hurst", [0.2, 0.5, 0.9])
def test_stein_corner_scale_gives_unit_mean_second_moment(hurst):
    # Pinning the embedding's field at (0, 0): C - C[:, 0] - C[0, :] + C[0, 0]; its mean
    # diagonal times corner_scale^2 must be exactly 1 (no sampling).
    h, w = 7, 10
    cov, _, _, _ = _implied_covariance(hurst, h, w)
    pinned = cov - cov[:, :1] - cov[:1, :] + cov[0, 0]
    assert np.trace(pinned) / (h * w) * stein_embedding(hurst, h, w).corner_scale**2 == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("method", ["exact", "stein", "dense", "spectral"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_corner_anchor_pins_the_first_point_exactly(method, dtype):
    for hurst in (0.3, 0.85):
        f = fractional_brownian_field((50, 6, 9), hurst, method=method, anchor="corner", generator=_gen(20),
                                      dtype=dtype)
        assert torch.equal(f[:, 0, 0], torch.zeros(50, dtype=dtype))
        assert f[:, 1:, 1:].abs().min() > 0  # only that point


def _covariance_z_scores(fields: torch.Tensor, cov: np.ndarray) -> np.ndarray:
    """(E_emp[B_i B_j] - cov_ij) / stderr for zero-mean Gaussian fields, all pairs i, j.

    For Gaussians Var(B_i B_j) = cov_ii cov_jj + cov_ij^2, so the stderr of the mean of n
    products is sqrt((cov_ii cov_jj + cov_ij^2) / n); pairs with a zero variance are skipped.
    """
    x = fields.reshape(fields.shape[0], -1).double().numpy()  # (n, h, w) -> (n, h*w)
    emp = x.T @ x / x.shape[0]
    d = np.diag(cov)
    se = np.sqrt((d[:, None] * d[None, :] + cov**2) / x.shape[0])
    keep = se > 0
    return (emp[keep] - cov[keep]) / se[keep]


@pytest.mark.parametrize("method", ["exact", "stein", "dense"])
@pytest.mark.parametrize("hurst", [0.3, 0.85])
def test_corner_fbm_empirical_covariance_matches_the_anchored_formula(method, hurst):
    h, w, n = 4, 5, 20000
    cov = _pinned_formula(hurst, h, w)
    f64 = {"method": method, "generator": _gen(21), "dtype": torch.float64}
    f = fractional_brownian_field((n, h, w), hurst, anchor="corner", **f64)
    # 210 distinct pairs, each z ~ N(0, 1): beyond 5 happens with probability ~1e-4 in all.
    assert np.abs(_covariance_z_scores(f, cov)).max() < 5
    # The same check must be able to fail: the mean-anchored law is far from K.
    g = fractional_brownian_field((n, h, w), hurst, **{**f64, "generator": _gen(21)})
    assert np.abs(_covariance_z_scores(g, cov)).max() > 20


def test_exact_dispatch_passes_the_anchor():
    side = int(math.isqrt(DENSE_MAX_POINTS))
    for size, method in ((side, "dense"), (side + 1, "stein")):
        a = fractional_brownian_field((2, size, size), 0.6, anchor="corner", generator=_gen(22))
        b = fractional_brownian_field((2, size, size), 0.6, method=method, anchor="corner", generator=_gen(22))
        assert torch.equal(a, b) and not a[:, 0, 0].any()


_SHAPES = {
    "fbm-stein-0.3": lambda s, a, g: fractional_brownian_field(s, 0.3, method="stein", anchor=a, generator=g),
    "fbm-stein-0.85": lambda s, a, g: fractional_brownian_field(s, 0.85, method="stein", anchor=a, generator=g),
    "fbm-dense-0.85": lambda s, a, g: fractional_brownian_field(s, 0.85, method="dense", anchor=a, generator=g),
    "fbm-spectral-0.6": lambda s, a, g: fractional_brownian_field(s, 0.6, method="spectral", anchor=a, generator=g),
    "stationary-0.3": lambda s, a, g: stationary_field(s, 0.3, anchor=a, generator=g),
    "stationary-0.85": lambda s, a, g: stationary_field(s, 0.85, anchor=a, generator=g),
    "white": lambda s, a, g: white_field(s, anchor=a, generator=g),
}


@pytest.mark.parametrize("shape", list(_SHAPES))
def test_corner_anchor_has_unit_expected_mean_second_moment(shape):
    fields = _SHAPES[shape]((4000, 12, 12), "corner", _gen(23)).double()
    m2 = fields.square().mean(dim=(-2, -1))  # (1/n) sum_i B_i^2, one per field
    stderr = float(m2.std() / math.sqrt(m2.numel()))
    assert abs(float(m2.mean()) - 1.0) < 4 * stderr


@pytest.mark.parametrize("shape", ["stationary-0.3", "stationary-0.85"])
def test_stationary_mean_anchor_zero_mean_and_unit_spatial_variance(shape):
    fields = _SHAPES[shape]((4000, 12, 12), "mean", _gen(24)).double()
    assert fields.mean(dim=(-2, -1)).abs().max() < 1e-6
    var = fields.var(dim=(-2, -1), unbiased=False)
    stderr = float(var.std() / math.sqrt(var.numel()))
    assert abs(float(var.mean()) - 1.0) < 4 * stderr


def test_mean_anchor_draws_are_unchanged():
    # Checksums of float64 draws made before anchors existed (seed 11, shape (3, 6, 7)):
    # anchor="mean" (and the default) must reproduce them.
    before = {
        ("stein", 0.3): (119.54613346260126, -259.0226718333434),
        ("stein", 0.85): (77.74809314501002, 418.7808194383693),
        ("dense", 0.3): (99.77802866883117, -49.618575319233315),
        ("dense", 0.85): (46.68684218467956, -98.08480534015374),
        ("spectral", 0.3): (171.594059068702, -56.18433375027561),
        ("spectral", 0.85): (175.5608656576769, -31.031612279899633),
        ("white", None): (125.50257933994847, -210.75660584046318),
    }
    weights = torch.arange(3 * 6 * 7, dtype=torch.float64).reshape(3, 6, 7)
    for (method, hurst), (sum_sq, weighted) in before.items():
        if method == "white":
            draw = sample_noise("white", (3, 6, 7), anchor="mean", generator=_gen(11), dtype=torch.float64)
            default = white_field((3, 6, 7), generator=_gen(11), dtype=torch.float64)
        else:
            opts = {"method": method, "dtype": torch.float64}
            draw = sample_noise("fbm", (3, 6, 7), hurst, anchor="mean", generator=_gen(11), **opts)
            default = fractional_brownian_field((3, 6, 7), hurst, generator=_gen(11), **opts)
        assert torch.equal(draw, default)
        assert float(draw.square().sum()) == pytest.approx(sum_sq, rel=1e-10)
        # The dense factor comes from LAPACK's eigh, whose rounding depends on the CPU's kernels:
        # within near-degenerate eigenspaces the eigenvectors turn a little, which keeps the
        # energy (above, to 1e-16) but moves mass between pixels (7e-8 relative for H 0.3 on an
        # AMD EPYC against the machine these sums were recorded on). Any change to the
        # algorithm, its seeding or its anchor moves this sum by O(1).
        rel = 1e-6 if method == "dense" else 1e-10
        assert float((draw * weights).sum()) == pytest.approx(weighted, rel=rel)


# ------------------------------------------------------------ the stationary control shape


@pytest.mark.parametrize("hurst", [0.1, 0.5, 0.75, 0.9])
def test_stationary_law_is_steins_stationary_part(hurst):
    # From the embedding alone: constant variance c0 and the variogram 2 r^(2H) - 2 c2 r^2
    # (fBm's minus the smooth linear term) at every pair of the grid.
    h, w = 6, 9
    emb = stein_embedding(hurst, h, w)
    circ = _circulant_row(emb)
    ys, xs = _grid(h, w)
    dy, dx = ys[:, None] - ys[None, :], xs[:, None] - xs[None, :]
    cov = circ[dy % emb.torus[0], dx % emb.torus[1]]
    np.testing.assert_allclose(np.diag(cov), emb.c0, atol=1e-12)
    r = emb.delta * np.hypot(dy, dx)
    np.testing.assert_allclose(2 * (emb.c0 - cov), 2 * r ** (2 * hurst) - 2 * emb.c2 * r**2, atol=1e-12)


@pytest.mark.parametrize("hurst", [0.2, 0.5, 0.9])
def test_stationary_scales_are_exact(hurst):
    # From the circulant covariance C (no sampling): trace(P C P) / n * scale^2 = 1 for the
    # mean anchor, and C_ii * corner_scale^2 = 1 at every pixel for the corner anchor.
    import nsde.noise as noise

    h, w = 7, 10
    emb = stein_embedding(hurst, h, w)
    circ = _circulant_row(emb)
    ys, xs = _grid(h, w)
    cov = circ[(ys[:, None] - ys[None, :]) % emb.torus[0], (xs[:, None] - xs[None, :]) % emb.torus[1]]
    scale, corner_scale = noise._stationary_scales(hurst, h, w)
    centre = np.eye(h * w) - 1.0 / (h * w)
    assert np.trace(centre @ cov @ centre) / (h * w) * scale**2 == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(np.diag(cov) * corner_scale**2, 1.0, atol=1e-12)


def _corner_centre_ratio(var_map: torch.Tensor) -> float:
    """Largest corner-pixel variance over the mean variance of the central pixel(s)."""
    h, w = var_map.shape
    corners = var_map[[0, 0, -1, -1], [0, -1, 0, -1]]
    centre = var_map[(h - 1) // 2 : h // 2 + 1, (w - 1) // 2 : w // 2 + 1].mean()
    return float(corners.max() / centre)


@pytest.mark.parametrize("hurst", [0.1, 0.5, 0.9])
def test_stationary_variance_map_is_flat_and_fbm_is_edge_heavy(hurst):
    n = 20000
    fields = stationary_field((n, 16, 16), hurst, anchor="corner", generator=_gen(25), dtype=torch.float64)
    var_map = fields.square().mean(0)  # known zero mean: E[B^2] per pixel, rel. stderr sqrt(2/n)
    rel = 5 * math.sqrt(2 / n)
    assert float(var_map.max() / var_map.min()) < (1 + rel) / (1 - rel)
    assert float(var_map.mean()) == pytest.approx(1.0, abs=rel)
    fbm = fractional_brownian_field((n, 16, 16), hurst, generator=_gen(25), dtype=torch.float64)
    ratio = _corner_centre_ratio(fbm.square().mean(0))
    assert ratio > {0.1: 1.2, 0.5: 3.0, 0.9: 10.0}[hurst]  # exact values: 1.29, 3.8, 26.5


def test_stationary_hurst_estimate_tracks_hurst():
    # Small lags (1..4 on 64 x 64): Z's variogram is fBm's up to a relative c2 r^(2-2H),
    # a bias of -0.001, -0.006, -0.024 in H here (computed from the closed form).
    estimates = []
    for hurst in (0.3, 0.5, 0.7):
        emb = stein_embedding(hurst, 64, 64)
        r = emb.delta * np.arange(1, 5)
        gamma = 2 * r ** (2 * hurst) - 2 * emb.c2 * r**2
        expected = np.polyfit(np.log(np.arange(1, 5)), np.log(gamma), 1)[0] / 2
        fields = stationary_field((256, 64, 64), hurst, generator=_gen(26))
        batches = [estimate_hurst(fields[i::8], max_lag=4) for i in range(8)]
        stderr = float(np.std(batches, ddof=1) / math.sqrt(8))
        est = estimate_hurst(fields, max_lag=4)
        assert est == pytest.approx(expected, abs=5 * stderr)
        assert est == pytest.approx(hurst, abs=0.035)
        estimates.append(est)
    assert estimates[0] < estimates[1] < estimates[2]


def test_stationary_leading_dims_are_independent_samples():
    fields = stationary_field((3000, 2, 8, 8), 0.7, anchor="corner", generator=_gen(27)).reshape(3000, 2, 64)
    pairs = [(fields[:, 0], fields[:, 1]), (fields[:1500, 0], fields[1500:, 0]), (fields[:-1, 0], fields[1:, 0])]
    for a, b in pairs:
        corr = ((a - a.mean(0)) / a.std(0) * (b - b.mean(0)) / b.std(0)).mean(0)  # per pixel, stderr 1/sqrt(n)
        assert corr.abs().max() < 5 / math.sqrt(a.shape[0])


def test_stationary_seeds_dtypes_and_shapes():
    a = stationary_field((4, 16, 16), 0.6, generator=_gen(28))
    assert torch.equal(a, stationary_field((4, 16, 16), 0.6, generator=_gen(28)))
    assert not torch.allclose(a, stationary_field((4, 16, 16), 0.6, generator=_gen(29)))
    assert torch.equal(a, sample_noise("stationary", (4, 16, 16), 0.6, generator=_gen(28)))
    f = stationary_field((3, 5, 7, 11), 0.4, anchor="corner", generator=_gen(), dtype=torch.float64)
    assert f.shape == (3, 5, 7, 11) and f.dtype == torch.float64
    assert stationary_field((2, 2), 0.5).shape == (2, 2)
    assert stationary_field((1, 9, 9), 0.5, dtype=torch.bfloat16).dtype == torch.bfloat16
    assert stationary_field((0, 9, 9), 0.5, anchor="corner").shape == (0, 9, 9)


def test_stationary_chunked_draws_keep_the_law(monkeypatch):
    import nsde.noise as noise

    monkeypatch.setattr(noise, "_CHUNK_ELEMS", 4096)  # a few fields per chunk
    fields = stationary_field((2000, 8, 8), 0.3, anchor="corner", generator=_gen(30)).double()
    m2 = fields.square().mean(dim=(-2, -1))
    assert abs(float(m2.mean()) - 1.0) < 4 * float(m2.std() / math.sqrt(m2.numel()))
    assert len({tuple(f[0, :3].tolist()) for f in fields}) == 2000  # no repeated field


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_anchors_and_stationary_on_device_and_seedable():
    g = torch.Generator(device="cuda")
    for name, opts in (("fbm", {"method": "stein"}), ("fbm", {"method": "dense"}), ("stationary", {}), ("white", {})):
        for anchor in ANCHORS:
            g.manual_seed(0)
            f = sample_noise(name, (64, 32, 32), 0.8, anchor=anchor, generator=g, **opts)
            assert f.device.type == "cuda"
            g.manual_seed(0)
            assert torch.equal(f, sample_noise(name, (64, 32, 32), 0.8, anchor=anchor, generator=g, **opts))


# ----------------------------------------------------------- anchors: registry and errors


def test_stationary_is_registered_and_needs_hurst():
    assert "stationary" in list_noises() and get_noise("stationary").uses_hurst
    assert ANCHORS == ("mean", "corner")
    with pytest.raises(ValueError, match="'stationary' needs a Hurst exponent"):
        sample_noise("stationary", (4, 4))


@pytest.mark.parametrize("anchor", ["centre", "Mean", None, 0])
def test_bad_anchor_raises_naming_value(anchor):
    pattern = rf"unknown anchor {re.escape(repr(anchor))}; known anchors: \['mean', 'corner'\]"
    for name in ("fbm", "stationary", "white"):
        with pytest.raises(ValueError, match=pattern):
            sample_noise(name, (2, 4, 4), 0.5, anchor=anchor)
        with pytest.raises(ValueError, match=pattern):
            get_noise(name).sampler((2, 4, 4), 0.5, anchor=anchor)
    with pytest.raises(ValueError, match=pattern):
        dense_factor(0.5, 4, 4, anchor=anchor)
