"""The z-scan autofocus baseline: accuracy on the simulator, frame budget, limits, faults."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from napari_zfocus.acquisition.scan_focus import (
    ATTEMPTS_PER_Z,
    PEAK_TOLERANCE,
    SCAN_SCORES,
    SHARPNESS_SCORE,
    ScanSettings,
    image_score,
    scan_focus,
)
from napari_zfocus.annotation.focus_scores import FOCUS_SCORES
from napari_zfocus.annotation.suggestion import deepest_dip
from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.drift import DriftSettings, ThermalDrift
from napari_zfocus.live.microscope import CameraError
from napari_zfocus.live.simulated_microscope import (
    SimClock,
    SimulatedMicroscope,
    SimulatedMicroscopeSettings,
)
from napari_zfocus.simulation.camera import CameraParams, apply_camera


@pytest.fixture(scope="module")
def scope():
    """64 x 64 px of the bright-field simulator, in focus at stage z = 0, no drift.

    Module scope: the plane cache is rendered once for all tests (the clock moves by one
    exposure per frame, far from the next scene update).
    """
    drift = ThermalDrift(DriftSettings(total_drift_um=0, wander_um=0, jump_rate_per_h=0))
    with SimulatedMicroscope(
        SimulatedMicroscopeSettings(shape=(64, 64)), drift=drift, clock=SimClock(), seed=1
    ) as sim:
        yield sim


def _snap(sim: SimulatedMicroscope):
    def snap_at(z_um: float) -> np.ndarray:
        sim.move_z_to(z_um)
        return sim.snap().image

    return snap_at


@pytest.mark.parametrize("start", [-8.0, -5.3, -1.7, 0.0, 2.9, 6.1, 8.0])
def test_finds_the_contrast_dip_from_starts_8_um_either_side(scope, start):
    result = scan_focus(_snap(scope), start, ScanSettings())
    assert result.ok, result.message
    assert abs(result.best_z_um) <= 0.5  # the simulator's focus is at z = 0
    assert 10 <= result.frames <= 20
    assert result.frames == len(result.z_um) == len(result.scores)
    assert result.failed == 0


def test_sharpness_finds_the_sharpness_maximum(scope):
    """The classic score is maximised correctly, and lies off focus in bright-field."""
    snap_at = _snap(scope)
    result = scan_focus(snap_at, -2.0, ScanSettings(score="sharpness"))
    assert result.ok, result.message
    score = FOCUS_SCORES[SHARPNESS_SCORE]
    fine_z = np.arange(-6.0, 6.01, 0.25)
    fine = [np.mean([score(snap_at(z)) for _ in range(2)]) for z in fine_z]
    assert abs(result.best_z_um - fine_z[int(np.argmax(fine))]) <= 0.5
    assert abs(result.best_z_um) >= 1.0  # one of the contrast peaks beside focus


def test_tolerates_failing_snaps(scope):
    calls = 0
    snap = _snap(scope)

    def flaky(z_um: float) -> np.ndarray:
        nonlocal calls
        calls += 1
        if calls % 4 == 0:
            raise CameraError("camera timed out")
        if calls % 7 == 0:
            return np.full((64, 64), np.nan)  # a corrupted frame
        return snap(z_um)

    result = scan_focus(flaky, 3.0, ScanSettings())
    assert result.ok, result.message
    assert abs(result.best_z_um) <= 0.5
    assert result.failed >= 3
    assert calls == result.frames <= 25
    assert len(result.z_um) == result.frames - result.failed


def test_all_snaps_failing_is_a_failed_scan_not_an_exception():
    def broken(z_um: float) -> np.ndarray:
        raise CameraError("no camera")

    result = scan_focus(broken, 0.0, ScanSettings())
    assert not result.ok and math.isnan(result.best_z_um)
    assert "0 of 11 coarse frames succeeded" in result.message
    assert "CameraError: no camera" in result.message
    # Each failed coarse frame is retried once (the refinement's 2 frames stay reserved).
    assert result.frames == result.failed == 11 * ATTEMPTS_PER_Z <= 25 - 2


@pytest.mark.parametrize("score", ["contrast_dip", "sharpness"])
@pytest.mark.parametrize("noisy", [False, True])
def test_blank_field_fails_with_a_message(score, noisy):
    rng = np.random.default_rng(0)
    plane = np.ones((64, 64), np.float32)

    def blank(z_um: float) -> np.ndarray:
        return apply_camera(plane, CameraParams(), rng) if noisy else np.full((64, 64), 500.0)

    result = scan_focus(blank, 0.0, ScanSettings(score=score))
    assert not result.ok and math.isnan(result.best_z_um)
    assert result.message.startswith("flat field")
    assert result.frames == 11  # no refinement frames spent on nothing


def test_focus_outside_the_search_range_fails(scope):
    result = scan_focus(_snap(scope), 16.0, ScanSettings())  # searches 6..26 um
    assert not result.ok
    assert "outside the search range" in result.message or "flat field" in result.message


def test_search_range_outside_the_limits_takes_no_frame():
    def never(z_um: float) -> np.ndarray:
        raise AssertionError("no frame should be taken")

    result = scan_focus(never, 50.0, ScanSettings(), limits_um=(-10.0, 30.0))
    assert not result.ok and result.frames == 0
    assert "outside the limits" in result.message


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"range_um": 0}, "range_um"),
        ({"coarse_step_um": 20.0}, "coarse_step_um"),
        ({"tolerance_um": -1}, "tolerance_um"),
        ({"score": "entropy"}, "score"),
        ({"max_frames": 12}, "max_frames"),  # 11 coarse + 2 refinement frames needed
        ({"range_um": 10, "coarse_step_um": 0.5}, "max_frames"),
    ],
)
def test_invalid_settings_name_the_field(changes, field_name):
    with pytest.raises(ZFocusError, match=f"^{field_name} ") as info:
        ScanSettings(**changes).validate()
    assert "\n" not in str(info.value)


def test_invalid_centre_or_limits_raise():
    snap = lambda z: np.zeros((8, 8))  # noqa: E731 - never called
    with pytest.raises(ZFocusError, match="^center_z_um"):
        scan_focus(snap, math.nan, ScanSettings())
    with pytest.raises(ZFocusError, match="^limits_um"):
        scan_focus(snap, 0.0, ScanSettings(), limits_um=(5.0, -5.0))


def test_coarse_dip_needs_true_peaks_not_a_flank():
    """A 2 um profile of a 64 px field (start -5.3 um): the in-focus dip lies between
    0.7 and -1.3 um; -9.3 um, on the long flank of a far valley, is below the line to the
    -3.3 um peak and outranks it unless the bounding rims must be real peaks."""
    profile = np.array([0.1796, 0.1641, 0.1586, 0.1619, 0.1924, 0.2351, 0.2551, 0.2173,
                        0.2070, 0.2212, 0.2079])  # z = -15.3, -13.3, ..., 4.7 um
    assert deepest_dip(profile, 2)[0] == 3  # -9.3 um: a flank
    index, _, (left, right), method = deepest_dip(profile, 2, peak_tolerance=PEAK_TOLERANCE)
    assert method == "contrast-dip" and (left, right) == (6, 9) and index in (7, 8)


# -- properties over an exact, fast synthetic scene -------------------------------------

_PATTERN = np.random.default_rng(7).normal(size=(24, 24))
_PEAK_UM = 3.0  # the contrast peaks lie this far either side of focus


def _contrast(z_um: float, focus_um: float) -> float:
    """Bright-field-like contrast: two peaks beside focus, a dip at focus."""
    d = z_um - focus_um
    return 0.02 + 0.2 * sum(math.exp(-((d - peak) ** 2) / 3) for peak in (-_PEAK_UM, _PEAK_UM))


def _synthetic(focus_um: float, calls: list[float], fail_every: int = 0):
    def snap_at(z_um: float) -> np.ndarray:
        calls.append(z_um)
        if fail_every and len(calls) % fail_every == 0:
            raise CameraError("glitch")
        return 1000.0 * (1.0 + _contrast(z_um, focus_um) * _PATTERN)

    return snap_at


def test_synthetic_scene_contrast_follows_its_profile():
    score = image_score("contrast_dip")
    calls: list[float] = []
    snap = _synthetic(0.0, calls)
    values = [score(snap(z)) for z in (-3.0, -1.0, 0.0, 1.0, 3.0)]
    assert values[2] < values[1] < values[0] and values[2] < values[3] < values[4]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    center=st.floats(-100, 100),
    focus_offset=st.floats(-12, 12),
    lo_offset=st.floats(-30, 5),
    width=st.floats(0.5, 40),
    range_um=st.floats(3, 15),
    step=st.floats(0.5, 2.0),
    tolerance=st.floats(0.05, 0.5),
    extra_frames=st.integers(0, 12),
    score=st.sampled_from(SCAN_SCORES),
    fail_every=st.sampled_from([0, 0, 3, 5]),
)
def test_every_z_is_finite_and_inside_the_limits(
    center, focus_offset, lo_offset, width, range_um, step, tolerance, extra_frames, score,
    fail_every,
):
    limits = (center + lo_offset, center + lo_offset + width)
    base = ScanSettings(range_um=range_um, coarse_step_um=min(step, range_um))
    max_frames = base.coarse_frames(2 * range_um) + 2 + extra_frames
    scan = ScanSettings(range_um=range_um, coarse_step_um=base.coarse_step_um,
                        tolerance_um=tolerance, max_frames=max_frames, score=score)
    calls: list[float] = []
    focus = center + focus_offset
    result = scan_focus(_synthetic(focus, calls, fail_every), center, scan, limits_um=limits)

    assert all(math.isfinite(z) and limits[0] <= z <= limits[1] for z in calls)
    assert all(center - range_um <= z <= center + range_um for z in calls)
    assert len(calls) == result.frames <= max_frames
    if not result.ok:
        assert math.isnan(result.best_z_um) and result.message
        return
    assert limits[0] <= result.best_z_um <= limits[1]


@settings(max_examples=40, deadline=None)
@given(
    center=st.floats(-100, 100),
    where=st.floats(-1, 1),
    range_um=st.floats(6, 15),
    step=st.floats(0.5, 2.0),
    tolerance=st.floats(0.05, 0.5),
)
# Found by hypothesis: the grid fits the span at 1.48 um, not the 1.61 um asked for; the dip's
# window counted in the nominal step reached a flank, not the peak behind it.
@example(center=0.0, where=0.0, range_um=8.125, step=1.609375, tolerance=0.5)
def test_golden_section_ends_within_half_a_tolerance_of_the_dip(
    center, where, range_um, step, tolerance
):
    """Exact scores: the dip stays inside the last bracket, wherever it lies in range."""
    scan = ScanSettings(range_um=range_um, coarse_step_um=step, tolerance_um=tolerance,
                        max_frames=ScanSettings(range_um, step).coarse_frames(2 * range_um) + 30)
    focus = center + where * (range_um - _PEAK_UM - 2 * step)  # both peaks in range
    calls: list[float] = []
    result = scan_focus(_synthetic(focus, calls), center, scan)
    assert result.ok and result.message == "", result.message
    assert abs(result.best_z_um - focus) <= tolerance / 2 + 1e-9
