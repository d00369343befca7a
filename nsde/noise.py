"""Shaped noise for Neural-SDE blocks: 2-D fractional Brownian surfaces and white noise.

The exact method is the intrinsic circulant embedding of

    M. L. Stein (2002), "Fast and exact simulation of fractional Brownian surfaces",
    Journal of Computational and Graphical Statistics 11(3), 587-599
    (also D. P. Kroese & Z. I. Botev (2015), "Spatial process simulation").

A fractional Brownian surface B with Hurst exponent H has the variogram
E[(B(s) - B(t))^2] = 2 |s - t|^(2H). Stein embeds the *stationary* covariance

    rho(r) = c0 - r^a + c2 r^2          for 0 <= r <= 1
           = beta (R - r)^3 / r          for 1 <= r <= R        (a = 2H)
           = 0                           for r > R

in a block-circulant matrix with non-negative eigenvalues (R = 1 for a <= 1.5,
R = 2 above), samples the stationary field Z by FFT and adds the linear term
sqrt(2 c2) (N1 x + N2 y) with N1, N2 ~ N(0, 1). Then for every pair of points at
distance r <= 1, E[(B(s) - B(t))^2] = 2 (rho(0) - rho(r)) + 2 c2 r^2 = 2 r^a: the
surface is exact on any point set of diameter <= 1. We therefore lay the h x w grid
out with spacing delta = 1 / sqrt((h-1)^2 + (w-1)^2), so that its *diagonal* is 1
(keeping the [0, 1]^2 corner instead would make the pairs at distance (1, sqrt 2]
wrong), and embed over a torus of side >= 2R (periodising a positive-definite
function over such a torus keeps every eigenvalue non-negative, so the torus may be
padded to an FFT-friendly size). The eigenvalues are checked: a negative one beyond
float rounding raises instead of being clamped.

Normalisation: every field has its spatial mean removed and is multiplied by one
deterministic factor 1 / sqrt(E[V]) where V is the spatial variance. Because
V = 1 / (2 n^2) sum_{i,j} (B_i - B_j)^2, E[V] follows exactly from the variogram of
the method's law, so the expected spatial variance is 1 and sigma alone sets the
intensity. Fields are *not* standardised by their own sample std, which would couple
the scale to the increments and bias the Hurst exponent.

A second exact algorithm, ``dense``, factors the exact covariance of the mean-removed
field once per (H, h, w) and draws fields as one matrix product; it needs n^2 work per
field but only n normals and a GEMM, and is several times faster than the FFT for small
maps (measured in ``docs/noise.md``). ``method="exact"`` picks ``dense`` for fields of at
most ``DENSE_MAX_POINTS`` points and Stein's embedding above.

The approximate ``spectral`` method (power spectrum ~ |k|^-(2H+2), random phases, on a
2x padded periodic grid) is cheaper and biased; its measured error in H is in
``docs/noise.md`` (``bench/bench_noise_hurst.py``).

Anchors. ``anchor="mean"`` is the normalisation above (zero spatial mean): such a field
vanishes under global average pooling and never moves a channel's mean.
``anchor="corner"`` keeps the field's own law, not centred. fBm has no law of its own
values (only of its increments), so it is pinned at the first grid point: the textbook
surface with B(0, 0) = 0 and covariance

    K(s, t) = |s|^(2H) + |t|^(2H) - |s - t|^(2H)      (variogram 2 |s - t|^(2H));

each method subtracts its field's value at (0, 0) (``dense`` factors K itself), which
gives exactly this covariance for any law with stationary increments. The stationary and
white shapes are simply not centred. One deterministic factor makes the expected mean
per-pixel second moment E[(1/n) sum_i B_i^2] equal to 1, the analogue of the unit
expected spatial variance: for a pinned field it is (1/n) sum_i gamma(x_i - x_0), for a
stationary one the variance at a point. sigma therefore means the same intensity under
both anchors.

The ``stationary`` shape is the stationary part Z of Stein's embedding (Stein 2002, the
field before the linear term is added), on the same grid layout. Its covariance is the
circulant's, so its variance rho(0) = c0 is the same at every pixel by construction (fBm's
per-pixel variance grows with the distance to the anchor, or to the centre once the mean is
removed). Its local roughness is fBm's: B = Z + L with L = sqrt(2 c2) (N1 x + N2 y)
independent of Z, so for r <= 1

    E[(Z(s) - Z(t))^2] = 2 r^(2H) - 2 c2 r^2,

which differs from fBm's variogram by the smooth term of a linear field, a relative
2 c2 r^2 / (2 r^(2H)) = c2 r^(2 - 2H) -> 0 as r -> 0. The behaviour of the variogram at the
origin sets the Hoelder exponent H and the fractal dimension 3 - H (Gneiting, Sevcikova &
Percival 2012, "Estimators of fractal dimension", Statistical Science 27(2), 247-277), so Z
is as rough as B; the variogram estimator at lags l delta reads that relative term as a
small downward bias, measured in ``docs/noise.md``. Z decorrelates at distance R (the
map's diagonal for H <= 0.75): it keeps fBm's roughness and drops its edge-heavy variance
and its long-range dependence beyond the map.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from nsde.rules import Rule

__all__ = [
    "NoiseShape",
    "register_noise",
    "list_noises",
    "hurst_shapes",
    "get_noise",
    "sample_noise",
    "fractional_brownian_field",
    "white_field",
    "stationary_field",
    "estimate_hurst",
    "stein_embedding",
    "SteinEmbedding",
    "dense_factor",
    "DENSE_MAX_POINTS",
    "FBM_METHODS",
    "ANCHORS",
    "check_hurst",
]

# A sampler draws `n` fields of size (h, w); its keyword arguments are documented at
# `sample_noise`.
NoiseSampler = Callable[..., torch.Tensor]

FBM_METHODS = ("exact", "stein", "dense", "spectral")
# "exact" picks the faster exact algorithm by field size: the dense factor for fields of
# at most this many points (its one-off eigendecomposition stays well under a second),
# Stein's circulant embedding above.
DENSE_MAX_POINTS = 1024
# "mean": zero spatial mean, expected spatial variance 1. "corner": the field's own law, not
# centred (fBm pinned at B(0, 0) = 0), expected mean per-pixel second moment 1.
ANCHORS = ("mean", "corner")

# The rules of the noise settings, shared by the samplers, NoiseConfig and search spaces.
HURST_RULE = Rule(float, 0.0, 1.0, open_low=True, open_high=True, doc="Hurst exponent (fbm, stationary)")
ANCHOR_RULE = Rule(str, choices=ANCHORS, what="anchor", doc="mean: zero-mean fields; corner: fBm with B(0,0) = 0")
METHOD_RULE = Rule(str, choices=FBM_METHODS, what="fBm method", doc="fBm algorithm")


@dataclass(frozen=True)
class NoiseShape:
    """A registered noise shape: whether it uses the Hurst exponent, and its sampler."""

    name: str
    uses_hurst: bool
    sampler: NoiseSampler

    def check_hurst(self, hurst: float | None) -> float | None:
        """`hurst` as this shape takes it: checked if the shape uses one (None is refused), else as given."""
        if not self.uses_hurst:
            return hurst
        if hurst is None:
            raise ValueError(f"noise shape {self.name!r} needs a Hurst exponent, but got hurst=None")
        return check_hurst(hurst)


_NOISE_REGISTRY: dict[str, NoiseShape] = {}


def register_noise(name: str, *, uses_hurst: bool) -> Callable[[NoiseSampler], NoiseSampler]:
    """Decorator: register a sampler ``fn(shape, hurst, *, anchor, generator, device, dtype)``.

    The sampler must accept every anchor of `ANCHORS` (see `sample_noise`).
    """

    def _register(fn: NoiseSampler) -> NoiseSampler:
        if name in _NOISE_REGISTRY:
            raise ValueError(f"noise shape {name!r} is already registered")
        _NOISE_REGISTRY[name] = NoiseShape(name=name, uses_hurst=uses_hurst, sampler=fn)
        return fn

    return _register


def list_noises() -> list[str]:
    """Names of the registered noise shapes, sorted."""
    return sorted(_NOISE_REGISTRY)


SHAPE_RULE = Rule(str, choices=list_noises, what="noise shape", doc="a registered noise shape")


def hurst_shapes() -> tuple[str, ...]:
    """The registered noise shapes that take a Hurst exponent (`NoiseShape.uses_hurst`), sorted."""
    return tuple(name for name in list_noises() if _NOISE_REGISTRY[name].uses_hurst)


def get_noise(name: str) -> NoiseShape:
    """The registered noise shape `name`; an unknown name lists the known ones."""
    SHAPE_RULE.check(name, "shape")
    return _NOISE_REGISTRY[name]


def sample_noise(
    name: str,
    shape: Sequence[int],
    hurst: float | None = None,
    *,
    anchor: str = "mean",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    **options,
) -> torch.Tensor:
    """Draw noise of the registered shape `name` (leading dims of `shape` are independent fields).

    `anchor` (`ANCHORS`): "mean" gives fields with zero spatial mean and expected spatial
    variance 1; "corner" the field's own law, not centred (fBm pinned at B(0, 0) = 0),
    with expected mean per-pixel second moment 1. `options` go to the shape's sampler
    (e.g. ``method="spectral"`` for ``fbm``).
    """
    noise = get_noise(name)
    hurst = noise.check_hurst(hurst)
    anchor = _check_anchor(anchor)
    return noise.sampler(shape, hurst, anchor=anchor, generator=generator, device=device, dtype=dtype, **options)


# --------------------------------------------------------------------------- checks


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(f"`shape` must have at least 2 dimensions (..., H, W), but got {shape}")
    if shape[-1] < 2 or shape[-2] < 2:
        raise ValueError(f"the spatial sizes must be >= 2, but got shape={shape}")
    if any(s < 0 for s in shape[:-2]):
        raise ValueError(f"batch dimensions must be >= 0, but got shape={shape}")
    return shape


def check_hurst(hurst: float) -> float:
    """`hurst` as a float, if it is a Hurst exponent strictly inside (0, 1); else ValueError."""
    HURST_RULE.check(hurst, "hurst")
    return float(hurst)


def _check_anchor(anchor: str) -> str:
    ANCHOR_RULE.check(anchor, "anchor")
    return anchor


def _resolve(device, dtype, generator) -> tuple[torch.device, torch.dtype]:
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    device = torch.device(device)
    dtype = dtype or torch.get_default_dtype()
    if not dtype.is_floating_point:
        raise ValueError(f"`dtype` must be a floating-point dtype, but got {dtype}")
    return device, dtype


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    # FFTs run in float32 (or float64 when asked); half types are cast at the end.
    return torch.float64 if dtype == torch.float64 else torch.float32


def _nice_fft_size(n: int) -> int:
    """Smallest m >= n whose prime factors are 2, 3, 5 or 7 (fast for cuFFT / pocketfft)."""
    m = max(n, 1)
    while True:
        k = m
        for p in (2, 3, 5, 7):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


# ------------------------------------------------------------ normalisation helper


def _expected_spatial_variance(variogram: Callable[[np.ndarray, np.ndarray], np.ndarray], h: int, w: int) -> float:
    """E[spatial variance] of an h x w field whose law has the stationary-increment variogram.

    V = 1/(2 n^2) sum_{i,j} (B_i - B_j)^2, so E[V] = 1/(2 n^2) sum_{i,j} gamma(x_i - x_j);
    an offset (dy, dx) occurs (h - |dy|) (w - |dx|) times among the ordered pairs.
    """
    dy = np.arange(-(h - 1), h)[:, None]
    dx = np.arange(-(w - 1), w)[None, :]
    counts = (h - np.abs(dy)) * (w - np.abs(dx))  # (2h-1, 2w-1)
    n = h * w
    return float((counts * variogram(dy, dx)).sum() / (2.0 * n * n))


def _expected_pinned_second_moment(variogram: Callable[[np.ndarray, np.ndarray], np.ndarray], h: int, w: int) -> float:
    """E[(1/n) sum_i (B_i - B_0)^2] of an h x w field with the variogram, pinned at (0, 0).

    Var(B_i - B_0) = gamma(x_i - x_0), so the expectation is the mean of gamma over the
    offsets (dy, dx) from the first grid point.
    """
    dy = np.arange(h)[:, None]
    dx = np.arange(w)[None, :]
    return float(np.broadcast_to(variogram(dy, dx), (h, w)).mean())  # (h, w) -> scalar


# ----------------------------------------------------------- Stein exact embedding


@dataclass(frozen=True)
class SteinEmbedding:
    """Everything about Stein's embedding that depends only on (H, h, w), in float64.

    `sqrt_eig` holds sqrt(lambda / (Lh * Lw)) on the (Lh, Lw) torus, `delta` the grid
    spacing in the embedding's units, `c2` the coefficient of the linear correction,
    `scale` the deterministic factor 1 / sqrt(E[V]) of the mean-anchored fBm field and
    `corner_scale` 1 / sqrt(E[(1/n) sum_i B_i^2]) of the corner-anchored one (B(0, 0) = 0).
    `offsets` are the row and column offsets of the windows cut from every sample of the
    torus: the windows are more than R apart (also across the wrap-around), where rho is
    exactly 0, so the stationary field on different windows is independent and one complex FFT gives
    2 * len(rows) * len(cols) independent fields.
    """

    hurst: float
    size: tuple[int, int]
    radius: float
    delta: float
    c0: float
    c2: float
    beta: float
    torus: tuple[int, int]
    offsets: tuple[tuple[int, ...], tuple[int, ...]]
    sqrt_eig: np.ndarray
    min_eig_ratio: float
    scale: float
    corner_scale: float


def _stein_rho(r: np.ndarray, hurst: float, radius: float, c0: float, c2: float, beta: float) -> np.ndarray:
    r = np.asarray(r, dtype=np.float64)
    inner = c0 - r ** (2.0 * hurst) + c2 * r**2
    outer = beta * np.clip(radius - r, 0.0, None) ** 3 / np.maximum(r, 1e-300)
    return np.where(r <= 1.0, inner, np.where(r <= radius, outer, 0.0))


def _stein_coefficients(hurst: float, radius: float) -> tuple[float, float, float]:
    """(c0, c2, beta) of Stein's intrinsic embedding for a = 2H over radius R."""
    a = 2.0 * hurst
    if radius == 1.0:
        return 1.0 - a / 2.0, a / 2.0, 0.0
    beta = a * (2.0 - a) / (3.0 * radius * (radius**2 - 1.0))
    c2 = (a - beta * (radius - 1.0) ** 2 * (radius + 2.0)) / 2.0
    c0 = beta * (radius - 1.0) ** 3 + 1.0 - c2
    return c0, c2, beta


# Eigenvalues below -tol * max are not float rounding: the embedding is invalid.
_EIG_TOL = 1e-9


@lru_cache(maxsize=256)
def stein_embedding(hurst: float, h: int, w: int, radius: float | None = None) -> SteinEmbedding:
    """Stein's embedding for an h x w grid (cached; `radius` overrides R for tests only).

    Raises:
        ValueError: if the circulant has a negative eigenvalue (the embedding is not valid).
    """
    hurst = check_hurst(hurst)
    _check_shape((h, w))
    if radius is None:
        radius = 1.0 if 2.0 * hurst <= 1.5 else 2.0
    radius = float(radius)
    c0, c2, beta = _stein_coefficients(hurst, radius)
    delta = 1.0 / math.hypot(h - 1, w - 1)  # the grid's diagonal has length 1
    # Two windows per axis, a gap of more than R between them (and across the wrap):
    # rho vanishes there, so the four windows (eight fields per complex FFT) are
    # independent. The torus side 2 * pitch > 2R also keeps the periodisation valid.
    gap = math.floor(radius / delta) + 1  # cells; gap * delta > R
    pitch = (h - 1 + gap, w - 1 + gap)
    torus = (_nice_fft_size(2 * pitch[0]), _nice_fft_size(2 * pitch[1]))
    offsets = ((0, pitch[0]), (0, pitch[1]))
    ky = np.arange(torus[0])
    kx = np.arange(torus[1])
    dy = np.minimum(ky, torus[0] - ky)[:, None]
    dx = np.minimum(kx, torus[1] - kx)[None, :]
    first_row = _stein_rho(delta * np.hypot(dy, dx), hurst, radius, c0, c2, beta)  # (Lh, Lw)
    eig = np.fft.fft2(first_row).real
    ratio = float(eig.min() / eig.max())
    if ratio < -_EIG_TOL:
        raise ValueError(
            f"Stein's circulant embedding is not valid for hurst={hurst}, size=({h}, {w}), "
            f"R={radius}: smallest eigenvalue / largest = {ratio:.3e} < -{_EIG_TOL:g}; "
            "clamping it would make the method inexact (H > 0.75 needs R = 2)"
        )
    sqrt_eig = np.sqrt(np.clip(eig, 0.0, None) / (torus[0] * torus[1]))
    a = 2.0 * hurst

    def variogram(y, x):
        return 2.0 * (delta * np.hypot(y, x)) ** a

    scale = 1.0 / math.sqrt(_expected_spatial_variance(variogram, h, w))
    corner_scale = 1.0 / math.sqrt(_expected_pinned_second_moment(variogram, h, w))
    return SteinEmbedding(
        hurst, (h, w), radius, delta, c0, c2, beta, torus, offsets, sqrt_eig, ratio, scale, corner_scale
    )


@lru_cache(maxsize=256)
def _stein_tensors(hurst: float, h: int, w: int, device: torch.device, dtype: torch.dtype):
    emb = stein_embedding(hurst, h, w)
    sqrt_eig = torch.as_tensor(emb.sqrt_eig, dtype=dtype, device=device)
    ys = torch.arange(h, dtype=dtype, device=device) * emb.delta
    xs = torch.arange(w, dtype=dtype, device=device) * emb.delta
    return emb, sqrt_eig, ys, xs


# Complex elements per FFT chunk (2^24 complex64 = 128 MiB): bounds the peak memory of a
# draw of many fields (batch 128 x 128 channels at 56x56 with H > 0.75 would otherwise
# need ~13 GB of FFT buffers at once).
_CHUNK_ELEMS = 1 << 24


def _chunks(n_pairs: int, torus: tuple[int, int]) -> list[int]:
    per = max(1, _CHUNK_ELEMS // (torus[0] * torus[1]))
    return [min(per, n_pairs - i) for i in range(0, n_pairs, per)]


def _circulant_fields(amp, n, h, w, generator, device, dtype, offsets=((0,), (0,))) -> torch.Tensor:
    """n stationary fields (n, h, w) with spectrum amp^2 on amp's torus.

    Every complex sample gives two fields (its real and imaginary parts) per window at
    `offsets` (row offsets, column offsets); the caller guarantees the windows independent.
    """
    torus = tuple(amp.shape)
    per_sample = 2 * len(offsets[0]) * len(offsets[1])
    parts = []
    for m in _chunks(-(-n // per_sample), torus):
        z = _complex_normal((m, *torus), generator, device, dtype)
        parts.append(_fft2_windows(amp * z, h, w, offsets))  # (m * windows, h, w) complex
    windows = torch.cat(parts)
    return torch.cat([windows.real, windows.imag], dim=0)[:n]  # (2 m windows, h, w) -> (n, h, w)


def _complex_normal(shape, generator, device, dtype) -> torch.Tensor:
    # Real and imaginary parts independent N(0, 1): Re and Im of the FFT are then two
    # independent fields, each with the circulant covariance.
    parts = torch.randn((*shape, 2), generator=generator, device=device, dtype=dtype)
    return torch.view_as_complex(parts)


def _fft2_windows(spectrum: torch.Tensor, h: int, w: int, offsets) -> torch.Tensor:
    """fft2 of (m, Lh, Lw), keeping only the h x w windows at `offsets` (prunes the 2nd pass)."""
    out = torch.fft.fft(spectrum, dim=-2)
    out = torch.cat([out[:, o : o + h] for o in offsets[0]], dim=1)  # (m, Lh, Lw) -> (m, kh*h, Lw)
    out = torch.fft.fft(out, dim=-1)
    out = torch.cat([out[..., o : o + w] for o in offsets[1]], dim=2)  # -> (m, kh*h, kw*w)
    m, kh, kw = out.shape[0], len(offsets[0]), len(offsets[1])
    # (m, kh*h, kw*w) -> (m, kh, h, kw, w) -> (m, kh, kw, h, w) -> (m*kh*kw, h, w)
    return out.view(m, kh, h, kw, w).permute(0, 1, 3, 2, 4).reshape(m * kh * kw, h, w)


def _normalise(fields: torch.Tensor, scale: float) -> torch.Tensor:
    return (fields - fields.mean(dim=(-2, -1), keepdim=True)) * scale


def _pin_corner(fields: torch.Tensor, scale: float) -> torch.Tensor:
    # x - x is exactly 0 in floating point: B(0, 0) = 0 holds to the bit.
    return (fields - fields[..., :1, :1]) * scale


def _anchored(fields: torch.Tensor, anchor: str, scale: float, corner_scale: float, *, pin: bool) -> torch.Tensor:
    """Apply `anchor`: "mean" centres and scales by `scale`; "corner" subtracts the (0, 0)
    value if `pin` (laws defined by their increments only) and scales by `corner_scale`."""
    if anchor == "mean":
        return _normalise(fields, scale)
    return _pin_corner(fields, corner_scale) if pin else fields * corner_scale


def _stein_fbm(shape, hurst, anchor, generator, device, dtype) -> torch.Tensor:
    *batch, h, w = shape
    n = math.prod(batch)
    work = _work_dtype(dtype)
    emb, sqrt_eig, ys, xs = _stein_tensors(hurst, h, w, device, work)
    fields = _circulant_fields(sqrt_eig, n, h, w, generator, device, work, emb.offsets)  # (n, h, w)
    # Stein's correction: a *linear* term sqrt(2 c2) (N1 x + N2 y), not a product of normals.
    slopes = torch.randn((n, 2), generator=generator, device=device, dtype=work) * math.sqrt(2.0 * emb.c2)
    fields = fields + slopes[:, 0, None, None] * xs[None, None, :] + slopes[:, 1, None, None] * ys[None, :, None]
    return _anchored(fields, anchor, emb.scale, emb.corner_scale, pin=True).reshape(shape).to(dtype)


# ------------------------------------------- Stein's stationary part (shape "stationary")


@lru_cache(maxsize=256)
def _stationary_scales(hurst: float, h: int, w: int) -> tuple[float, float]:
    """(mean-anchor, corner-anchor) factors of Stein's stationary part Z on the h x w grid.

    Z has covariance rho(delta |s - t|), so its variogram is 2 (rho(0) - rho(r)) and its
    variance rho(0) = c0 at every pixel.
    """
    emb = stein_embedding(hurst, h, w)

    def variogram(y, x):
        r = emb.delta * np.hypot(y, x)
        return 2.0 * (emb.c0 - _stein_rho(r, hurst, emb.radius, emb.c0, emb.c2, emb.beta))

    return 1.0 / math.sqrt(_expected_spatial_variance(variogram, h, w)), 1.0 / math.sqrt(emb.c0)


def _stein_stationary(shape, hurst, anchor, generator, device, dtype) -> torch.Tensor:
    *batch, h, w = shape
    n = math.prod(batch)
    work = _work_dtype(dtype)
    emb, sqrt_eig, _, _ = _stein_tensors(hurst, h, w, device, work)
    fields = _circulant_fields(sqrt_eig, n, h, w, generator, device, work, emb.offsets)  # (n, h, w)
    scale, corner_scale = _stationary_scales(hurst, h, w)
    return _anchored(fields, anchor, scale, corner_scale, pin=False).reshape(shape).to(dtype)


# ------------------------------------------------- exact dense covariance factor


def _fbm_distance_powers(hurst: float, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """|x_i - x_j|^(2H) (n, n) and |x_i - x_0|^(2H) (n,) over the grid points in row-major order."""
    ys, xs = (a.ravel() for a in np.meshgrid(np.arange(h), np.arange(w), indexing="ij"))
    d = np.hypot(ys[:, None] - ys[None, :], xs[:, None] - xs[None, :]) ** (2.0 * hurst)  # (n, n)
    return d, d[0]


def _centred_fbm_covariance(hurst: float, h: int, w: int) -> np.ndarray:
    """-P D P / E[V]: the covariance of the mean-removed fBm field, normalised to E[V] = 1."""
    d, _ = _fbm_distance_powers(hurst, h, w)
    cov = -(d - d.mean(0, keepdims=True) - d.mean(1, keepdims=True) + d.mean())  # -P D P
    cov /= np.trace(cov) / cov.shape[0]  # expected spatial variance 1
    return cov


def _pinned_fbm_covariance(hurst: float, h: int, w: int) -> np.ndarray:
    """K(s, t) = |s|^(2H) + |t|^(2H) - |s - t|^(2H), scaled to mean per-pixel variance 1."""
    d, d0 = _fbm_distance_powers(hurst, h, w)
    cov = d0[:, None] + d0[None, :] - d  # (n, n); row and column 0 are exactly 0
    cov /= np.trace(cov) / cov.shape[0]  # E[(1/n) sum_i B_i^2] = 1
    return cov


def _psd_factor(cov: np.ndarray, what: str) -> np.ndarray:
    """F = sqrt(Lambda) U^T with F^T F = cov; raises if cov has an eigenvalue below rounding."""
    eig, vecs = np.linalg.eigh(cov)
    if eig.min() < -_EIG_TOL * eig.max():
        ratio = eig.min() / eig.max()
        raise ValueError(f"{what} is not positive semi-definite: smallest eigenvalue / largest = {ratio:.3e}")
    return (vecs * np.sqrt(np.clip(eig, 0.0, None))).T


@lru_cache(maxsize=64)
def dense_factor(hurst: float, h: int, w: int, *, anchor: str = "mean") -> np.ndarray:
    """(m, n) factor F with F^T F = the normalised covariance of an fBm field under `anchor`.

    "mean" (m = n): for a field with variogram 2 r^(2H), the covariance after spatial-mean
    removal is C = -P D P with D_ij = |x_i - x_j|^(2H) and P the centring matrix (no anchoring
    point, no embedding: this is the exact law on the grid); E[V] = trace(C) / n, so C / E[V]
    is the normalised covariance. "corner" (m = n - 1): the covariance K of the surface pinned
    at B(0, 0) = 0, divided by trace(K) / n; only the other n - 1 points are factored, so
    column 0 of F is exactly 0. F = sqrt(Lambda) U^T from the eigendecomposition, and z @ F
    with z ~ N(0, I_m) has exactly that covariance.

    Raises:
        ValueError: if the covariance has an eigenvalue below float rounding (it never should).
    """
    hurst = check_hurst(hurst)
    _check_shape((h, w))
    anchor = _check_anchor(anchor)
    what = f"fBm covariance (anchor {anchor!r}) for hurst={hurst}, size=({h}, {w})"
    if anchor == "mean":
        return _psd_factor(_centred_fbm_covariance(hurst, h, w), what)
    cov = _pinned_fbm_covariance(hurst, h, w)
    factor = np.zeros((cov.shape[0] - 1, cov.shape[0]))
    factor[:, 1:] = _psd_factor(cov[1:, 1:], what)  # (n-1, n-1) into (n-1, n), column 0 stays 0
    return factor


@lru_cache(maxsize=64)
def _dense_tensor(hurst: float, h: int, w: int, anchor: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(dense_factor(hurst, h, w, anchor=anchor), dtype=dtype, device=device)


def _dense_fbm(shape, hurst, anchor, generator, device, dtype) -> torch.Tensor:
    *batch, h, w = shape
    n = math.prod(batch)
    work = _work_dtype(dtype)
    factor = _dense_tensor(hurst, h, w, anchor, device, work)  # (m, h*w)
    z = torch.randn((n, factor.shape[0]), generator=generator, device=device, dtype=work)
    return (z @ factor).reshape(shape).to(dtype)  # (n, m) @ (m, h*w) -> (..., h, w)


# ------------------------------------------------------ approximate spectral method


@lru_cache(maxsize=256)
def _spectral_setup(hurst: float, h: int, w: int) -> tuple[np.ndarray, tuple[int, int], float, float]:
    """sqrt of the |k|^-(2H+2) spectrum on a 2x padded torus, and the exact mean- and corner-anchor scales.

    Both scales come from the method's own variogram (that of the periodic field), not fBm's.
    """
    torus = (_nice_fft_size(2 * h), _nice_fft_size(2 * w))
    ky = np.fft.fftfreq(torus[0])[:, None]
    kx = np.fft.fftfreq(torus[1])[None, :]
    k2 = ky**2 + kx**2
    with np.errstate(divide="ignore"):
        power = np.where(k2 > 0, k2 ** (-(hurst + 1.0)), 0.0)  # |k|^-(2H+2), no DC
    power /= torus[0] * torus[1]
    # Covariance of the stationary (periodic) field, then its variogram on offsets.
    cov = np.fft.ifft2(power).real * (torus[0] * torus[1])

    def variogram(dy, dx):
        return 2.0 * (cov[0, 0] - cov[dy % torus[0], dx % torus[1]])

    evar = _expected_spatial_variance(variogram, h, w)
    pinned = _expected_pinned_second_moment(variogram, h, w)
    return np.sqrt(power), torus, 1.0 / math.sqrt(evar), 1.0 / math.sqrt(pinned)


@lru_cache(maxsize=256)
def _spectral_amplitude(hurst: float, h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(_spectral_setup(hurst, h, w)[0], dtype=dtype, device=device)


def _spectral_fbm(shape, hurst, anchor, generator, device, dtype) -> torch.Tensor:
    *batch, h, w = shape
    n = math.prod(batch)
    work = _work_dtype(dtype)
    _, _, scale, corner_scale = _spectral_setup(hurst, h, w)
    amp = _spectral_amplitude(hurst, h, w, device, work)
    fields = _circulant_fields(amp, n, h, w, generator, device, work)  # (n, h, w)
    return _anchored(fields, anchor, scale, corner_scale, pin=True).reshape(shape).to(dtype)


# ----------------------------------------------------------------- public samplers


@register_noise("fbm", uses_hurst=True)
def fractional_brownian_field(
    shape: Sequence[int],
    hurst: float,
    *,
    method: str = "exact",
    anchor: str = "mean",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Fractional Brownian surfaces over the last two dims; leading dims are independent samples.

    Args:
        shape: (..., H, W) with H, W >= 2.
        hurst: Hurst exponent, strictly inside (0, 1).
        method: "exact" (the faster exact algorithm for the size: "dense" up to
            `DENSE_MAX_POINTS` points, "stein" above), "stein" (Stein 2002 circulant
            embedding), "dense" (factor of the exact covariance) or "spectral" (approximate).
        anchor: "mean" (spatial mean removed) or "corner" (the surface pinned at
            B(0, 0) = 0, covariance ~ |s|^(2H) + |t|^(2H) - |s - t|^(2H)).
        generator: a torch.Generator on `device`, for reproducible draws.
        device, dtype: of the result (default: the generator's device, default dtype).

    Returns:
        A tensor of `shape`. anchor "mean": each field has zero spatial mean and expected
        spatial variance 1; "corner": B(0, 0) = 0 and E[(1/n) sum_i B_i^2] = 1.
    """
    shape = _check_shape(shape)
    hurst = check_hurst(hurst)
    METHOD_RULE.check(method, "method")
    anchor = _check_anchor(anchor)
    device, dtype = _resolve(device, dtype, generator)
    if math.prod(shape) == 0:
        return torch.empty(shape, device=device, dtype=dtype)
    if method == "exact":
        method = "dense" if shape[-1] * shape[-2] <= DENSE_MAX_POINTS else "stein"
    return _SAMPLERS[method](shape, hurst, anchor, generator, device, dtype)


_SAMPLERS = {"stein": _stein_fbm, "dense": _dense_fbm, "spectral": _spectral_fbm}


@register_noise("white", uses_hurst=False)
def white_field(
    shape: Sequence[int],
    hurst: float | None = None,
    *,
    anchor: str = "mean",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """White Gaussian noise, normalised like the fBm fields (the H-independent baseline).

    `hurst` is accepted for a uniform sampler signature and ignored. anchor "mean": zero
    spatial mean, expected spatial variance 1; "corner": i.i.d. N(0, 1), not centred.
    """
    shape = _check_shape(shape)
    anchor = _check_anchor(anchor)
    device, dtype = _resolve(device, dtype, generator)
    h, w = shape[-2:]
    # Variogram 2 off the diagonal: E[V] = 1 - 1/n after mean removal; variance 1 per pixel.
    scale = 1.0 / math.sqrt(1.0 - 1.0 / (h * w))
    work = _work_dtype(dtype)
    fields = torch.randn(shape, generator=generator, device=device, dtype=work)
    return _anchored(fields, anchor, scale, 1.0, pin=False).to(dtype)


@register_noise("stationary", uses_hurst=True)
def stationary_field(
    shape: Sequence[int],
    hurst: float,
    *,
    anchor: str = "mean",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Stationary fields with fBm's local roughness: the stationary part of Stein's embedding.

    The control for "edge-heavy" versus "rough": the same per-pixel variance everywhere
    (its own law, anchor "corner") and the variogram 2 r^(2H) - 2 c2 r^2 on the grid of
    `stein_embedding` (see the module docstring).

    Args:
        shape: (..., H, W) with H, W >= 2.
        hurst: Hurst exponent, strictly inside (0, 1): the local roughness.
        anchor: "mean" (zero spatial mean, expected spatial variance 1) or "corner" (not
            centred, variance 1 at every pixel).
        generator, device, dtype: as for `fractional_brownian_field`.
    """
    shape = _check_shape(shape)
    hurst = check_hurst(hurst)
    anchor = _check_anchor(anchor)
    device, dtype = _resolve(device, dtype, generator)
    if math.prod(shape) == 0:
        return torch.empty(shape, device=device, dtype=dtype)
    return _stein_stationary(shape, hurst, anchor, generator, device, dtype)


# ---------------------------------------------------------------------- statistics


def estimate_hurst(fields: torch.Tensor, max_lag: int | None = None) -> float:
    """Hurst exponent from the mean variogram: half the slope of log gamma(l) against log l.

    The variogram is averaged over all fields and over both axes, at lags 1..max_lag
    (default: a quarter of the smaller spatial size, at least 2).
    """
    if fields.dim() < 2:
        raise ValueError(f"`fields` must have shape (..., H, W), but got {tuple(fields.shape)}")
    h, w = fields.shape[-2:]
    max_lag = max_lag or max(2, min(h, w) // 4)
    if not 2 <= max_lag < min(h, w):
        raise ValueError(f"`2 <= max_lag < min(H, W)` must hold, but got max_lag={max_lag}, H={h}, W={w}")
    f = fields.detach().to(torch.float64)
    lags = np.arange(1, max_lag + 1)
    gamma = []
    for lag in lags:
        dx = (f[..., :, lag:] - f[..., :, :-lag]).pow(2).mean()
        dy = (f[..., lag:, :] - f[..., :-lag, :]).pow(2).mean()
        gamma.append(float((dx + dy) / 2))
    slope = np.polyfit(np.log(lags), np.log(gamma), 1)[0]
    return float(slope / 2.0)
