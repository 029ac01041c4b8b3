"""A z-scan autofocus like Micro-Manager's OughtaFocus: the baseline of the one-frame refocus.

It is what a lab would otherwise run inside an acquisition, and the ``scan`` failure policy
of this package's MDA engine. Coarse to fine:

1. a coarse scan over ``centre +/- range_um`` (clipped to the stage limits), every
   ``coarse_step_um`` or less, in ascending z;
2. golden-section refinement between the coarse neighbours of the best coarse point,
   until the bracket is ``tolerance_um`` wide; the focus is the bracket's centre.

Scores (``ScanSettings.score``):

* ``"contrast_dip"`` (default): bright-field's in-focus plane is the CONTRAST MINIMUM
  between the dark and bright contrast peaks on either side of focus (see
  :mod:`napari_zfocus.annotation.suggestion`). The coarse profile of
  :func:`~napari_zfocus.annotation.suggestion.contrast_profile` must show the two peaks
  around a dip (:func:`~napari_zfocus.annotation.suggestion.deepest_dip`); the contrast is
  then minimised between the dip's coarse neighbours.
* ``"sharpness"`` (the classic autofocus, as OughtaFocus): the maximum of a focus score,
  :func:`~napari_zfocus.annotation.focus_scores.normalized_variance`; any other name of
  :data:`~napari_zfocus.annotation.focus_scores.FOCUS_SCORES` picks that score. In
  bright-field this lands on one of the two contrast peaks, ~1-3 um off focus, and which one
  depends on the start (``benchmarks/bench_scan_focus.py`` measures it).

The caller's ``snap_at(z)`` moves the focus (safely, in steps) and returns one image. Every z
asked for is finite and inside the limits; a ``snap_at`` that raises or returns an unusable
image counts as a failed frame and is skipped, never raised. The scan fails (``ok=False``,
``best_z_um`` NaN, the reason in ``message``) on too few good frames, a flat field (no dip,
no peak), or an extremum at the edge of the search range.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from napari_zfocus.annotation.focus_scores import FOCUS_SCORES
from napari_zfocus.annotation.suggestion import (
    DEFAULT_PIXEL_SIZE_UM,
    contrast_problem,
    contrast_profile,
    deepest_dip,
)
from napari_zfocus.bounds import MIN_SUGGEST_SLICES, check_pixel_size_um
from napari_zfocus.errors import ZFocusError
from napari_zfocus.validation import check_choice, check_number

#: What ``"sharpness"`` means: OughtaFocus's normalised variance (Groen et al. 1985).
SHARPNESS_SCORE = "normalized_variance"
#: Valid ``ScanSettings.score`` values.
SCAN_SCORES: tuple[str, ...] = ("contrast_dip", "sharpness", *FOCUS_SCORES)
#: How far (um) from a dip its bounding contrast peaks may lie. The peaks lie 1-3 um from
#: focus; with ``suggest_focus``'s 6 um, broad far-out-of-focus valleys of coarse profiles
#: outranked the in-focus dip on 64 x 64 px fields (5 of 90 scans wrong or failed, against
#: 3 of 90 with 4 um).
DIP_WINDOW_UM = 4.0
#: Smallest relative change (peak to peak / largest) of the coarse scores along z that
#: counts as a focus signal, at least; see :func:`min_relative_change`.
MIN_RELATIVE_CHANGE = 0.05
#: Camera noise alone moves the scores of a blank field by about ``c / sqrt(pixels)``
#: relative, whatever the light level (c = 1.4 contrast, 2.8 normalised variance, 4.4
#: Brenner: medians over 11 frames; maxima of 30 scans reach 1.6x that), while the scores of
#: the simulator's real fields change by 25-60 % over +/- 10 um: a change below
#: ``NOISE_FACTOR / sqrt(pixels)`` is noise.
NOISE_FACTOR = 12.0
#: A coarse point counts as a contrast peak when no neighbour is more than this fraction
#: above it (noise on the dark side's plateau must not hide its peak).
PEAK_TOLERANCE = 0.03
#: Smallest dip depth (relative to its lower peak) that counts as a contrast dip.
MIN_DIP_DEPTH = 0.02
#: Attempts at one refinement z before the refinement stops (camera glitches are brief).
ATTEMPTS_PER_Z = 2
#: Frames the refinement needs at least (its first two golden-section points).
MIN_REFINE_FRAMES = 2
_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class ScanSettings:
    """Search range, steps, frame budget and score of :func:`scan_focus`.

    Attributes
    ----------
    range_um
        The search covers ``centre +/- range_um`` (clipped to the stage limits).
    coarse_step_um
        Largest distance between two coarse frames.
    tolerance_um
        The refinement stops when its bracket is this narrow.
    max_frames
        Most frames one scan takes (failed snaps included).
    score
        ``"contrast_dip"``, ``"sharpness"`` or a name of ``FOCUS_SCORES`` (maximised).
    """

    range_um: float = 10.0
    coarse_step_um: float = 2.0
    tolerance_um: float = 0.25
    max_frames: int = 25
    score: str = "contrast_dip"

    def validate(self) -> None:
        """Raise :class:`ZFocusError` naming the first impossible field."""
        check_number(self.range_um, "range_um", lo=0, lo_open=True, hi=1000)
        check_number(self.coarse_step_um, "coarse_step_um", lo=0, lo_open=True,
                     hi=self.range_um)
        check_number(self.tolerance_um, "tolerance_um", lo=0, lo_open=True)
        check_number(self.max_frames, "max_frames", lo=1, integer=True)
        check_choice(self.score, "score", SCAN_SCORES)
        needed = self.coarse_frames(2 * self.range_um) + MIN_REFINE_FRAMES
        if self.max_frames < needed:
            raise ZFocusError(
                f"max_frames must be >= {needed} for range_um={self.range_um:g} and "
                f"coarse_step_um={self.coarse_step_um:g} (coarse scan + "
                f"{MIN_REFINE_FRAMES} refinement frames), got {self.max_frames}"
            )

    def coarse_frames(self, span_um: float) -> int:
        """Coarse frames over a search span of ``span_um`` (at least 3)."""
        steps = math.ceil(span_um / self.coarse_step_um - 1e-9)
        return max(MIN_SUGGEST_SLICES, steps + 1)


@dataclass
class ScanResult:
    """What one scan found, and what it cost.

    Attributes
    ----------
    best_z_um
        The focus found (NaN when the scan failed).
    frames
        Frames asked of ``snap_at`` (the light dose), failed ones included.
    z_um, scores
        The z and score of every good frame, in the order taken.
    ok
        Whether ``best_z_um`` is a focus; ``message`` says why not.
    message
        Why the scan failed, or a note on a successful one (refinement cut short).
    failed
        Frames whose ``snap_at`` raised or returned an unusable image.
    """

    best_z_um: float
    frames: int
    z_um: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    ok: bool = False
    message: str = ""
    failed: int = 0


ImageScore = Callable[[np.ndarray], float]


def image_score(score: str, pixel_size_um: float = DEFAULT_PIXEL_SIZE_UM) -> ImageScore:
    """The per-image score of ``score`` (a ``ScanSettings.score`` value)."""
    if score == "contrast_dip":
        return lambda image: float(contrast_profile(image, pixel_size_um)[0])
    function = FOCUS_SCORES[SHARPNESS_SCORE if score == "sharpness" else score]
    return lambda image: float(function(image))


class _Sampler:
    """Takes frames through ``snap_at`` within the budget and the limits; records them."""

    def __init__(
        self, snap_at: Callable[[float], np.ndarray], score: ImageScore, max_frames: int,
        window: tuple[float, float],
    ) -> None:
        self.snap_at, self.score, self.max_frames = snap_at, score, max_frames
        self.lo, self.hi = window
        self.frames = self.failed = self.pixels = 0
        self.z_um: list[float] = []
        self.scores: list[float] = []
        self.last_error = ""

    @property
    def frames_left(self) -> int:
        return self.max_frames - self.frames

    def take(self, z_um: float) -> float | None:
        """Score of a frame at ``z_um`` (clipped into the window), or None if it failed."""
        if self.frames_left <= 0:
            return None
        z = min(max(float(z_um), self.lo), self.hi)  # the last guard of the limits
        self.frames += 1
        try:
            image = np.asarray(self.snap_at(z))
            if image.ndim != 2:
                raise ValueError(f"expected a 2-D image, got shape {image.shape}")
            if image.dtype.kind == "f" and not np.isfinite(image).all():
                raise ValueError("the image has NaN or infinite pixels")
            value = self.score(image)
            if not math.isfinite(value):
                raise ValueError(f"the {value} score of the image is not finite")
        except Exception as exc:  # noqa: BLE001 - a camera fault skips one frame
            self.failed += 1
            self.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            return None
        self.z_um.append(z)
        self.scores.append(value)
        self.pixels = image.size
        return value

    def take_retrying(self, z_um: float, reserve: int = 0) -> float | None:
        """:meth:`take` up to ``ATTEMPTS_PER_Z`` times, keeping ``reserve`` frames back."""
        for _ in range(ATTEMPTS_PER_Z):
            if self.frames_left <= reserve:
                return None
            got = self.take(z_um)
            if got is not None:
                return got
        return None

    def result(self, best_z_um: float, ok: bool, message: str) -> ScanResult:
        return ScanResult(
            best_z_um=best_z_um if ok else math.nan, frames=self.frames, z_um=self.z_um,
            scores=self.scores, ok=ok, message=message, failed=self.failed,
        )


def scan_focus(
    snap_at: Callable[[float], np.ndarray],
    center_z_um: float,
    settings: ScanSettings,
    limits_um: tuple[float, float] = (-math.inf, math.inf),
    *,
    pixel_size_um: float = DEFAULT_PIXEL_SIZE_UM,
) -> ScanResult:
    """Find the focus around ``center_z_um`` with a coarse scan and golden-section search.

    Parameters
    ----------
    snap_at
        ``snap_at(z)`` moves the focus to ``z`` (um; the caller moves safely, in steps) and
        returns one 2-D image. Exceptions it raises count as failed frames.
    center_z_um
        Centre of the search (usually the current z).
    settings
        Range, steps, frame budget and score (validated here).
    limits_um
        Allowed focus range; every z asked for lies inside it.
    pixel_size_um
        Pixel size of the images (sizes the contrast score's background filter).

    Returns
    -------
    ScanResult
        The focus, or ``ok=False`` with the reason; never raises on a failed frame.

    Raises
    ------
    ZFocusError
        Invalid settings, a non-finite centre, or limits that are not increasing.
    """
    settings.validate()
    center = check_number(center_z_um, "center_z_um")
    window = _search_window(center, settings.range_um, limits_um)
    score = image_score(settings.score, check_pixel_size_um(pixel_size_um))
    sampler = _Sampler(snap_at, score, settings.max_frames, window or (center, center))
    if window is None:
        return sampler.result(math.nan, False, f"search range {center:g} +/- "
                              f"{settings.range_um:g} um lies outside the limits {limits_um}")
    lo, hi = window
    planned = np.linspace(lo, hi, settings.coarse_frames(hi - lo))
    # A failed coarse frame is retried while the refinement keeps its frames: a gap next
    # to the narrow in-focus dip would hide it.
    coarse = [
        (float(z), s) for k, z in enumerate(planned)
        if (s := sampler.take_retrying(z, len(planned) - k - 1 + MIN_REFINE_FRAMES)) is not None
    ]
    if len(coarse) < MIN_SUGGEST_SLICES:
        return sampler.result(math.nan, False, f"only {len(coarse)} of {len(planned)} coarse "
                              f"frames succeeded (last: {sampler.last_error})")
    # The grid's own spacing (the span divided evenly: at most the setting, often less),
    # or the dip's search window is counted in too few samples to reach both peaks.
    spacing = float(planned[1] - planned[0]) if len(planned) > 1 else settings.coarse_step_um
    bracket = _bracket(coarse, settings.score, spacing, sampler.pixels)
    if isinstance(bracket, str):
        return sampler.result(math.nan, False, bracket)
    sign = 1.0 if settings.score == "contrast_dip" else -1.0  # minimise sign * score
    best, note = _golden_section(sampler, bracket, settings.tolerance_um, sign)
    return sampler.result(best, True, note)


def _search_window(
    center: float, range_um: float, limits_um: tuple[float, float]
) -> tuple[float, float] | None:
    """``center +/- range_um`` inside the limits, or None when nothing of it is inside."""
    try:
        lo, hi = (float(v) for v in limits_um)
    except (TypeError, ValueError):
        raise ZFocusError(f"limits_um must be two numbers LOW HIGH, got {limits_um!r}") from None
    if math.isnan(lo) or math.isnan(hi) or not lo < hi:
        raise ZFocusError(f"limits_um must be increasing (LOW < HIGH), got {limits_um!r}")
    a, b = max(center - range_um, lo), min(center + range_um, hi)
    return (a, b) if b > a else None


def min_relative_change(pixels: int) -> float:
    """Smallest relative change of scores along z, over images of ``pixels``, that is signal."""
    return max(MIN_RELATIVE_CHANGE, NOISE_FACTOR / math.sqrt(max(pixels, 1)))


def _bracket(
    coarse: list[tuple[float, float]], score: str, step_um: float, pixels: int
) -> tuple[float, float] | str:
    """The coarse neighbours around the best coarse point, or why there is none."""
    z = np.array([c[0] for c in coarse])
    values = np.array([c[1] for c in coarse])
    span = f"z {z[0]:g}..{z[-1]:g} um"
    if score == "contrast_dip":
        problem = contrast_problem(values)
        if problem is not None:
            return f"flat field: {problem}"
    top = float(np.max(np.abs(values)))
    least = min_relative_change(pixels)
    if not top > 0 or float(np.ptp(values)) < least * top:
        return (f"flat field: the {score} score changes by less than {least:.0%} over "
                f"{span}, no more than camera noise (blank field or far out of focus)")
    if score != "contrast_dip":
        best = int(np.argmax(values))
        if best in (0, len(values) - 1):
            return (f"no {score} peak inside {span}: the maximum is at the edge "
                    "(the focus may lie outside the search range)")
        return float(z[best - 1]), float(z[best + 1])
    window = max(1, round(DIP_WINDOW_UM / step_um))
    _, _, (left, right), method = deepest_dip(values, window, peak_tolerance=PEAK_TOLERANCE)
    if method != "contrast-dip" or left is None or right is None:
        return (f"no contrast dip between two contrast peaks inside {span} "
                "(the focus may lie outside the search range)")
    # The lowest coarse point between the peaks (the valley's minimum lies next to it),
    # and its depth below the lower peak.
    best = left + int(np.argmin(values[left : right + 1]))
    rim = min(values[left], values[right])
    depth = (rim - values[best]) / rim
    if depth < MIN_DIP_DEPTH:
        return (f"no clear contrast dip inside {span}: {depth:.0%} below its peaks, "
                f"less than {MIN_DIP_DEPTH:.0%} (blank or flat field?)")
    return float(z[best - 1]), float(z[best + 1])


def _golden_section(
    sampler: _Sampler, bracket: tuple[float, float], tolerance_um: float, sign: float
) -> tuple[float, str]:
    """Minimise ``sign * score`` in ``bracket``: the final bracket's centre and a note.

    A z whose frames fail ``ATTEMPTS_PER_Z`` times, or an exhausted frame budget, ends
    the search early at the centre of the bracket reached (noted in the message).
    """

    def value(z: float) -> float | None:
        got = sampler.take_retrying(z)
        return None if got is None else sign * got

    a, b = bracket
    if b - a <= tolerance_um:
        return 0.5 * (a + b), ""
    c, d = b - _INV_PHI * (b - a), a + _INV_PHI * (b - a)
    fc = value(c)
    fd = value(d) if fc is not None else None
    while fc is not None and fd is not None:
        if fc < fd:  # the minimum lies in [a, d]; c becomes the new upper interior point
            b, d, fd = d, c, fc
            if b - a <= tolerance_um:
                return 0.5 * (a + b), ""
            c = b - _INV_PHI * (b - a)
            fc = value(c)
        else:  # the minimum lies in [c, b]; d becomes the new lower interior point
            a, c, fc = c, d, fd
            if b - a <= tolerance_um:
                return 0.5 * (a + b), ""
            d = a + _INV_PHI * (b - a)
            fd = value(d)
    reason = ("the frame budget ran out" if sampler.frames_left <= 0
              else f"{ATTEMPTS_PER_Z} frames failed at one z ({sampler.last_error})")
    return 0.5 * (a + b), f"refinement stopped at a {b - a:.2g} um bracket: {reason}"
