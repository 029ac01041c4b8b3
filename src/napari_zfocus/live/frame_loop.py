"""The one frame loop of the live autofocus, and the latest-frame pump built on it.

Every stream of frames -- the headless simulated session, ``zfocus live --mm-config`` and
the live dock -- goes through :func:`drive_frames`: get a frame, run the step (the focus
controller) on it, hand the result to the caller to record, honour a stop or cancel
request, and pace to a frame period. A fix to any of these lands here, once.

The live dock must show frames at camera rate without ever building a queue: if the
display is slower than the camera, old results are *dropped*, never buffered, so what
the user sees is never stale and memory never grows. This module holds the Qt-free part:

* :class:`LatestSlot` -- a thread-safe single-value holder. The producer overwrites the
  value; the consumer takes it (and empties the slot). Overwriting an untaken value
  counts as a drop.
* :class:`LiveLoop` -- :func:`drive_frames` run by a worker thread: take a frame from the
  microscope, run a processing step on it (the focus controller: estimate + maybe move),
  put the result in the slot. Commands from other threads (lock, settings...) are queued
  with :meth:`LiveLoop.submit` and run *in the loop thread between frames*, so the
  controller is only ever touched by one thread. :meth:`LiveLoop.run` is a generator that
  yields :class:`LiveStats` a few times per second (cheap to forward to a GUI) and stops as
  soon as :meth:`LiveLoop.stop` is called.

The napari dock runs :meth:`LiveLoop.run` in a ``thread_worker`` and polls the slot with a
timer; tests and benchmarks drive it from a plain thread.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from napari_zfocus.live.microscope import Frame, Microscope, stream_frames

T = TypeVar("T")
F = TypeVar("F")  # what the frame source yields (a Frame; None where the step snaps)
R = TypeVar("R")

__all__ = ["LatestSlot", "LiveLoop", "LiveResult", "LiveStats", "drive_frames"]

#: Marks the end of a finite frame source (None is a valid item: "the step snaps itself").
_END: Any = object()


class LatestSlot(Generic[T]):
    """Thread-safe holder of the newest value only.

    Attributes
    ----------
    n_put, n_taken, n_dropped
        Values offered, values taken, and values overwritten before anyone took them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: T | None = None
        self._full = False
        self.n_put = 0
        self.n_taken = 0
        self.n_dropped = 0

    def put(self, value: T) -> bool:
        """Store ``value``, replacing any untaken one. Returns True if one was dropped."""
        with self._lock:
            dropped = self._full
            self._value = value
            self._full = True
            self.n_put += 1
            self.n_dropped += int(dropped)
            return dropped

    def take(self) -> T | None:
        """Return the newest value and empty the slot, or None if nothing new arrived."""
        with self._lock:
            if not self._full:
                return None
            value, self._value, self._full = self._value, None, False
            self.n_taken += 1
            return value

    def clear(self) -> None:
        """Forget any untaken value (e.g. when live view stops)."""
        with self._lock:
            self._value, self._full = None, False


@dataclass
class LiveResult(Generic[F]):
    """One processed frame, as handed to the caller (and, by :class:`LiveLoop`, the display).

    Attributes
    ----------
    seq
        Frame number since the loop started (0-based); gaps seen by the consumer are drops.
    frame
        The camera frame (whatever the frame source yielded).
    output
        Whatever the step function returned (the controller's decision).
    t_grab, t_done
        ``time.perf_counter()`` when the frame arrived and when processing finished.
    """

    seq: int
    frame: F
    output: Any
    t_grab: float
    t_done: float

    @property
    def processing_s(self) -> float:
        """Time from frame arrival to the end of processing."""
        return self.t_done - self.t_grab


def drive_frames(
    frames: Iterator[F],
    step: Callable[[F], R],
    *,
    should_stop: Callable[[], bool] | None = None,
    before_frame: Callable[[], object] | None = None,
    period_s: float = 0.0,
    wait: Callable[[float], object] = time.sleep,
    first_seq: int = 0,
) -> Generator[LiveResult[F], None, None]:
    """THE frame loop: get a frame, step on it, yield the result, stop when asked, pace.

    Parameters
    ----------
    frames
        The frame source; a finite one ends the loop when it runs out. It is closed when
        the loop ends for any reason (which stops a camera's continuous acquisition).
    step
        Called with each item of ``frames``; its return value becomes
        :attr:`LiveResult.output`. Exceptions (and the source's) end the loop and
        propagate to the caller.
    should_stop
        Polled before every frame; True ends the loop (stop button, cancel, Ctrl-C flag).
    before_frame
        Called before every frame, after ``should_stop`` (queued commands of the live dock).
    period_s
        Shortest time from one frame request to the next, wall-clock s (0: as fast as
        frames come). Pacing happens after the caller has handled the result.
    wait
        How to wait for the pacing (``time.sleep``; an ``Event.wait`` wakes on stop).
    first_seq
        :attr:`LiveResult.seq` of the first frame (a restarted loop keeps counting).

    Yields
    ------
    LiveResult
        One per frame, right after its step. The caller records it, and may break out of
        the loop (a safe stop, a frame limit): the source is closed then too.
    """
    seq = first_seq
    try:
        while should_stop is None or not should_stop():
            if before_frame is not None:
                before_frame()
            t_request = time.perf_counter()
            frame = next(frames, _END)
            if frame is _END:  # a finite source (a recorded stream, a session) ran out
                return
            t_frame = time.perf_counter()
            output = step(frame)
            yield LiveResult(seq, frame, output, t_frame, time.perf_counter())
            seq += 1
            if period_s > 0:
                left = period_s - (time.perf_counter() - t_request)
                if left > 0:
                    wait(left)
    finally:
        close = getattr(frames, "close", None)
        if callable(close):
            close()


@dataclass
class LiveStats:
    """Throughput of the loop, reported a few times per second.

    Attributes
    ----------
    frames
        Frames processed since the start.
    fps
        Frames processed per second over the last reporting window.
    processing_ms
        Mean grab-to-result time over the last window, ms.
    dropped
        Results overwritten in the slot before the consumer took them (since the start).
    elapsed_s
        Wall-clock time since the loop started.
    """

    frames: int
    fps: float
    processing_ms: float
    dropped: int
    elapsed_s: float


class _StatsWindow:
    """Frame rate and processing time over the last ``interval_s``, for :class:`LiveStats`."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.start = self.last_report = time.perf_counter()
        self.frames, self.busy_s = 0, 0.0

    def add(self, result: LiveResult[Any], total: int, dropped: int) -> LiveStats | None:
        """Count one result; a :class:`LiveStats` when the window is full, else None."""
        self.frames += 1
        self.busy_s += result.processing_s
        t = result.t_done
        if t - self.last_report < self.interval_s:
            return None
        stats = LiveStats(
            frames=total,
            fps=self.frames / (t - self.last_report),
            processing_ms=1e3 * self.busy_s / self.frames,
            dropped=dropped,
            elapsed_s=t - self.start,
        )
        self.last_report, self.frames, self.busy_s = t, 0, 0.0
        return stats


class LiveLoop:
    """Grab -> process -> latest-only hand-over, run by one worker thread.

    Parameters
    ----------
    microscope
        Frame source (its ``stream()`` if it has one, else repeated ``snap()``).
    step
        Called with each :class:`Frame` in the loop thread; its return value becomes
        :attr:`LiveResult.output`. Exceptions end the loop and propagate out of :meth:`run`.
    stats_interval_s
        How often :meth:`run` yields a :class:`LiveStats`.
    max_fps
        Optional cap on the frame rate (a simulated camera has no exposure time and would
        otherwise take every CPU cycle); None runs as fast as frames come.
    slot
        Where results go; a new :class:`LatestSlot` by default.
    """

    def __init__(
        self,
        microscope: Microscope,
        step: Callable[[Frame], Any],
        *,
        stats_interval_s: float = 0.5,
        max_fps: float | None = None,
        slot: LatestSlot[LiveResult] | None = None,
    ) -> None:
        self.microscope = microscope
        self.step = step
        self.stats_interval_s = float(stats_interval_s)
        self.max_fps = max_fps
        self.slot: LatestSlot[LiveResult] = slot if slot is not None else LatestSlot()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards _running and _commands
        self._commands: deque[Callable[[], Any]] = deque()
        self._running = False
        self._armed = False  # arm()ed, run() not entered yet
        self._skip_run = False  # stopped while armed: the coming run() returns at once
        self._finished = threading.Event()
        self._finished.set()  # not running counts as finished
        self.frames = 0

    @property
    def running(self) -> bool:
        """True while :meth:`run` is looping."""
        return self._running

    def stop(self) -> None:
        """Ask the loop to end after the current frame (thread-safe, idempotent).

        Stopping an armed loop whose :meth:`run` has not started yet finishes it at once
        (its worker may never start, e.g. when the application quits).
        """
        self._stop.set()
        with self._lock:
            if not self._armed:
                return
            self._armed = False
            self._running = False
            self._skip_run = True
            pending = list(self._commands)
            self._commands.clear()
        try:
            for command in pending:  # nothing else touches the step now: run them here
                command()
        finally:
            self._finished.set()

    def arm(self) -> None:
        """Count as running from now on, before :meth:`run` starts in its thread.

        Call it before handing :meth:`run` to a worker: commands submitted in between are
        then queued for the loop thread instead of running at once in the caller's.
        """
        with self._lock:
            if self._running:
                raise RuntimeError("this LiveLoop is already running")
            self._running = True
            self._armed = True
            self._skip_run = False
            self._stop.clear()
            self._finished.clear()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until :meth:`run` has ended (True) or ``timeout_s`` passed (False)."""
        return self._finished.wait(timeout_s)

    def submit(self, command: Callable[[], Any]) -> None:
        """Run ``command()`` in the loop thread before the next frame.

        When the loop is not running the command runs at once in the caller's thread
        (nothing else touches the controller then). Exceptions from a queued command end
        the loop like a failing step, so they reach the worker's error handler.
        """
        with self._lock:
            if self._running:
                self._commands.append(command)
                return
        command()

    def _drain_commands(self) -> None:
        while True:
            with self._lock:
                if not self._commands:
                    return
                command = self._commands.popleft()
            command()

    def run(self) -> Iterator[LiveStats]:
        """Loop until :meth:`stop`; yield :class:`LiveStats` every ``stats_interval_s``.

        The frame stream is closed on exit (normal, stop, or error), which stops a
        camera's continuous acquisition.
        """
        if not self._enter():
            return
        results = drive_frames(
            stream_frames(self.microscope),
            self.step,
            should_stop=self._stop.is_set,
            before_frame=self._drain_commands,
            period_s=1.0 / self.max_fps if self.max_fps else 0.0,
            wait=self._stop.wait,  # sleeps in a way stop() cuts short
            first_seq=self.frames,
        )
        window = _StatsWindow(self.stats_interval_s)
        try:
            for result in results:
                self.slot.put(result)
                self.frames += 1
                stats = window.add(result, self.frames, self.slot.n_dropped)
                if stats is not None:
                    yield stats
        finally:
            try:
                results.close()  # closes the frame stream
            finally:
                self._leave()

    def _enter(self) -> bool:
        """Mark the loop running; False when a stop() before the start cancelled this run."""
        with self._lock:
            if self._skip_run:  # stopped before this thread got going
                self._skip_run = False
                return False
            if self._running and not self._armed:
                raise RuntimeError("this LiveLoop is already running")
            if not self._armed:
                self._stop.clear()  # a fresh (re)start
            self._running = True
            self._armed = False
            self._finished.clear()
        return True

    def _leave(self) -> None:
        """Mark the loop ended; commands that arrived during the last frame still run."""
        try:
            with self._lock:
                self._running = False
                pending = list(self._commands)
                self._commands.clear()
            for command in pending:  # e.g. "unlock"
                command()
        finally:
            self._finished.set()
