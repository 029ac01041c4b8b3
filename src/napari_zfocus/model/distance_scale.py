"""A model's distance scale, measured without annotations from z-stacks of the new setting.

Why. A model reads defocus from how blurred and how contrasted cells look, and both scale
with the optics: the condenser (Koehler) aperture, the wavelength. Measured on the
independent waveorder world (README, "Beyond our own simulator"), a model trained at
condenser aperture 0.4 reads 0.74x the true distance at 0.3 and 1.21x at 0.5, in the right
direction and right at focus. Such an image looks like a normal one at another z, so no
per-image check can flag it; but a z-stack can: its slices are a known distance apart
whatever the sample, so the slope of the model's reading against the slice position IS
the model's gain on that microscope, with no focus marked by anyone.

:func:`fit_stack_gain` fits that slope in a window around where the model reads focus
(it reads focus right even when its gain is off), :func:`fit_distance_scale` combines the
stacks into a :class:`DistanceScale`, stored in the model file (``distance_scale`` entry)
and applied by :class:`~napari_zfocus.model.inference.Predictor`: every reading is divided
by the gain. Calibration and the out-of-distribution check keep working in the model's
own units (they were fitted there).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_zfocus._generators import run_to_end
from napari_zfocus.errors import ZFocusError
from napari_zfocus.validation import check_entry_version, check_number

if TYPE_CHECKING:
    from napari_zfocus.data import ZStack
    from napari_zfocus.model.inference import Predictor

__all__ = [
    "DISTANCE_SCALE_VERSION",
    "GAIN_RANGE",
    "DistanceScale",
    "StackGain",
    "fit_distance_scale",
    "fit_gain",
    "fit_stack_gain",
    "gain_evidence",
    "iter_measure_distance_scale",
    "measure_distance_scale",
]

DISTANCE_SCALE_VERSION = 1
#: Gains a model file may hold, and that :func:`fit_distance_scale` accepts. Outside it the
#: model is not reading this microscope with a wrong scale but reading something else
#: (waveorder: apertures 0.3 and 0.5 give 0.74 and 1.21 for a model of 0.4).
GAIN_RANGE = (0.5, 2.0)
#: Half-width of the fitted window around the model's focus, um. Far from focus a
#: model's reading saturates (the softmax's range ends, defocused cells fade), so the
#: slope there is not its gain; near focus the window is too short to measure a slope.
#: Chosen on waveorder apertures 0.3 and 0.5 (window 4 / 6 / 8 um: 69-84 / 83-86 /
#: 87-93 % within +/-1 um after rescaling from one stack) before the checks in the README.
FIT_REACH_UM = 8.0
#: Fewest slices inside the window for a stack's slope to count.
MIN_FIT_SLICES = 5
#: When a measured gain counts as a change of setting. Accuracy is sensitive to the scale:
#: errors near +/-1 um far from focus cross it when the readings are scaled by a few %, so
#: dividing by a gain that is only noise costs far more than it could gain (measured: a
#: model's own world at 1.015x, 96.6 -> 95.4 % within +/-1 um; at 1.07x, 90.5 -> 75.8 %).
#: Stacks of one setting scatter: per-stack gains have a standard deviation of 0.01-0.03
#: on waveorder with its condenser fixed, 0.06 on our simulator's default mix, where the
#: condenser differs per stack (0.3-0.45). So the median of the stacks is applied only
#: when it lies more than :data:`UNCHANGED_WITHIN` from 1 AND more than
#: :data:`SIGNIFICANCE` standard errors, the standard deviation taken as at least
#: :data:`MIN_SCATTER` (:data:`ONE_STACK_SCATTER` from a single stack, which shows none).
UNCHANGED_WITHIN = 0.05
SIGNIFICANCE = 3.0
MIN_SCATTER = 0.03
ONE_STACK_SCATTER = 0.06


@dataclass(frozen=True)
class StackGain:
    """The slope of one stack's readings against slice position.

    Attributes
    ----------
    gain
        Read um per true um, or NaN when the stack gave no fit.
    slices
        Slices inside the fitted window.
    focus_um
        Where the fitted line reads zero, from the first slice (um).
    reason
        Why there is no fit ('' when there is one).
    """

    gain: float
    slices: int
    focus_um: float
    reason: str = ""


def fit_stack_gain(read_um: Any, z_step_um: float, *, reach_um: float = FIT_REACH_UM,
                   ) -> StackGain:
    """Slope of a model's readings ``read_um`` (one per slice) against slice position.

    The window starts as the slices the model reads within ``reach_um`` of focus, then
    moves to the slices within ``reach_um`` of where the fitted line crosses zero, until it
    settles (a few rounds): the crossing does not depend on the gain, so the window ends
    up centred on the stack's focus in true um.

    Parameters
    ----------
    read_um
        ``(Z,)`` the model's z readings of slices ``0..Z-1`` (NaN: unread slice).
    z_step_um
        Distance between slices, um (> 0).
    reach_um
        Half-width of the window, um.
    """
    r = np.asarray(read_um, dtype=np.float64).reshape(-1)
    step = float(check_number(z_step_um, "z-step (um)", lo=0.0, lo_open=True))
    return fit_gain(np.arange(r.size) * step, r, reach_um=reach_um)


def fit_gain(positions_um: Any, read_um: Any, *, reach_um: float = FIT_REACH_UM) -> StackGain:
    """:func:`fit_stack_gain` for slices at any known ``positions_um`` (one per reading;
    only their differences matter, so any origin will do)."""
    s = np.asarray(positions_um, dtype=np.float64).reshape(-1)
    r = np.asarray(read_um, dtype=np.float64).reshape(-1)
    if s.shape != r.shape:
        raise ValueError(f"{s.size} positions but {r.size} readings")
    finite = np.isfinite(r) & np.isfinite(s)
    window = finite & (np.abs(r) <= reach_um)
    gain = focus = math.nan
    for _ in range(5):
        if window.sum() < MIN_FIT_SLICES:
            return StackGain(math.nan, int(window.sum()), math.nan,
                             f"fewer than {MIN_FIT_SLICES} slices read within "
                             f"{reach_um:g} um of focus")
        gain, offset = np.polyfit(s[window], r[window], 1)
        if not gain > 0:
            return StackGain(math.nan, int(window.sum()), math.nan,
                             "the readings do not increase with z")
        focus = -offset / gain
        moved = finite & (np.abs(s - focus) <= reach_um)
        if (moved == window).all():
            break
        window = moved
    if window.sum() < MIN_FIT_SLICES:
        return StackGain(math.nan, int(window.sum()), math.nan,
                         f"fewer than {MIN_FIT_SLICES} slices within {reach_um:g} um of focus")
    return StackGain(float(gain), int(window.sum()), float(focus))


@dataclass(frozen=True)
class DistanceScale:
    """A model's gain on a microscope: its readings are divided by ``gain``.

    Attributes
    ----------
    gain
        Read um per true um (1: the model reads true distances), in :data:`GAIN_RANGE`.
    fitted
        How it was measured (JSON): stacks, per-stack gains, source...
    """

    gain: float = 1.0
    fitted: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        value = check_number(self.gain, "distance scale gain", lo=GAIN_RANGE[0],
                             hi=GAIN_RANGE[1], strict=True)
        object.__setattr__(self, "gain", float(value))
        if not isinstance(self.fitted, dict):
            raise ZFocusError("distance scale fitted must be a JSON object")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the model file's ``distance_scale`` entry."""
        return {"version": DISTANCE_SCALE_VERSION, "gain": self.gain,
                "fitted": dict(self.fitted)}

    @classmethod
    def from_dict(cls, d: Any) -> DistanceScale:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ZFocusError
            One line naming the bad entry (a NaN gain, a newer version...).
        """
        check_entry_version(d, "distance scale", DISTANCE_SCALE_VERSION)
        # The values are checked (a finite number in range, a dict) by __post_init__.
        return cls(gain=d.get("gain"), fitted=d.get("fitted", {}))


def gain_evidence(gains: Sequence[float]) -> tuple[float, float, bool]:
    """``(standard error, threshold, change)`` of the median of per-stack ``gains``: is it
    a change of setting (see :data:`UNCHANGED_WITHIN`)?"""
    gain = float(np.median(gains))
    scatter = float(np.std(gains, ddof=1)) if len(gains) > 1 else ONE_STACK_SCATTER
    # The median of n values has a standard error of ~1.25 sd / sqrt(n).
    standard_error = 1.25 * max(scatter, MIN_SCATTER) / math.sqrt(len(gains))
    threshold = max(UNCHANGED_WITHIN, SIGNIFICANCE * standard_error)
    return standard_error, threshold, bool(abs(gain - 1.0) > threshold)


def fit_distance_scale(stacks: Sequence[StackGain], names: Sequence[str], *,
                       source: str = "") -> DistanceScale:
    """Combine per-stack gains into the model's :class:`DistanceScale` (their median).

    A median that is not a significant change from 1 (see :data:`UNCHANGED_WITHIN`) is
    stored as 1; ``fitted`` keeps the measured one (``measured_gain``), its
    ``standard_error``, the ``threshold`` it had to pass and whether it was ``applied``.

    Parameters
    ----------
    stacks
        One :class:`StackGain` per stack.
    names
        The stacks' names (files), for the record and the messages.
    source
        What the stacks were (stored in ``fitted``).

    Raises
    ------
    ZFocusError
        No stack gave a fit (each stack's reason is named), or the gain is outside
        :data:`GAIN_RANGE`: the model does not read these stacks with a wrong scale but
        not at all; annotate a few and fine-tune instead.
    """
    if len(stacks) != len(names):
        raise ValueError(f"{len(stacks)} stack gains but {len(names)} names")
    good = [g.gain for g in stacks if math.isfinite(g.gain)]
    if not good:
        reasons = "; ".join(f"{n}: {g.reason}" for n, g in zip(names, stacks, strict=True))
        raise ZFocusError(f"no stack gave a distance scale ({reasons})")
    gain = float(np.median(good))
    if not GAIN_RANGE[0] <= gain <= GAIN_RANGE[1]:
        raise ZFocusError(
            f"the model reads {gain:.2f}x the true distance on these stacks, outside "
            f"{GAIN_RANGE[0]:g}-{GAIN_RANGE[1]:g}x: these images are too unlike its training "
            "data for a rescale; annotate a few stacks and fine-tune "
            "(zfocus train DATASET --from MODEL)")
    standard_error, threshold, applied = gain_evidence(good)
    fitted = {
        "measured_gain": round(gain, 4),
        "standard_error": round(standard_error, 4),
        "threshold": round(threshold, 4),
        "applied": bool(applied),
        "stacks": len(stacks),
        "stacks_fitted": len(good),
        "per_stack": [
            {"stack": n, "gain": None if not math.isfinite(g.gain) else round(g.gain, 4),
             "slices": g.slices, **({"reason": g.reason} if g.reason else {})}
            for n, g in zip(names, stacks, strict=True)
        ],
        "reach_um": FIT_REACH_UM,
        "source": source,
    }
    return DistanceScale(gain=gain if applied else 1.0, fitted=fitted)


def iter_measure_distance_scale(
    predictor: Predictor, stacks: Sequence[ZStack], *, source: str = "",
    cancel: Callable[[], bool] | None = None,
) -> Generator[tuple[int, int], None, DistanceScale | None]:
    """Generator form of :func:`measure_distance_scale` for workers: yields ``(stacks
    done, stacks)`` after each stack and returns the scale, or ``None`` when ``cancel()``
    asked to stop (checked between stacks)."""
    source = source or f"{len(stacks)} unannotated stacks"
    gains, names = [], []
    for i, stack in enumerate(stacks):
        if cancel is not None and cancel():
            return None
        name = str(stack.path) if stack.path is not None else f"stack {i + 1}"
        if stack.z_step_um is None or stack.pixel_size_um is None:
            missing, flag = (("z-step", "--z-step") if stack.z_step_um is None
                             else ("pixel size", "--pixel-size"))
            raise ZFocusError(f"{name}: its {missing} is unknown (not in the file); set it "
                              f"({flag} on the command line, the {missing} field in the dock)")
        images = np.asarray(stack.data)
        # In the model's own units: a scale it already has is undone, not compounded.
        reads = [p.z_um * predictor.gain
                 for p in predictor.predict_batch(images, stack.pixel_size_um)]
        gains.append(fit_stack_gain(reads, stack.z_step_um))
        names.append(name)
        yield i + 1, len(stacks)
    return fit_distance_scale(gains, names, source=source)


def measure_distance_scale(
    predictor: Predictor, stacks: Sequence[ZStack], *, source: str = "",
) -> DistanceScale:
    """The :class:`DistanceScale` of ``predictor``'s model on ``stacks`` (no annotations).

    Readings are taken in the model's own units (a scale the model already has is undone
    first), so the result replaces it rather than compounding it.

    Parameters
    ----------
    predictor
        The model.
    stacks
        Z-stacks of the new setting, each with its z-step and pixel size known.
    source
        What the stacks were (stored in ``fitted``; default "N unannotated stacks").

    Raises
    ------
    ZFocusError
        A stack without a z-step or pixel size (named), or see :func:`fit_distance_scale`.
    """
    scale = run_to_end(iter_measure_distance_scale(predictor, stacks, source=source))
    assert scale is not None  # only a cancel returns None, and none was given
    return scale
