"""The latest-frame pump: no queue, drops counted, commands run in the loop thread."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from _microscope_fakes import FakeMicroscope

from napari_zfocus.live.frame_loop import LatestSlot, LiveLoop
from napari_zfocus.live.microscope import Frame


class FakeScope(FakeMicroscope):
    """The controller tests' fake, counting snaps and recording the thread that snapped."""

    def __init__(self, n_max: int | None = None, fail_at: int | None = None) -> None:
        super().__init__()
        self.n = 0
        self.n_max = n_max
        self.fail_at = fail_at
        self.threads: set[int] = set()

    def snap(self) -> Frame:
        self.threads.add(threading.get_ident())
        if self.fail_at is not None and self.n == self.fail_at:
            raise RuntimeError("camera unplugged")
        self.n += 1
        # int64, not the camera's uint16: a fast machine passes 65,535 frames within the
        # test, and numpy 2 raises OverflowError on a counter that no longer fits.
        return Frame(np.full((4, 4), self.n, np.int64), time.perf_counter(), self.z)


def _run_in_thread(loop: LiveLoop) -> tuple[threading.Thread, list]:
    """Run the loop in a plain thread (as the napari worker would); collect its stats."""
    stats: list = []
    thread = threading.Thread(target=lambda: stats.extend(loop.run()), daemon=True)
    thread.start()
    return thread, stats


def test_slot_keeps_only_latest_and_counts_drops() -> None:
    slot: LatestSlot[int] = LatestSlot()
    assert slot.take() is None
    assert slot.put(1) is False
    assert slot.put(2) is True  # 1 was never taken: dropped
    assert slot.take() == 2
    assert slot.take() is None  # taking empties the slot
    slot.put(3)
    assert slot.take() == 3
    assert (slot.n_put, slot.n_taken, slot.n_dropped) == (3, 2, 1)


def test_loop_processes_frames_off_the_calling_thread_and_stops() -> None:
    scope = FakeScope()
    seen_threads: set[int] = set()

    def step(frame: Frame) -> float:
        seen_threads.add(threading.get_ident())
        return float(frame.image[0, 0])

    loop = LiveLoop(scope, step, stats_interval_s=0.05)
    thread, stats = _run_in_thread(loop)
    # Poll instead of a fixed sleep: the test must not depend on the machine's speed.
    deadline = time.monotonic() + 30
    while (loop.frames <= 10 or not stats) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert loop.running
    loop.stop()
    thread.join(30)
    assert not thread.is_alive()
    assert not loop.running
    assert loop.frames > 10
    assert threading.get_ident() not in seen_threads | scope.threads
    assert stats and stats[-1].fps > 0 and stats[-1].frames <= loop.frames
    # The consumer never took anything: all but the newest result were dropped, none queued.
    result = loop.slot.take()
    assert result is not None and result.seq == loop.frames - 1
    assert loop.slot.n_dropped == loop.frames - 1
    assert result.output == float(result.frame.image[0, 0])
    assert result.processing_s >= 0


def test_commands_run_in_loop_thread_between_frames() -> None:
    scope = FakeScope()
    loop = LiveLoop(scope, lambda f: f.stage_z_um, stats_interval_s=0.05)
    ran_in: list[int] = []

    def command() -> None:
        ran_in.append(threading.get_ident())
        scope.move_z_to(5.0)

    thread, _ = _run_in_thread(loop)
    while not loop.running:
        time.sleep(0.01)
    loop.submit(command)
    deadline = time.time() + 2
    while (r := loop.slot.take()) is None or r.output != 5.0:
        assert time.time() < deadline, "command never took effect"
        time.sleep(0.01)
    loop.stop()
    thread.join(30)
    assert ran_in == [thread.ident]


def test_submit_when_idle_runs_at_once() -> None:
    loop = LiveLoop(FakeScope(), lambda f: None)
    called: list[int] = []
    loop.submit(lambda: called.append(1))
    assert called == [1]


def test_step_error_ends_loop_and_propagates() -> None:
    loop = LiveLoop(FakeScope(fail_at=3), lambda f: None, stats_interval_s=0.01)
    with pytest.raises(RuntimeError, match="camera unplugged"):
        list(loop.run())
    assert not loop.running
    assert loop.frames == 3


def test_max_fps_caps_rate() -> None:
    loop = LiveLoop(FakeScope(), lambda f: None, max_fps=50, stats_interval_s=0.05)
    start = time.perf_counter()
    thread, _ = _run_in_thread(loop)
    deadline = time.monotonic() + 30
    while loop.frames < 11 and time.monotonic() < deadline:
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    loop.stop()
    thread.join(5)
    # Only the cap is asserted: a busy machine may run slower, never faster than 50/s.
    assert loop.frames >= 11
    assert elapsed >= 0.9 * 10 / 50


def test_finite_stream_ends_loop() -> None:
    class Recorded(FakeScope):
        def stream(self, n):
            for _ in range(5):
                yield self.snap()

    loop = LiveLoop(Recorded(), lambda f: None)
    list(loop.run())
    assert loop.frames == 5 and not loop.running


def test_armed_loop_queues_commands_and_stop_before_start_finishes_it() -> None:
    scope = FakeScope()
    loop = LiveLoop(scope, lambda f: None)
    loop.arm()
    ran: list[int] = []
    loop.submit(lambda: ran.append(1))
    assert ran == []  # queued for the loop thread, not run in the caller
    assert not loop.wait(0.01)
    loop.stop()  # the worker never got going: queued commands run now, in this thread
    assert ran == [1]
    assert loop.wait(0.01) and not loop.running
    assert list(loop.run()) == [] and scope.n == 0  # a late run() returns at once
    # A fresh run after that works normally and runs queued commands first.
    loop.arm()
    loop.submit(lambda: ran.append(2))
    thread, _ = _run_in_thread(loop)
    deadline = time.time() + 2
    while loop.frames < 3:
        assert time.time() < deadline
        time.sleep(0.01)
    loop.stop()
    thread.join(30)
    assert ran == [1, 2]


def test_drive_frames_polls_stop_runs_hooks_and_closes_the_source() -> None:
    from napari_zfocus.live.frame_loop import drive_frames

    closed: list[bool] = []
    calls: list[str] = []

    def source():
        try:
            for i in range(100):
                calls.append(f"grab {i}")
                yield i
        finally:
            closed.append(True)

    waits: list[float] = []
    results = drive_frames(
        source(), lambda i: 10 * i, should_stop=lambda: len(calls) >= 6,
        before_frame=lambda: calls.append("before"), period_s=60.0, wait=waits.append,
        first_seq=7,
    )
    got = [(r.seq, r.frame, r.output) for r in results]
    # stop is polled before the hook, the hook runs before each grab: 3 frames, then stop.
    assert got == [(7, 0, 0), (8, 1, 10), (9, 2, 20)]
    assert calls == ["before", "grab 0", "before", "grab 1", "before", "grab 2"]
    assert len(waits) == 3 and all(0 < w <= 60.0 for w in waits)  # paced to the period
    assert closed == [True]


def test_drive_frames_ends_with_a_finite_source_and_closes_on_break() -> None:
    from napari_zfocus.live.frame_loop import drive_frames

    assert [r.output for r in drive_frames(iter([None, None]), lambda f: "step")] == [
        "step", "step"]  # None is a frame ("the step snaps itself"), not the end
    closed: list[bool] = []

    def endless():
        try:
            while True:
                yield 1
        finally:
            closed.append(True)

    results = drive_frames(endless(), lambda f: f)
    for n, _ in enumerate(results, 1):
        if n == 3:
            break
    results.close()
    assert closed == [True]
