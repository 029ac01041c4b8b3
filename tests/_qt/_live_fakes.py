"""A perfect model for the live dock tests: it reads the simulated microscope's truth."""

from __future__ import annotations

import numpy as np

from napari_zfocus.live.simulated_microscope import SimulatedMicroscope

BINS = np.arange(-20.0, 21.0)


class TruthPrediction:
    def __init__(self, z: float) -> None:
        self.z_um = z
        self.z_argmax_um = float(np.clip(np.round(z), -20, 20))
        self.confidence = 0.9
        self.bimodal = False
        self.entropy = 0.5
        self.bin_centres_um = BINS
        p = np.exp(-0.5 * (BINS - z) ** 2)
        self.softmax = p / p.sum()


class TruthPredictor:
    """A perfect model: reads the simulated microscope's true defocus."""

    def __init__(self, scope: SimulatedMicroscope) -> None:
        self.scope = scope

    def predict(self, image: np.ndarray, pixel_size_um: float) -> TruthPrediction:
        return TruthPrediction(self.scope.true_defocus_um())
