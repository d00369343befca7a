"""Known answer for the attribution maps: a model that reads one frequency row only.

The logits of `RowReader` depend on x[:, 0, r, :] alone, so every correct attribution puts all
its mass on row r, whatever the input. The tests check Integrated Gradients, NoiseTunnel, the
figure's panels (`attribution_maps`) and what `attribution_figure` actually draws.
"""

from __future__ import annotations

import matplotlib.axes
import numpy as np
import pytest
import torch

from nsde.metrics.explain import attribution_figure, attribution_maps, integrated_gradients, noise_tunnel

S = 16  # image side
ROW = 5  # the row the model reads (not the middle, not an edge, not a multiple of a stride)


class RowReader(torch.nn.Module):
    """logits = V tanh(a * x[:, 0, row, :]) + c: a nonlinear model of one spectrogram row."""

    def __init__(self, row: int = ROW, side: int = S, classes: int = 3, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.row = row
        self.a = torch.nn.Parameter(1.0 + torch.rand(side, generator=gen))
        self.v = torch.nn.Parameter(torch.randn(classes, side, generator=gen))
        self.c = torch.nn.Parameter(torch.randn(classes, generator=gen))

    def forward(self, x):
        return torch.tanh(self.a * x[:, 0, self.row, :]) @ self.v.T + self.c


class TwoRows(torch.nn.Module):
    """Class 0 reads row `rows[0]`, class 1 reads row `rows[1]`: the map must follow the target."""

    def __init__(self, rows=(3, 11)):
        super().__init__()
        self.rows = rows
        self.w = torch.nn.Parameter(torch.ones(S))

    def forward(self, x):
        return torch.stack([x[:, 0, r, :] @ self.w for r in self.rows], dim=1)


def _x(n: int = 4, seed: int = 1) -> torch.Tensor:
    # Inputs in [0.2, 1] everywhere: every row differs from the zero baseline, so a map that
    # ignored the model (e.g. the input itself) would spread its mass over all rows.
    return 0.2 + 0.8 * torch.rand(n, 1, S, S, generator=torch.Generator().manual_seed(seed))


def _row_mass(maps: torch.Tensor | np.ndarray) -> np.ndarray:
    """(N, S) share of each example's L1 attribution mass in each row."""
    a = np.abs(np.asarray(maps, dtype=np.float64)).reshape(len(maps), S, S)
    return a.sum(2) / a.sum((1, 2))[:, None]


def _assert_on_row(maps, row: int, share: float = 0.95) -> None:
    mass = _row_mass(maps)
    assert np.all(mass[:, row] > share), f"mass on row {row}: {mass[:, row]}"
    assert np.all(mass.argmax(1) == row), f"rows ranked first: {mass.argmax(1)}"


def test_integrated_gradients_put_the_mass_on_the_row_the_model_reads():
    model, x = RowReader(), _x()
    ig = integrated_gradients(model, x, steps=16).detach()
    assert ig.shape == x.shape
    _assert_on_row(ig, ROW)
    # Completeness: the attributions add up to f(x) - f(0) for the predicted class.
    with torch.no_grad():
        pred = model(x).argmax(-1)
        gap = (model(x) - model(torch.zeros_like(x))).gather(1, pred[:, None])[:, 0]
    assert ig.flatten(1).sum(1) == pytest.approx(gap.tolist(), rel=1e-2, abs=1e-3)


def test_noise_tunnel_puts_the_mass_on_the_row_the_model_reads():
    model, x = RowReader(), _x()
    # stdev 0.1: noise on every pixel, yet only row r may receive attribution.
    nt = noise_tunnel(model, x, steps=8, samples=4, stdev=0.1).detach()
    _assert_on_row(nt, ROW)


def test_attributions_follow_the_target_class():
    model, x = TwoRows(), _x(2)
    for cls, row in enumerate(model.rows):
        target = torch.full((len(x),), cls)
        _assert_on_row(integrated_gradients(model, x, target, steps=8).detach(), row)
        _assert_on_row(noise_tunnel(model, x, target, steps=4, samples=2).detach(), row)
    # Default target: the predicted class. Row 11 brighter than row 3 -> class 1 -> row 11.
    x = _x(1)
    x[:, 0, 11, :] = 1.0
    x[:, 0, 3, :] = 0.2
    _assert_on_row(integrated_gradients(model, x, steps=8).detach(), 11)


def test_figure_panels_are_brightest_on_the_row_the_model_reads(tmp_path, monkeypatch):
    models = {"row": RowReader(), "other seed": RowReader(seed=3)}
    x = _x(3)
    panels = attribution_maps(models, x, ig_steps=8, nt_samples=2)
    assert list(panels) == ["row: IG", "row: NoiseTunnel", "other seed: IG", "other seed: NoiseTunnel"]
    for title, maps in panels.items():
        assert maps.shape == (len(x), S, S) and maps.min() >= 0 and maps.max() <= 1, title
        assert np.all(maps.sum(2).argmax(1) == ROW), title

    # What the figure draws: every attribution panel (not the input column) is brightest on row r.
    drawn = []
    imshow = matplotlib.axes.Axes.imshow

    def spy(self, data, *args, **kwargs):
        drawn.append((kwargs.get("cmap"), np.asarray(data, dtype=np.float64)))
        return imshow(self, data, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "imshow", spy)
    path = attribution_figure(models, x, tmp_path / "rows.png", ig_steps=8, nt_samples=2)
    assert path.exists() and path.stat().st_size > 1000
    maps = [a for cmap, a in drawn if cmap != "magma"]  # the input column uses "magma"
    assert len(maps) == len(x) * len(panels)
    for a in maps:
        assert a.shape == (S, S) and a.sum(1).argmax() == ROW
