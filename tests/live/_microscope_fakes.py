"""Small scripted fakes for the controller tests (a microscope and a predictor)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from napari_zfocus.live.microscope import CameraError, Frame, StageError, check_z_target


@dataclass
class FakePrediction:
    z_um: float
    confidence: float = 0.9
    bimodal: bool = False
    z_argmax_um: float = math.nan
    ood: bool = False
    ood_score: float = math.nan


class ScriptedPredictor:
    """Returns the predictions (or raises the exceptions) it was given, in order.

    With ``truth=True`` the estimate is the fake microscope's true defocus plus the
    scripted value (so moves change what the model sees).
    """

    def __init__(self, script: Iterable, microscope: FakeMicroscope | None = None) -> None:
        self.script = list(script)
        self.microscope = microscope
        self.calls = 0

    def predict(self, image: np.ndarray, pixel_size_um: float) -> FakePrediction:
        item = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        if isinstance(item, Exception):
            raise item
        if not isinstance(item, FakePrediction):
            item = FakePrediction(float(item))
        if self.microscope is not None:
            return FakePrediction(
                self.microscope.sample_z - self.microscope.z + item.z_um, item.confidence,
                item.bimodal,
            )
        return item


class FakeMicroscope:
    """A focus drive and a camera returning a random textured image.

    ``sample_z`` is where the sample is in focus; ``camera_errors`` / ``stage_errors``
    make the next N snaps / moves fail; ``busy_for`` keeps the stage busy N queries.
    """

    pixel_size_um = 0.24

    def __init__(self, z: float = 0.0, limits: tuple[float, float] = (-100.0, 100.0)) -> None:
        self.z = float(z)
        self.z_limits_um = limits
        self.sample_z = 0.0
        self.moves: list[float] = []
        self.camera_errors = 0
        self.stage_errors = 0
        self.busy_for = 0
        self.blank = False
        self.t = 0.0
        self.closed = False
        self._rng = np.random.default_rng(0)

    def snap(self) -> Frame:
        self.t += 1.0
        if self.camera_errors > 0:
            self.camera_errors -= 1
            raise CameraError("fake camera: timeout")
        if self.blank:
            image = np.full((16, 16), 100, np.uint16)
        else:
            image = self._rng.integers(90, 110, (16, 16)).astype(np.uint16)
        return Frame(image, self.t, self.z, {"true_defocus_um": self.sample_z - self.z})

    def get_z(self) -> float:
        return self.z

    def move_z_to(self, z_um: float) -> None:
        if self.stage_errors > 0:
            self.stage_errors -= 1
            raise StageError("fake stage: serial port timeout")
        self.z = check_z_target(z_um, self.z_limits_um, "fake stage")
        self.moves.append(self.z)

    def move_z_by(self, dz_um: float) -> None:
        self.move_z_to(self.z + dz_um)

    def is_busy(self) -> bool:
        if self.busy_for > 0:
            self.busy_for -= 1
            return True
        return False

    def close(self) -> None:
        self.closed = True
