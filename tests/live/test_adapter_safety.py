"""The stage-safety invariant on both microscope adapters (simulated and pymmcore-plus).

Each adapter is the last line of defence under the controller: it refuses non-finite
targets and targets outside its limits (except a walk back towards them), leaving the stage
where it was. And the controller driving each adapter through random estimates, knob turns
and limit changes only ever commands safe moves.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_zfocus.live.controller import ControllerSettings, FocusController
from napari_zfocus.live.drift import DriftSettings, ThermalDrift
from napari_zfocus.live.microscope import StageError
from napari_zfocus.live.scenes import PatternRenderer
from napari_zfocus.live.simulated_microscope import (
    SimClock,
    SimulatedMicroscope,
    SimulatedMicroscopeSettings,
)
from napari_zfocus.live.stage_safety import is_safe_move, walkback_allowed

SHAPE = (16, 16)
LIMITS = (-50.0, 50.0)
TARGETS = st.one_of(
    st.floats(-500, 500, allow_nan=False),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308]),
)
KNOB = st.floats(-150, 150, allow_nan=False)
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _simulated() -> SimulatedMicroscope:
    drift = ThermalDrift(DriftSettings(total_drift_um=0, wander_um=0, jump_rate_per_h=0))
    return SimulatedMicroscope(
        SimulatedMicroscopeSettings(shape=SHAPE, z_limits_um=LIMITS, stage_settle_s=0.0),
        drift=drift, renderer=PatternRenderer(SHAPE, n_cells=4), clock=SimClock(),
    )


class SimAdapter:
    """The simulated microscope, with a hand on its focus knob."""

    def __init__(self) -> None:
        self.scope = _simulated()

    def turn_knob(self, z: float) -> None:
        self.scope._z = z  # behind the software's back, as a person at the microscope would

    def close(self) -> None:
        self.scope.close()


class MMAdapter:
    """MMCoreMicroscope over a UniMMCore whose Python stage accepts a wider range than the
    adapter allows (as real drives do), so the adapter's own check is what is tested."""

    def __init__(self) -> None:
        from napari_zfocus.live.mmcore import (
            STAGE_LABEL,
            MMCoreMicroscope,
            make_simulated_mmcore,
        )

        self.core = make_simulated_mmcore(_simulated(), exposure_ms=0.0,
                                          z_limits_um=(-1000.0, 1000.0))
        self.label = STAGE_LABEL
        self.scope = MMCoreMicroscope(self.core, z_limits_um=LIMITS)

    def turn_knob(self, z: float) -> None:
        self.core.setPosition(self.label, z)

    def close(self) -> None:
        self.scope.close()
        self.core.unloadAllDevices()
        del self.core
        gc.collect()


@contextmanager
def adapter(kind: str) -> Iterator[Any]:
    if kind == "mmcore":
        pytest.importorskip("pymmcore_plus")
        made: Any = MMAdapter()
    else:
        made = SimAdapter()
    try:
        yield made
    finally:
        made.close()


@pytest.mark.parametrize("kind", ["simulated", "mmcore"])
def test_adapter_refuses_unsafe_targets_and_stays_put(kind):
    lo, hi = LIMITS
    with adapter(kind) as a:  # one adapter for all examples: a core takes a while to build

        @settings(max_examples=40, **SETTINGS)
        @given(requests=st.lists(st.tuples(KNOB, TARGETS), min_size=1, max_size=15))
        def check(requests):
            for knob, target in requests:
                a.turn_knob(knob)
                before = a.scope.get_z()
                try:
                    a.scope.move_z_to(target)
                except StageError as exc:
                    assert "focus" in str(exc)
                    assert a.scope.get_z() == before  # a refused move moves nothing
                    assert not (lo <= target <= hi)
                    assert not walkback_allowed(before, target, lo, hi)
                else:
                    after = a.scope.get_z()
                    assert math.isfinite(after) and after == pytest.approx(target)
                    assert lo <= after <= hi or walkback_allowed(before, after, lo, hi)

        check()


class ConstantPredictor:
    """Whatever the frame, this (possibly wrong) estimate."""

    def __init__(self) -> None:
        self.z_um = 0.0
        self.confidence = 0.9
        self.bimodal = False

    def predict(self, image: np.ndarray, pixel_size_um: float) -> ConstantPredictor:
        return self


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("estimate"), st.floats(-60, 60)),
        st.tuples(st.just("knob"), KNOB),
    ),
    min_size=1, max_size=20,
)


@pytest.mark.parametrize("kind", ["simulated", "mmcore"])
def test_controller_over_adapter_only_commands_safe_moves(kind):
    with adapter(kind) as a:
        sent: list[tuple[float, float]] = []
        real_move = a.scope.move_z_to

        def recording_move(z: float) -> None:
            sent.append((a.scope.get_z(), z))
            real_move(z)

        a.scope.move_z_to = recording_move

        @settings(max_examples=25, **SETTINGS)
        @given(
            max_step=st.floats(0.1, 10),
            travel=st.one_of(st.none(), st.floats(1, 100)),
            limits=st.one_of(st.none(),
                             st.tuples(KNOB, KNOB).map(lambda t: (min(t), max(t) + 1))),
            start=KNOB,
            ops=OPS,
        )
        def check(max_step, travel, limits, start, ops):
            sent.clear()
            a.turn_knob(start)
            predictor = ConstantPredictor()
            controller = FocusController(predictor, a.scope, ControllerSettings(
                max_step_um=max_step, max_travel_um=travel, z_limits_um=limits,
                dead_band_um=0.2,
            ))
            controller.lock(0.0)
            lock_z = a.scope.get_z()
            for kind_of_op, value in ops:
                if kind_of_op == "knob":
                    a.turn_knob(value)
                else:
                    predictor.z_um = value
                controller.step()
            lo, hi = LIMITS
            if limits is not None:
                lo, hi = max(lo, limits[0]), min(hi, limits[1])
            if travel is not None:
                lo, hi = max(lo, lock_z - travel), min(hi, lock_z + travel)
            for current, target in sent:
                assert is_safe_move(current, target, lo, hi, max_step), (current, target, lo, hi)

        check()
