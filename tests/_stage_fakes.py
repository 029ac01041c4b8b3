"""Fakes for the stage-safety property tests (shared by tests/control and tests/_qt)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from napari_zfocus.live.microscope import CameraError, Frame, StageError


@dataclass
class Prediction:
    z_um: float
    confidence: float
    bimodal: bool


@dataclass
class ObedientMicroscope:
    """Moves wherever it is told (no limit check): the controller alone must be safe.

    Faults are armed by the test: ``get_z_fault`` ("raise" / "nan"), ``move_fault``,
    ``busy_fault``, ``snap_fault``; ``knob`` moves the stage behind the controller's back.
    """

    z: float = 0.0
    z_limits_um: tuple[float, float] = (-200.0, 200.0)
    pixel_size_um: float = 0.24
    get_z_fault: str = ""
    move_fault: bool = False
    busy_fault: str = ""
    snap_fault: bool = False
    commanded: list[tuple[float, float]] = field(default_factory=list)

    def snap(self) -> Frame:
        if self.snap_fault:
            raise CameraError("camera unplugged")
        image = np.arange(64, dtype=np.uint16).reshape(8, 8)
        return Frame(image, 0.0, self.z)

    def get_z(self) -> float:
        if self.get_z_fault == "raise":
            raise StageError("serial port timeout")
        if self.get_z_fault == "nan":
            return math.nan
        return self.z

    def move_z_to(self, z_um: float) -> None:
        self.commanded.append((self.z, z_um))
        if self.move_fault:
            raise StageError("stage refused")
        self.z = z_um

    def move_z_by(self, dz_um: float) -> None:
        self.move_z_to(self.z + dz_um)

    def is_busy(self) -> bool:
        if self.busy_fault == "raise":
            raise StageError("busy query failed")
        return self.busy_fault == "busy"

    def close(self) -> None:
        pass


class ScriptPredictor:
    def __init__(self) -> None:
        self.next: Prediction | Exception = Prediction(0.0, 0.9, False)

    def predict(self, image: np.ndarray, pixel_size_um: float) -> Prediction:
        if isinstance(self.next, Exception):
            raise self.next
        return self.next
