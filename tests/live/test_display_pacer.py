"""The display pacer keeps the GUI thread inside its CPU budget (no Qt needed)."""

from __future__ import annotations

import pytest

from napari_zfocus.live.display_pacer import DisplayPacer


def show_frames(pacer: DisplayPacer, cost_s: float, n: int, t0: float = 0.0) -> float:
    """Show ``n`` frames as soon as allowed, each costing ``cost_s`` of GUI CPU."""
    wall, cpu = t0, 0.0
    for _ in range(n):
        while not pacer.due(wall):
            wall += 0.001  # the poll timer ticking
        pacer.shown(wall, cpu)
        cpu += cost_s
    return wall


def test_cheap_frames_are_shown_at_the_maximum_rate() -> None:
    pacer = DisplayPacer(budget=0.2, max_rate_hz=60.0)
    show_frames(pacer, cost_s=0.001, n=20)
    assert pacer.rate_hz == pytest.approx(60.0)


def test_expensive_frames_are_spaced_to_the_budget() -> None:
    pacer = DisplayPacer(budget=0.2, max_rate_hz=60.0, min_rate_hz=1.0)
    start = 10.0
    end = show_frames(pacer, cost_s=0.05, n=60, t0=start)
    # 50 ms per frame at 20 % of a core: one frame every 250 ms.
    assert pacer.interval_s == pytest.approx(0.25, rel=0.02)
    gui_cpu_share = 59 * 0.05 / (end - start)
    assert gui_cpu_share < 0.25


def test_rate_never_drops_below_the_minimum() -> None:
    pacer = DisplayPacer(budget=0.2, min_rate_hz=2.0)
    show_frames(pacer, cost_s=1.0, n=10)
    assert pacer.rate_hz == pytest.approx(2.0)


def test_rate_recovers_when_frames_get_cheap_again() -> None:
    pacer = DisplayPacer(budget=0.2, max_rate_hz=50.0)
    show_frames(pacer, cost_s=0.1, n=10)
    slow = pacer.rate_hz
    show_frames(pacer, cost_s=0.001, n=40, t0=100.0)
    assert slow < 3.0
    assert pacer.rate_hz == pytest.approx(50.0)


def test_due_and_reset() -> None:
    pacer = DisplayPacer(budget=0.5, max_rate_hz=10.0)
    assert pacer.due(0.0)
    pacer.shown(0.0, 0.0)
    assert not pacer.due(0.05)
    assert pacer.due(0.1)
    pacer.shown(0.1, 0.2)  # 200 ms of GUI CPU for one frame: 0.4 s apart at 50 %
    assert not pacer.due(0.4)
    assert pacer.due(0.5)
    pacer.reset()
    assert pacer.due(0.0) and pacer.cost_s == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"budget": 0.0}, {"budget": 1.5}, {"min_rate_hz": 0.0}, {"min_rate_hz": 70.0},
        {"smoothing": 0.0},
    ],
)
def test_bad_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        DisplayPacer(**kwargs)
