"""Running a job generator to its end.

Long jobs (an evaluation, a focus map, a rescale) are generators: they yield progress
events, so a worker can report them and a cancel flag can stop them between steps, and
they *return* their result. A caller that wants only the result (a script, the command
line without a progress bar) runs the generator to its end with :func:`run_to_end`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

__all__ = ["run_to_end"]

R = TypeVar("R")


def run_to_end(gen: Generator[Any, Any, R],
               on_event: Callable[[Any], object] | None = None) -> R:
    """Exhaust ``gen``, passing every event it yields to ``on_event``; return its result.

    Parameters
    ----------
    gen
        A generator that yields events and returns its result.
    on_event
        Called with each event, in order (None: events are dropped).
    """
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(event)
