"""The microscope interface the live autofocus talks to, and the frame it returns.

Anything with a camera and a motorised focus drive can be driven by the
:class:`~napari_zfocus.live.controller.FocusController` if it offers the few methods
of :class:`Microscope`: the simulated microscope (the default everywhere), a
pymmcore-plus core (:mod:`napari_zfocus.live.mmcore`) or a user's own adapter.
Positions are in micrometres of the focus drive; larger z moves the focal plane UP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.stage_safety import usable_range, walkback_allowed


class MicroscopeError(ZFocusError):
    """The camera or the focus drive failed (a hardware or simulation fault)."""


class CameraError(MicroscopeError):
    """A frame could not be acquired."""


class StageError(MicroscopeError):
    """The focus drive refused a move, timed out or reported an error."""


@dataclass
class Frame:
    """One camera image and where the focus drive was when it was taken.

    Attributes
    ----------
    image
        2-D camera image (Y, X), usually uint16.
    timestamp_s
        Acquisition time in seconds on the microscope's clock (simulated or real).
    stage_z_um
        Focus drive position during the exposure, um.
    metadata
        Free-form extras. The simulated microscope adds ``"true_defocus_um"`` (sample z
        minus focal plane z), which lets tests and benchmarks score the controller.
    """

    image: np.ndarray
    timestamp_s: float
    stage_z_um: float
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Microscope(Protocol):
    """What the focus controller needs from a microscope.

    Implementations raise :class:`CameraError` when a frame cannot be had and
    :class:`StageError` when a move fails or would leave ``z_limits_um``.
    """

    pixel_size_um: float
    z_limits_um: tuple[float, float]

    def snap(self) -> Frame:
        """Acquire one frame."""
        ...

    def get_z(self) -> float:
        """Current focus drive position, um."""
        ...

    def move_z_to(self, z_um: float) -> None:
        """Start an absolute focus move (may return before the move ends; see ``is_busy``)."""
        ...

    def move_z_by(self, dz_um: float) -> None:
        """Start a relative focus move."""
        ...

    def is_busy(self) -> bool:
        """True while the focus drive is still moving or settling."""
        ...

    def close(self) -> None:
        """Stop acquisitions and release what this object started (idempotent)."""
        ...


def check_z_target(
    z_um: float, limits: tuple[float, float], where: str, current_um: float | None = None
) -> float:
    """Validate an absolute focus target against the drive limits (the adapters' safety net).

    Parameters
    ----------
    z_um
        Requested target, um.
    limits
        ``(low, high)`` of the drive, um.
    where
        Names the drive in the message.
    current_um
        The drive's position now. When it is outside ``limits`` (moved by hand), a target
        between it and the limits is accepted too, so the controller can walk the stage
        back one step at a time instead of leaving it stranded.

    Returns
    -------
    float
        The target.

    Raises
    ------
    StageError
        Target not a finite number, limits unusable, or target outside the limits (and
        not a walk back towards them).
    """
    try:
        z = float(z_um)
    except (TypeError, ValueError, OverflowError):
        raise StageError(f"{where}: focus target {z_um!r} is not a number") from None
    lo, hi = float(limits[0]), float(limits[1])
    if not np.isfinite(z):
        raise StageError(f"{where}: focus target {z_um!r} is not a finite number")
    if not usable_range(lo, hi):
        raise StageError(f"{where}: focus limits [{lo:g}, {hi:g}] um are not a usable range")
    if lo <= z <= hi or walkback_allowed(current_um, z, lo, hi):
        return z
    raise StageError(
        f"{where}: focus target {z:.3f} um is outside the limits [{lo:g}, {hi:g}] um"
    )


def stream_frames(
    microscope: Microscope, n: int | None = None, interval_s: float = 0.0
) -> Iterator[Frame]:
    """Yield frames from ``microscope``: its own ``stream(n)`` if it has one, else snaps.

    Parameters
    ----------
    microscope
        Any :class:`Microscope`.
    n
        Number of frames, or None for an endless stream (stop by breaking out).
    interval_s
        Wall-clock pause between snaps when the microscope has no ``stream``.
    """
    stream = getattr(microscope, "stream", None)
    if callable(stream):
        yield from stream(n)
        return
    count = 0
    while n is None or count < n:
        yield microscope.snap()
        count += 1
        if interval_s > 0:
            time.sleep(interval_s)
