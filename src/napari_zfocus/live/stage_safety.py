"""The stage-safety rule every focus move obeys, as pure functions.

Whatever the state, the settings or the fault, a commanded focus move must be

1. finite (a NaN or infinite target is never sent);
2. at most ``max_step_um`` long;
3. inside the allowed range ``[lo, hi]``, or, when the stage is already outside it (the
   focus knob was turned, the limits were narrowed), strictly *towards* the range and never
   past its far end: a stage found outside is walked back one max step per frame at most,
   never jumped.

The rule is stated once here as an invariant (:func:`is_safe_move`) and one constructive
function that satisfies it by design (:func:`safe_target`), so the controller, the
microscope adapters and the tests all use the same definition. The order of clamping is
what bit us before: clamping the step first and the target to the limits afterwards let a
stage 75 um outside its limits jump to them in ONE move. Here the step bound is applied
last, around the current position, so it can never be undone by another clamp.
"""

from __future__ import annotations

import math


def distance_to_range(z_um: float, lo: float, hi: float) -> float:
    """How far ``z_um`` lies outside ``[lo, hi]`` (0 inside), in um."""
    if z_um < lo:
        return lo - z_um
    if z_um > hi:
        return z_um - hi
    return 0.0


def usable_range(lo: float, hi: float) -> bool:
    """True for a finite, non-empty range ``lo <= hi``."""
    return math.isfinite(lo) and math.isfinite(hi) and lo <= hi


def safe_target(
    current_um: float, desired_um: float, lo: float, hi: float, max_step_um: float
) -> float | None:
    """The target nearest to ``desired_um`` that is a safe move from ``current_um``.

    Parameters
    ----------
    current_um
        Where the stage is now (must be finite).
    desired_um
        Where the controller would like it to be.
    lo, hi
        Allowed range of the focus drive, um.
    max_step_um
        Largest single move, um (> 0).

    Returns
    -------
    float or None
        A target for which :func:`is_safe_move` holds, or None when no move is possible:
        an input is not finite, the range is empty, or the stage is outside the range and
        the desired move points away from it. A returned target may equal ``current_um``.
    """
    values = (current_um, desired_um, max_step_um)
    if not all(math.isfinite(v) for v in values) or max_step_um <= 0:
        return None
    if not usable_range(lo, hi):
        return None
    if current_um < lo:  # below the range: only upwards, never past its top
        low, high = current_um, hi
    elif current_um > hi:  # above the range: only downwards, never past its bottom
        low, high = lo, current_um
    else:
        low, high = lo, hi
    target = min(max(desired_um, low), high)
    # The step bound last, around the current position: nothing can widen it again. It
    # clamps only a move that is too long by the rule's own measure (|target - current|):
    # clamping to current -/+ step instead would round a reachable wish 1 ulp short.
    if abs(target - current_um) > max_step_um:
        target = current_um + math.copysign(max_step_um, target - current_um)
        # current + step can round one ulp past the step: back off towards the current
        # position (still inside, or still towards, the range) until the move is exact.
        while abs(target - current_um) > max_step_um:
            target = math.nextafter(target, current_um)
    return target


def is_safe_move(
    current_um: float, target_um: float, lo: float, hi: float, max_step_um: float
) -> bool:
    """The invariant: finite, at most ``max_step_um``, and inside or towards ``[lo, hi]``."""
    if not (math.isfinite(current_um) and math.isfinite(target_um)):
        return False
    if not (math.isfinite(max_step_um) and max_step_um > 0 and usable_range(lo, hi)):
        return False
    if abs(target_um - current_um) > max_step_um:  # exact: the step bound has no slack
        return False
    before = distance_to_range(current_um, lo, hi)
    after = distance_to_range(target_um, lo, hi)
    if before == 0.0:
        return after == 0.0
    # Outside: must get closer (or stay) and must not overshoot to the other side.
    return after <= before and (
        (current_um < lo and target_um >= current_um)
        or (current_um > hi and target_um <= current_um)
    )


def walkback_allowed(
    current_um: float | None, target_um: float, lo: float, hi: float
) -> bool:
    """May a drive at ``current_um`` outside ``[lo, hi]`` accept ``target_um``, which is also
    outside? Yes only when it is strictly between the position and the range: a walk back.

    Used by the microscope adapters, whose own limit check would otherwise refuse every
    step of a walk back and leave a stage stranded outside its limits.
    """
    if current_um is None or not math.isfinite(current_um) or not math.isfinite(target_um):
        return False
    if current_um < lo:
        return current_um <= target_um <= hi
    if current_um > hi:
        return lo <= target_um <= current_um
    return False


__all__ = [
    "distance_to_range",
    "is_safe_move",
    "safe_target",
    "usable_range",
    "walkback_allowed",
]
