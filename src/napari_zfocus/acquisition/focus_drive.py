"""The microscope as one refocus sees it: counted frames, timed camera and stage, safe walks.

:class:`FrameCounter` wraps any :class:`~napari_zfocus.live.microscope.Microscope` so a
refocus can report what it cost (frames, camera and settling time, its largest move);
:func:`walk_to` moves it in steps that each obey the stage-safety rule; and
:func:`torch_threads` runs a model's reading of one frame on few CPU threads.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from napari_zfocus.live.microscope import Frame, Microscope, StageError
from napari_zfocus.live.stage_safety import safe_target

#: Seconds a stage may stay busy after a move before the refocus gives up on it.
SETTLE_TIMEOUT_S = 10.0


class FrameCounter:
    """A microscope seen through a refocus: counts its frames and times camera and stage.

    Wraps any :class:`~napari_zfocus.live.microscope.Microscope` and forwards to it.
    """

    def __init__(self, microscope: Microscope) -> None:
        self.inner = microscope
        self.pixel_size_um = float(microscope.pixel_size_um)
        self.z_limits_um = microscope.z_limits_um
        self.frames = 0
        self.camera_s = 0.0
        self.settle_s = 0.0
        self.max_move_um = 0.0
        self.moved_um = 0.0

    def reset(self) -> None:
        """Start counting a new refocus."""
        self.frames = 0
        self.camera_s = self.settle_s = self.max_move_um = self.moved_um = 0.0

    def snap(self) -> Frame:
        t0 = time.perf_counter()
        try:
            return self.inner.snap()
        finally:
            self.frames += 1  # a failed frame still cost light
            self.camera_s += time.perf_counter() - t0

    def get_z(self) -> float:
        return float(self.inner.get_z())

    def move_z_to(self, z_um: float) -> None:
        before = self.get_z()
        self.inner.move_z_to(z_um)
        self.max_move_um = max(self.max_move_um, abs(z_um - before))
        self.moved_um += z_um - before
        self.wait_idle()

    def move_z_by(self, dz_um: float) -> None:
        self.move_z_to(self.get_z() + dz_um)

    def is_busy(self) -> bool:
        return bool(self.inner.is_busy())

    def wait_idle(self, timeout_s: float = SETTLE_TIMEOUT_S) -> None:
        """Wait until the focus drive is no longer busy (timed as settling)."""
        t0 = time.perf_counter()
        try:
            while self.inner.is_busy():
                if time.perf_counter() - t0 > timeout_s:
                    raise StageError(f"focus drive still busy after {timeout_s:g} s")
                time.sleep(0.001)
        finally:
            self.settle_s += time.perf_counter() - t0

    def close(self) -> None:
        """Nothing to release: the microscope belongs to the caller."""


def walk_to(
    stage: FrameCounter, target_um: float, limits: tuple[float, float], max_step_um: float
) -> float:
    """Move towards ``target_um`` in safe steps (each at most ``max_step_um``, inside or
    towards ``limits``); returns where the stage ended (the target, or the nearest reachable
    z). Raises :class:`StageError` when the drive fails."""
    lo, hi = limits
    current = stage.get_z()
    for _ in range(10_000):  # far more than any range / step: a guard, not a limit
        step = safe_target(current, target_um, lo, hi, max_step_um)
        if step is None or step == current:
            return current
        stage.move_z_to(step)
        current = stage.get_z()
        if abs(current - target_um) < 1e-9:
            return current
    return current


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Torch's CPU threads set to ``n`` inside the block (nothing when ``n`` is None or
    torch is not loaded: a model that is not torch is not touched)."""
    torch = sys.modules.get("torch")
    if n is None or torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)



__all__ = ["SETTLE_TIMEOUT_S", "FrameCounter", "torch_threads", "walk_to"]
