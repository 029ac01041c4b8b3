"""Running a job generator to its end."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from napari_zfocus._generators import run_to_end


def _job(n: int) -> Generator[int, None, str]:
    yield from range(n)
    return f"done after {n}"


def test_events_reach_the_callback_in_order_and_the_result_is_returned() -> None:
    seen: list[int] = []
    assert run_to_end(_job(3), seen.append) == "done after 3"
    assert seen == [0, 1, 2]
    assert run_to_end(_job(2)) == "done after 2"  # no callback: events are dropped


def test_an_error_inside_the_job_reaches_the_caller() -> None:
    def failing() -> Generator[int, None, None]:
        yield 1
        raise ValueError("stack 2 is truncated")

    with pytest.raises(ValueError, match="truncated"):
        run_to_end(failing())
