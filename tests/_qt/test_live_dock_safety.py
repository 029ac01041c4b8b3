"""Stage safety through the live dock's settings: what a user can type cannot make a jump.

Before, narrowing the z limits in the dock so that they excluded the stage made the next
correction jump to the limits in one move (30 um measured, max step 3 um).
"""

from __future__ import annotations

import math

import pytest
from _live_fakes import TruthPredictor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _stage_fakes import ObedientMicroscope, Prediction, ScriptPredictor
from napari_zfocus._qt.live_widget import LiveAutofocusWidget
from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.controller import FocusController
from napari_zfocus.live.scenes import PatternRenderer
from napari_zfocus.live.simulated_microscope import (
    SimClock,
    SimulatedMicroscope,
    SimulatedMicroscopeSettings,
)
from napari_zfocus.live.stage_safety import is_safe_move


@pytest.fixture
def scope():
    s = SimulatedMicroscopeSettings(shape=(32, 32), start_z_um=0.0, plane_range_um=10.0,
                                    plane_step_um=0.5)
    m = SimulatedMicroscope(s, renderer=PatternRenderer((32, 32), n_cells=4), clock=SimClock())
    yield m
    m.close()


def test_narrowing_the_limits_in_the_dock_walks_the_stage_back(make_napari_viewer, qtbot, scope):
    viewer = make_napari_viewer()
    widget = LiveAutofocusWidget(viewer, microscope=scope, max_fps=200)
    widget.set_predictor(TruthPredictor(scope), "perfect model")
    widget.start_live()
    qtbot.waitUntil(lambda: widget.last_output is not None, timeout=30000)
    widget.max_step.setValue(3.0)
    # Limits far above the stage (at 0), then a lock that asks for a stage at +35 um.
    widget.z_max.setValue(40.0)
    widget.z_min.setValue(30.0)
    qtbot.waitUntil(
        lambda: widget.live.controller.settings.z_limits_um == (30.0, 40.0), timeout=30000
    )
    widget._submit(lambda live: live.lock(-35.0))
    widget.autofocus_box.setChecked(True)
    qtbot.waitUntil(lambda: scope.get_z() >= 30.0, timeout=30000)
    widget.stop_live()
    moves = [d.move_um for d in widget.live.controller.decisions if d.action == "move"]
    assert len(moves) >= 10  # 30 um in steps of at most 3 um
    assert max(abs(m) for m in moves) <= 3.0  # exact: no rounding slack
    assert widget.live.controller.max_abs_move_um <= 3.0


def test_any_settings_typed_in_the_dock_give_only_safe_moves(qtbot):
    widget = LiveAutofocusWidget(None, microscope=None)
    qtbot.addWidget(widget)

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        dead_band=st.floats(-1, 30), gain=st.floats(0, 2), max_step=st.floats(-1, 100),
        min_conf=st.floats(-1, 2), z_min=st.floats(-2e4, 2e4), z_max=st.floats(-2e4, 2e4),
        start_z=st.floats(-500, 500),
        estimates=st.lists(st.one_of(st.floats(-100, 100), st.just(math.nan)), min_size=1,
                           max_size=10),
    )
    def check(dead_band, gain, max_step, min_conf, z_min, z_max, start_z, estimates):
        for spin, value in ((widget.dead_band, dead_band), (widget.gain, gain),
                            (widget.max_step, max_step), (widget.min_conf, min_conf),
                            (widget.z_min, z_min), (widget.z_max, z_max)):
            spin.setValue(value)  # the spin box clamps to its range, as for a user
        try:
            chosen = widget.controller_settings()
        except ZFocusError as exc:
            assert "z limits" in str(exc)  # the only combination the fields can get wrong
            return
        stage = ObedientMicroscope(z=start_z)
        predictor = ScriptPredictor()
        controller = FocusController(predictor, stage, chosen)
        controller.lock(0.0)
        lo, hi = stage.z_limits_um
        lo, hi = max(lo, chosen.z_limits_um[0]), min(hi, chosen.z_limits_um[1])
        if chosen.max_travel_um is not None:
            lo = max(lo, start_z - chosen.max_travel_um)
            hi = min(hi, start_z + chosen.max_travel_um)
        for estimate in estimates:
            predictor.next = Prediction(estimate, 0.9, False)
            controller.step()
        for current, target in stage.commanded:
            assert is_safe_move(current, target, lo, hi, chosen.max_step_um)

    check()
