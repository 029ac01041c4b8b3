"""The frames of the acquisition dock's core: counted, and the newest shown as layers.

:class:`FrameCounter` listens to the core's MDA signals, which arrive on the acquisition
thread (psygnal) or queued on the GUI thread (Qt): it only counts and keeps a reference to
the newest frame of each channel, never touching a widget. :class:`FrameLayers` shows
those frames in the viewer (one image layer per channel, fluorescence blended over bright
field), paced by the dock's timer: for the dock's own simulated plate, whose frames no
other plugin displays (napari-micromanager shows its own core's).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np

__all__ = ["FrameCounter", "FrameLayers"]

#: The layers follow the acquisition at most this often (seconds).
LAYER_INTERVAL_S = 0.25
#: Layer names start with this, then the channel.
LAYER_PREFIX = "acquired"


class FrameCounter:
    """Image frames of the core's current (or last) acquisition and the newest per channel.

    Attributes
    ----------
    frames
        Frames of the current (or last) acquisition.
    latest
        Channel name -> the newest frame of that channel (a reference, not a copy).
    version
        Incremented with every frame: the display knows when there is something new.
    """

    def __init__(self) -> None:
        self.frames = 0
        self.version = 0
        self.latest: dict[str, Any] = {}

    def reset(self, *_: Any) -> None:
        self.frames = 0

    def add(self, image: Any = None, event: Any = None, *_: Any) -> None:
        self.frames += 1
        if image is not None:
            channel = getattr(getattr(event, "channel", None), "config", None) or "frame"
            self.latest[str(channel)] = image
            self.version += 1

    def connect(self, core: Any) -> Any:
        """Count ``core``'s acquisitions; returns the function that disconnects."""
        events = core.mda.events
        events.sequenceStarted.connect(self.reset)
        events.frameReady.connect(self.add)

        def disconnect() -> None:
            for signal, slot in ((events.sequenceStarted, self.reset),
                                 (events.frameReady, self.add)):
                with contextlib.suppress(Exception):
                    signal.disconnect(slot)

        return disconnect


class FrameLayers:
    """The newest frame of each channel as an image layer of ``viewer`` (GUI thread only).

    Parameters
    ----------
    viewer
        The napari viewer (None: nothing is shown).
    pixel_size_um
        Layer scale.
    """

    def __init__(self, viewer: Any, pixel_size_um: float) -> None:
        self.viewer = viewer
        self.scale = (pixel_size_um, pixel_size_um) if pixel_size_um > 0 else (1.0, 1.0)
        self.layers: dict[str, Any] = {}
        self._shown_version = 0
        self._last = -np.inf

    def update(self, counter: FrameCounter, *, force: bool = False) -> bool:
        """Show ``counter``'s newest frames when new and due (``force``: when new).

        Returns True when a layer changed.
        """
        now = time.perf_counter()
        if self.viewer is None or counter.version == self._shown_version:
            return False
        if now - self._last < LAYER_INTERVAL_S and not force:
            return False
        self._shown_version, self._last = counter.version, now
        for channel, image in list(counter.latest.items()):
            self._show(channel, np.array(image, copy=True))  # the camera may reuse its buffer
        return True

    def _show(self, channel: str, image: np.ndarray) -> None:
        layer = self.layers.get(channel)
        if layer is not None and layer in self.viewer.layers:
            layer.data = image
            layer.reset_contrast_limits()
            return
        fluorescence = not channel.upper().startswith(("BF", "BRIGHT", "DIC", "PHASE"))
        self.layers[channel] = self.viewer.add_image(
            image, name=f"{LAYER_PREFIX} {channel}", scale=self.scale,
            colormap="green" if fluorescence and self.layers else "gray",
            blending="additive" if fluorescence and self.layers else "translucent",
        )
