"""The harmonic-signals spectrogram data set: synthetic stand-in, recordings loader, cache, splits."""

from nsde.data.dataset import (
    PRESET_RULE,
    PRESETS,
    SPLITS,
    DataConfig,
    SpectrogramData,
    Split,
    data_config_from_dict,
    load,
    prepare,
)
from nsde.data.snr import SNR_LEVELS_DB, snr_spectrograms, split_waveforms
from nsde.data.spectrogram import SpectrogramConfig, row_frequencies, spectrogram
from nsde.data.synthetic import (
    CLASS_NAMES,
    LOCATIONS,
    MUXES,
    REALISM,
    WAVEFORMS,
    SynthConfig,
    synthesize,
    synthetic_class_names,
)

__all__ = [
    "CLASS_NAMES",
    "LOCATIONS",
    "MUXES",
    "REALISM",
    "WAVEFORMS",
    "PRESETS",
    "PRESET_RULE",
    "SNR_LEVELS_DB",
    "SPLITS",
    "DataConfig",
    "SpectrogramConfig",
    "SpectrogramData",
    "Split",
    "SynthConfig",
    "data_config_from_dict",
    "load",
    "prepare",
    "row_frequencies",
    "snr_spectrograms",
    "spectrogram",
    "split_waveforms",
    "synthesize",
    "synthetic_class_names",
]
