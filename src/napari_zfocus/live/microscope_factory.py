"""Where the live dock's microscope comes from: the demo simulation, a pymmcore-plus core,
or a Micro-Manager configuration file. Qt-free: the dock calls these in worker threads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from napari_zfocus.live.frame_loop import LiveLoop
from napari_zfocus.live.microscope import Microscope

__all__ = [
    "SIM_SPEED", "as_microscope", "close_after_loop", "default_simulated_microscope",
    "load_mm_config", "start_simulated_microscope",
]

#: The demo microscope runs its clock 60x real time: one simulated minute per second, so
#: the slow thermal drift of the paper (40 um in 24 h) is visible within minutes.
SIM_SPEED = 60.0


def default_simulated_microscope(speed: float = SIM_SPEED) -> Microscope:
    """The demo microscope: simulated sample drifting in (sped-up) real time.

    Slow (rendering the first plane cache takes seconds): call it in a worker thread.
    """
    from napari_zfocus.live.simulated_microscope import (
        ScaledClock,
        SimulatedMicroscope,
        SimulatedMicroscopeSettings,
    )

    settings = SimulatedMicroscopeSettings(background_render=True)
    return SimulatedMicroscope(settings, clock=ScaledClock(speed))


def as_microscope(obj: Any) -> Any:
    """Wrap a pymmcore-plus core in :class:`MMCoreMicroscope`; pass anything else through."""
    try:
        from pymmcore_plus import CMMCorePlus
    except ImportError:  # pymmcore-plus is optional
        return obj
    if isinstance(obj, CMMCorePlus):
        from napari_zfocus.live.mmcore import MMCoreMicroscope

        return MMCoreMicroscope(obj)
    return obj


def load_mm_config(path: str | Path) -> Microscope:
    """Load a Micro-Manager configuration into a new core and wrap it (slow: worker thread)."""
    from napari_zfocus.live.mmcore import MMCoreMicroscope, load_mmcore

    return MMCoreMicroscope(load_mmcore(str(path)))


def start_simulated_microscope(closing: threading.Event) -> Microscope | None:
    """Worker body: the demo microscope, or None (closed here) if ``closing`` got set.

    A dock that closes while the microscope starts sets ``closing``: nobody would use
    the microscope, and its render thread must not outlive the dock.
    """
    scope = default_simulated_microscope()
    if closing.is_set():
        scope.close()
        return None
    return scope


def close_after_loop(scope: Any, loops: Sequence[LiveLoop]) -> Callable[[], None]:
    """A callable that closes ``scope`` once, after the live loop streaming from it ended.

    The close is queued on the latest loop of ``loops`` (it runs in the loop thread once
    the stream is closed, or at once when the loop is not running); with no loop it runs
    at once. Holds no reference to any widget: it also runs at a dock's teardown.
    """
    done = threading.Event()

    def close() -> None:
        if done.is_set():
            return
        done.set()
        if loops:
            loops[-1].submit(scope.close)
        else:
            scope.close()

    return close
