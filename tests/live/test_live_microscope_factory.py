"""Where the live dock's microscope comes from, and closing one only after its loop ended."""

from __future__ import annotations

import threading

from _microscope_fakes import FakeMicroscope

from napari_zfocus.live.frame_loop import LiveLoop
from napari_zfocus.live.microscope_factory import as_microscope, close_after_loop


class ClosingScope(FakeMicroscope):
    def __init__(self) -> None:
        super().__init__(limits=(-50.0, 50.0))
        self.closed_in: list[str] = []

    def close(self) -> None:
        self.closed_in.append(threading.current_thread().name)


def test_close_after_loop_waits_for_the_running_loop_and_closes_once() -> None:
    scope = ClosingScope()
    loops: list[LiveLoop] = []
    close = close_after_loop(scope, loops)
    loop = LiveLoop(scope, lambda frame: None)
    loops.append(loop)
    thread = threading.Thread(target=lambda: list(loop.run()), name="loop")
    loop.arm()
    thread.start()
    close()  # queued: the loop still streams from the scope
    loop.stop()
    thread.join(timeout=30)
    assert scope.closed_in == ["loop"]  # closed in the loop thread, after its stream
    close()  # idempotent
    assert scope.closed_in == ["loop"]


def test_close_after_loop_without_a_loop_closes_at_once() -> None:
    scope = ClosingScope()
    close_after_loop(scope, [])()
    assert scope.closed_in == [threading.current_thread().name]


def test_anything_but_a_core_passes_through() -> None:
    scope = FakeMicroscope()
    assert as_microscope(scope) is scope
