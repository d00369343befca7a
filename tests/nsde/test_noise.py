"""nsde.noise: the law of the fields (analytically and by sampling), determinism, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nsde.noise import (
    DENSE_MAX_POINTS,
    dense_factor,
    estimate_hurst,
    fractional_brownian_field,
    get_noise,
    list_noises,
    sample_noise,
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
