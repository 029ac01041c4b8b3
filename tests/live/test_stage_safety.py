"""The stage-safety invariant, proved with property-based tests.

Whatever the position, limits, lock, estimate or fault, every move the controller commands
is finite, at most ``max_step_um``, and inside the allowed range or towards it. The fake
microscope here obeys ANY target (as a careless adapter would), so only the controller's
own guarantee stands between a bad state and the objective.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _stage_fakes import ObedientMicroscope, Prediction, ScriptPredictor
from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.controller import (
    MOVED,
    MOVED_CLAMPED,
    OUTSIDE_LIMITS,
    STAGE_ERROR,
    ControllerSettings,
    FocusController,
)
from napari_zfocus.live.stage_safety import (
    distance_to_range,
    is_safe_move,
    safe_target,
    walkback_allowed,
)

# Positions far beyond any real drive, and the special floats a fault can produce.
FINITE = st.floats(-1e4, 1e4, allow_nan=False)
ANY_FLOAT = st.one_of(FINITE, st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -1e300]))
STEPS = st.floats(0.01, 50.0)


# -- the pure rule -------------------------------------------------------------------------


@given(current=FINITE, desired=ANY_FLOAT, lo=FINITE, width=st.floats(0, 500), step=STEPS)
def test_safe_target_is_always_a_safe_move(current, desired, lo, width, step):
    hi = lo + width
    target = safe_target(current, desired, lo, hi, step)
    if target is None:
        # No move only for a non-finite wish, or outside the range with a wish away from it.
        assert not math.isfinite(desired) or (
            (current < lo and desired <= current) or (current > hi and desired >= current)
        )
        return
    assert is_safe_move(current, target, lo, hi, step)


@given(current=FINITE, desired=FINITE, lo=FINITE, width=st.floats(0, 500), step=STEPS)
def test_safe_target_goes_as_far_as_allowed(current, desired, lo, width, step):
    """Not just safe but useful: inside the range a reachable wish is met exactly, and a
    stage outside is walked back a full step (or to the range) when the wish points there."""
    hi = lo + width
    target = safe_target(current, desired, lo, hi, step)
    if lo <= current <= hi and lo <= desired <= hi and abs(desired - current) <= step:
        assert target == desired
    if current < lo and desired >= lo:
        assert target is not None and math.isclose(
            target, min(current + step, desired, hi), rel_tol=0, abs_tol=1e-9
        )


@given(current=ANY_FLOAT, target=ANY_FLOAT, step=STEPS)
def test_non_finite_positions_are_never_safe(current, target, step):
    if not (math.isfinite(current) and math.isfinite(target)):
        assert not is_safe_move(current, target, -100, 100, step)
        assert safe_target(current, target, -100, 100, step) is None or math.isfinite(current)


def test_the_75_um_jump_of_the_old_controller_is_a_walk_back_now():
    # The focus knob turned 78 um past the travel window: the old code clipped the step to
    # 3 um and THEN the target to the window, landing 75 um away in one move.
    assert safe_target(178.0, 175.0, -100.0, 100.0, 3.0) == 175.0
    assert not is_safe_move(178.0, 100.0, -100.0, 100.0, 3.0)
    assert walkback_allowed(178.0, 175.0, -100.0, 100.0)
    assert not walkback_allowed(178.0, 179.0, -100.0, 100.0)
    assert not walkback_allowed(None, 175.0, -100.0, 100.0)
    assert distance_to_range(178.0, -100.0, 100.0) == 78.0


# -- the controller under random sequences of states, faults and settings ------------------


LIMITS = st.one_of(
    st.none(),
    st.tuples(st.floats(-9000, 9000), st.floats(-9000, 9000)).map(lambda t: (min(t), max(t) + 0.5)),
)
SETTINGS = st.builds(
    ControllerSettings,
    dead_band_um=st.floats(0, 5),
    gain=st.floats(0.05, 1.0),
    smoothing=st.floats(0, 0.95),
    max_step_um=STEPS,
    z_limits_um=LIMITS,
    max_travel_um=st.one_of(st.none(), st.floats(1, 200)),
    min_confidence=st.floats(0, 1),
    max_failures=st.integers(1, 10),
    max_busy_frames=st.integers(1, 5),
)
OPERATIONS = st.one_of(
    st.tuples(st.just("estimate"), ANY_FLOAT, st.one_of(st.floats(0, 1), st.just(math.nan)),
              st.booleans()),
    st.tuples(st.just("model_error")),
    st.tuples(st.just("knob"), FINITE),
    st.tuples(st.just("settings"), SETTINGS),
    st.tuples(st.just("corrupt_settings"), st.sampled_from(["max_step_um", "gain", "dead_band_um"]),
              st.sampled_from([math.nan, -1.0, math.inf, 0.0])),
    st.tuples(st.just("scope_limits"), st.tuples(ANY_FLOAT, ANY_FLOAT)),
    st.tuples(st.just("lock"), st.one_of(st.none(), ANY_FLOAT)),
    st.tuples(st.just("unlock")),
    st.tuples(st.just("resume")),
    st.tuples(st.just("get_z_fault"), st.sampled_from(["", "raise", "nan"])),
    st.tuples(st.just("move_fault"), st.booleans()),
    st.tuples(st.just("busy_fault"), st.sampled_from(["", "raise", "busy"])),
    st.tuples(st.just("snap_fault"), st.booleans()),
)


def _allowed_range(scope: ObedientMicroscope, s: ControllerSettings, lock_z: float | None):
    """The test's own computation of the range, independent of the controller's."""
    lo, hi = scope.z_limits_um
    if s.z_limits_um is not None:
        lo, hi = max(lo, s.z_limits_um[0]), min(hi, s.z_limits_um[1])
    if s.max_travel_um is not None and lock_z is not None:
        lo, hi = max(lo, lock_z - s.max_travel_um), min(hi, lock_z + s.max_travel_um)
    return lo, hi


def _apply(op, scope, predictor, controller, state) -> None:
    kind = op[0]
    if kind == "estimate":
        predictor.next = Prediction(op[1], op[2], op[3])
    elif kind == "model_error":
        predictor.next = RuntimeError("CUDA out of memory")
    elif kind == "knob":
        scope.z = op[1]  # the user turned the focus knob
    elif kind == "settings":
        controller.settings = op[1]
    elif kind == "corrupt_settings":
        setattr(controller.settings, op[1], op[2])  # a script edits a live setting
    elif kind == "scope_limits":
        scope.z_limits_um = op[1]
    elif kind == "lock":
        try:
            controller.lock(op[1])
            state["lock_z"] = scope.z
        except ZFocusError:
            pass
    elif kind == "unlock":
        controller.unlock()
    elif kind == "resume":
        controller.resume()
    else:
        setattr(scope, kind, op[1])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(initial=SETTINGS, start_z=FINITE, ops=st.lists(OPERATIONS, min_size=1, max_size=40))
def test_every_commanded_move_is_safe_whatever_happens(initial, start_z, ops):
    scope = ObedientMicroscope(z=start_z)
    predictor = ScriptPredictor()
    controller = FocusController(predictor, scope, initial)
    state: dict = {"lock_z": None}
    for op in ops:
        _apply(op, scope, predictor, controller, state)
        before = len(scope.commanded)
        s = controller.settings
        decision = controller.step()
        new = scope.commanded[before:]
        assert len(new) <= 1
        for current, target in new:
            lo, hi = _allowed_range(scope, s, state["lock_z"])
            assert is_safe_move(current, target, lo, hi, s.max_step_um), (
                current, target, (lo, hi), s.max_step_um, decision,
            )
        if not new:
            assert decision.move_um == 0.0
        assert math.isfinite(decision.move_um)
    assert controller.max_abs_move_um <= max(
        (abs(t - c) for c, t in scope.commanded), default=0.0
    ) + 1e-9


@settings(max_examples=100, deadline=None)
@given(start_z=FINITE, estimate=FINITE, fault=st.sampled_from(["raise", "nan"]))
def test_an_unreadable_stage_is_a_failure_and_never_a_target(start_z, estimate, fault):
    scope = ObedientMicroscope(z=start_z, z_limits_um=(-1e5, 1e5))
    predictor = ScriptPredictor()
    controller = FocusController(predictor, scope, ControllerSettings(max_failures=3))
    controller.lock(0.0)
    scope.get_z_fault = fault
    predictor.next = Prediction(estimate, 0.9, False)
    reasons = [controller.step().reason for _ in range(4)]
    assert scope.commanded == []
    assert reasons[0] == STAGE_ERROR or abs(estimate) <= 0.5
    if reasons[0] == STAGE_ERROR:
        assert controller.stopped


def test_stage_found_outside_the_travel_window_is_walked_back_one_step_per_frame():
    scope = ObedientMicroscope(z=0.0)
    predictor = ScriptPredictor()
    controller = FocusController(
        predictor, scope, ControllerSettings(max_step_um=3.0, max_travel_um=75.0)
    )
    controller.lock(0.0)
    scope.z = 150.0  # knob turned: 75 um past the window
    moves = []
    for _ in range(40):
        # The sample (at z = 0) says: go back down.
        predictor.next = Prediction(0.0 - scope.z, 0.9, False)
        moves.append(controller.step().move_um)
    assert max(abs(m) for m in moves) <= 3.0  # exact: no rounding slack
    assert moves[0] == -3.0
    assert scope.z <= 75.0  # walked back inside within 25 frames


def test_outside_the_limits_a_correction_away_from_them_is_held_with_a_reason():
    scope = ObedientMicroscope(z=0.0)
    predictor = ScriptPredictor()
    controller = FocusController(predictor, scope, ControllerSettings(z_limits_um=(10, 20)))
    controller.lock(0.0)
    predictor.next = Prediction(-5.0, 0.9, False)  # wants to go further down, away from 10..20
    d = controller.step()
    assert d.reason == OUTSIDE_LIMITS and d.move_um == 0.0 and "outside" in d.message
    assert scope.commanded == []
    predictor.next = Prediction(8.0, 0.9, False)  # wants up, towards the range: one step
    d = controller.step()
    assert d.reason in (MOVED, MOVED_CLAMPED) and d.move_um == 3.0
    assert "walking back" in d.message


def test_corrupted_settings_hold_instead_of_moving():
    scope = ObedientMicroscope(z=0.0)
    predictor = ScriptPredictor()
    controller = FocusController(predictor, scope)
    controller.lock(0.0)
    controller.settings.max_step_um = math.nan
    predictor.next = Prediction(10.0, 0.9, False)
    d = controller.step()
    assert d.reason == "invalid_settings" and "max step" in d.message
    assert scope.commanded == []


def test_lock_refused_when_the_stage_position_cannot_be_read():
    scope = ObedientMicroscope(get_z_fault="raise")
    controller = FocusController(ScriptPredictor(), scope)
    try:
        controller.lock(0.0)
    except ZFocusError as exc:
        assert "focus position" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("lock without a readable stage position must be refused")
    assert controller.locked_um is None


@settings(max_examples=500)
@given(current=FINITE, step=STEPS, far=st.sampled_from([-1e6, 1e6]))
def test_a_full_step_is_never_longer_than_the_max_step_not_even_by_rounding(current, step, far):
    # A hostile pass measured moves of 3.0000000000000036 um with a 3 um max step: the
    # controller computed current + 3 and the float sum rounded past it.
    target = safe_target(current, current + far, -1e5, 1e5, step)
    assert target is not None
    assert abs(target - current) <= step
    assert abs(target - current) > step - 1e-9  # and still (almost) a full step


def test_a_sum_that_rounds_past_the_step_is_backed_off():
    current, step = -146.95858455634698, 2.9
    assert (current + step) - current > step  # the naive target would move too far
    target = safe_target(current, 100.0, -200.0, 200.0, step)
    assert target is not None and 0 < target - current <= step


def test_a_vanishing_gain_holds_without_blaming_the_limits():
    scope = ObedientMicroscope(z=0.0)
    predictor = ScriptPredictor()
    controller = FocusController(predictor, scope, ControllerSettings(gain=1e-300))
    controller.lock(0.0)
    predictor.next = Prediction(5.0, 0.9, False)
    d = controller.step()
    assert d.action == "hold" and d.reason == "in_dead_band" and "below" in d.message
    assert scope.commanded == []
