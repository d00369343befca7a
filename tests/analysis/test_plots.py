"""analysis.plots: figures that show what they claim (checked on the drawn data, not pixels)."""

import numpy as np
import torch

from analysis import plots
from nsde.noise import estimate_hurst, fractional_brownian_field


def test_noise_surfaces_draw_one_fbm_field_per_hurst_exponent():
    fig = plots.noise_surfaces([0.8, 0.2, 0.2, 0.5], size=64, seed=1)  # duplicates drawn once, sorted
    images = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["H = 0.2", "H = 0.5", "H = 0.8"]
    estimates = [estimate_hurst(torch.as_tensor(np.asarray(img))[None]) for img in images]
    assert estimates == sorted(estimates)  # rough to smooth, as the titles say
    # one 64x64 field per panel: a noisy estimate, but H 0.2 and 0.8 are far apart
    assert estimates[0] < 0.35 and estimates[-1] > 0.55
    for h, img in zip((0.2, 0.5, 0.8), images):  # the noise the models inject, from the seed given
        field = fractional_brownian_field((64, 64), h, generator=torch.Generator().manual_seed(1))
        assert np.allclose(np.asarray(img), field.numpy())


def test_short_names():
    assert plots.short_name("noise/hurst") == "hurst"
    assert plots.short_name("clean_accuracy") == "clean acc."
    assert plots.short_name("abc_correct") == "abc"
