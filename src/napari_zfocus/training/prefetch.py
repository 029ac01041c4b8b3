"""Batches prepared in a background thread while the network computes."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Prefetcher"]


class Prefetcher:
    """Prepares the batch of step k+1 in a background thread while step k computes.

    Batches are a pure function of the step number, so prefetching never changes results.
    """

    def __init__(self, make: Callable[[int], Any], first_step: int, enabled: bool) -> None:
        self._make = make
        self._next = first_step
        self._enabled = enabled
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if enabled:
            self._thread = threading.Thread(target=self._run, name="zfocus-prefetch", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        step = self._next
        while not self._stop.is_set():
            item: tuple[int, Any, BaseException | None]
            try:
                item = (step, self._make(step), None)
            except BaseException as exc:  # noqa: BLE001 - hand any error to the training thread
                item = (step, None, exc)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[2] is not None:
                return
            step += 1

    def get(self, step: int) -> Any:
        """The batch of ``step`` (steps must be requested in order)."""
        if not self._enabled:
            return self._make(step)
        got, batch, exc = self._queue.get()
        if exc is not None:
            raise exc
        assert got == step, f"prefetcher out of order: {got} != {step}"
        return batch

    def close(self) -> None:
        """Stop the background thread (waits at most 5 s for it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
