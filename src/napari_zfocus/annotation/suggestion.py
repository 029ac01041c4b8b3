"""Suggest the in-focus slice of a bright-field z-stack from its contrast profile.

Bright-field physics: a thin, nearly transparent (phase) object such as a yeast cell
almost vanishes when it is exactly in focus; defocus turns its phase into intensity
contrast, dark on one side of focus and bright on the other. The contrast therefore
rises to a peak about 1-3 um below and above focus and dips in between: the in-focus
plane lies at that CONTRAST MINIMUM, and the sharpest slice is typically ~1 um off.

Method (``"contrast-dip"``):

1. per slice, removal of slow illumination changes (vignetting; Gaussian background
   of ``background_um``), then the coefficient of variation ``std / mean`` of the
   high-passed image. Optional denoising (``denoise_um``) is off by default: camera
   noise adds the same floor to every slice and does not move the dip, while
   smoothing measurably biased the pick by -1 slice on simulated stacks (see
   ``benchmarks/bench_suggest.py``);
2. along z, the deepest valley bounded by contrast peaks on both sides within
   ``window_um``: for every slice below both its highest neighbours (one below, one
   above, within the window), the depth below the straight line joining those two
   peaks; the slice of greatest depth is the focus;
3. if no slice has a peak on both sides (focus at the stack's edge), fall back to the
   contrast minimum next to the strongest peak (``"edge-minimum"``).

By default (``method="auto"``) the sign flip of the phase contrast decides first
(:mod:`.sign_flip`, ``"sign-flip"`` / ``"mirror-valley"``): it holds on fields where the
contrast dip is fooled (PDMS pillars outshining a few cells, strongly absorbing cells
whose contrast peaks at focus); the contrast dip is the fallback when a stack shows no
flip (e.g. not a bright-field stack) and stays available as ``method="contrast-dip"``.

``confidence`` is the valley depth relative to the lower of its two peaks (0..1). On
simulated stacks (``benchmarks/bench_suggest.py``) it averaged 0.26 for the default
settings (every pick exact) and 0.10 for dim, sparse fields (half exact): low values
mean "check this one by eye".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from napari_zfocus.bounds import MIN_SUGGEST_SLICES
from napari_zfocus.data.stack import ZStack
from napari_zfocus.errors import StackError, describe

from .focus_scores import FOCUS_SCORES
from .sign_flip import mirror_slice, sign_flip_focus

#: Width (um) of the slow background removed from every slice (vignetting, uneven light).
BACKGROUND_UM = 8.0
#: Default z-step (um) assumed when the stack does not say.
DEFAULT_Z_STEP_UM = 1.0
#: Default pixel size (um) assumed when the stack does not say (the paper's 4x input).
DEFAULT_PIXEL_SIZE_UM = 0.24
#: Contrast (coefficient of variation) below which a slice counts as blank: float32
#: rounding leaves ~1e-7 on a constant image; the faintest real field is ~1e-3.
MIN_CONTRAST = 1e-5
#: Change of contrast along z below which the stack has no focus to find, relative to
#: its largest contrast: identical slices (a 2-D image saved N times) differ by rounding.
MIN_RELATIVE_CONTRAST_CHANGE = 1e-4


@dataclass
class FocusSuggestion:
    """The suggested in-focus slice and the evidence behind it.

    Attributes
    ----------
    focus_index
        0-based index of the suggested in-focus slice.
    confidence
        Relative depth of the contrast dip, 0 (no dip) .. 1 (contrast vanishes).
    method
        ``"contrast-dip"`` or the fallback ``"edge-minimum"``.
    profile
        The contrast profile used (one value per slice).
    profiles
        Every per-slice profile computed, by name (``"contrast"`` plus the classic
        scores of :data:`~napari_zfocus.annotation.focus_scores.FOCUS_SCORES`), for plots.
    peaks
        Slice indices of the two contrast peaks around the dip (``None`` if missing).
    z_step_um
        The z-step used to size the search window.
    runner_up
        The next-best candidate slice (sign-flip methods), or None: where the suggestion
        is unsure, this is the slice to compare it with.
    """

    focus_index: int
    confidence: float
    method: str
    profile: np.ndarray
    profiles: dict[str, np.ndarray] = field(default_factory=dict)
    peaks: tuple[int | None, int | None] = (None, None)
    z_step_um: float = DEFAULT_Z_STEP_UM
    runner_up: int | None = None

    @property
    def sharpest_index(self) -> int:
        """Slice of maximum contrast (what a naive autofocus would pick)."""
        return int(np.argmax(self.profile))


def contrast_profile(
    images: np.ndarray,
    pixel_size_um: float = DEFAULT_PIXEL_SIZE_UM,
    *,
    denoise_um: float = 0.0,
    background_um: float = BACKGROUND_UM,
) -> np.ndarray:
    """Coefficient of variation of each slice after denoising and background removal.

    Parameters
    ----------
    images
        ``(Z, Y, X)`` or ``(Y, X)``.
    pixel_size_um
        Pixel size, to express the filter widths in micrometres.
    denoise_um, background_um
        Gaussian sigma of the denoising and of the slow background, in um.
    """
    array = np.asarray(images, dtype=np.float32)
    stack = array[None] if array.ndim == 2 else array
    out = np.empty(len(stack))
    fine = max(denoise_um / pixel_size_um, 0.0)
    coarse = background_um / pixel_size_um
    for index, image in enumerate(stack):
        detail, mean = _detail(image, fine, coarse)
        out[index] = _variation(detail, mean)
    return out


def _detail(image: np.ndarray, fine_px: float, coarse_px: float) -> tuple[np.ndarray, float]:
    """The (optionally denoised) image minus its slow background, and that background's mean."""
    smooth = ndimage.gaussian_filter(image, fine_px) if fine_px > 0 else image
    background = _smooth_background(image, coarse_px)
    return smooth - background, float(background.mean())


def _variation(detail: np.ndarray, mean: float) -> float:
    """Coefficient of variation of a slice's detail (0 for a non-positive background)."""
    return float(detail.std()) / mean if mean > 0 else 0.0


def _slice_evidence(image: np.ndarray, pixel_size_um: float) -> tuple[float, np.ndarray]:
    """Contrast (as :func:`contrast_profile`) and the sign-flip slice of one image.

    One background removal serves both (it is the expensive step).
    """
    detail, mean = _detail(image, 0.0, BACKGROUND_UM / pixel_size_um)
    return _variation(detail, mean), mirror_slice(detail, mean)


def _smooth_background(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian-like blur of width ``sigma_px`` from three box filters.

    Three passes of a box of width ``w`` have the variance of a Gaussian with
    ``sigma**2 = 3 (w**2 - 1) / 12``; at sigma ~ 33 px this is ~10x faster than
    ``gaussian_filter`` (0.25 s against 2.6 s for 31 slices of 320 x 320 px).
    """
    width = round(np.sqrt(4.0 * sigma_px**2 + 1.0))
    width = max(1, min(width, 2 * min(image.shape) - 1))
    out = image
    for _ in range(3):
        out = ndimage.uniform_filter(out, width, mode="reflect")
    return out


def suggest_focus(
    stack: ZStack | np.ndarray,
    *,
    z_step_um: float | None = None,
    pixel_size_um: float | None = None,
    window_um: float = 6.0,
    classic_scores: bool = True,
    method: str = "auto",
) -> FocusSuggestion:
    """Suggest the in-focus slice of a bright-field stack (contrast minimum between peaks).

    Parameters
    ----------
    stack
        A :class:`ZStack` (read one slice at a time) or an array ``(Z, Y, X)``.
    z_step_um, pixel_size_um
        Override the stack's values; defaults 1 um and 0.24 um when unknown.
    window_um
        How far (um) from a candidate slice its bounding peaks may lie.
    classic_scores
        Also compute the classic focus scores (for display; not used to decide).
    method
        ``"auto"`` (sign flip first, contrast dip as fallback) or ``"contrast-dip"``.

    Raises
    ------
    StackError
        Fewer than 3 slices, an unreadable / NaN slice, or no contrast to find a focus
        in (blank or constant slices, or every slice alike).
    """
    name, n_slices, slices = _slices_of(stack)
    if isinstance(stack, ZStack):
        z_step_um = z_step_um or stack.z_step_um
        pixel_size_um = pixel_size_um or stack.pixel_size_um
    if n_slices < MIN_SUGGEST_SLICES:
        raise StackError(
            describe(
                name, f"need at least {MIN_SUGGEST_SLICES} slices to find a focus, got {n_slices}"
            )
        )
    z_step = float(z_step_um or DEFAULT_Z_STEP_UM)
    pixel = float(pixel_size_um or DEFAULT_PIXEL_SIZE_UM)

    if method not in ("auto", "contrast-dip"):
        raise ValueError(f"method must be 'auto' or 'contrast-dip', got {method!r}")
    scores = FOCUS_SCORES if classic_scores else {}
    rows, mirror_slices = [], []
    for image in slices:
        contrast, prepared = _slice_evidence(image, pixel)
        rows.append((contrast, *(score(image) for score in scores.values())))
        mirror_slices.append(prepared)
    columns = np.asarray(rows, dtype=float).T
    profile = columns[0]
    _check_contrast(name, profile)
    profiles = {"contrast": profile, **dict(zip(scores, columns[1:], strict=True))}
    window = max(1, round(window_um / z_step))
    index, confidence, peaks, found_by = deepest_dip(profile, window)
    flip = sign_flip_focus(np.asarray(mirror_slices), z_step) if method == "auto" else None
    if flip is None:
        return FocusSuggestion(index, confidence, found_by, profile, profiles, peaks, z_step)
    profiles["mirror"] = flip.curve
    return FocusSuggestion(
        focus_index=flip.focus_index,
        confidence=flip.confidence,
        method=flip.method,
        profile=profile,
        profiles=profiles,
        peaks=peaks,
        z_step_um=z_step,
        runner_up=flip.runner_up,
    )


def _slices_of(stack: ZStack | np.ndarray) -> tuple[str, int, Iterator[np.ndarray]]:
    """Name (for messages), slice count and float32 slices of a stack or a checked array."""
    if isinstance(stack, ZStack):
        name = str(stack.path) if stack.path is not None else "<array>"
        # One slice in memory at a time (full frames are big).
        return name, stack.n_slices, stack.iter_slices()
    images = np.asarray(stack)
    if images.ndim != 3:
        problem = f"expected a (Z, Y, X) stack, got shape {images.shape}"
        raise StackError(describe("<array>", problem))
    if not np.isfinite(images).all():
        raise StackError(describe("<array>", "stack contains NaN or infinite values"))
    return "<array>", len(images), (image.astype(np.float32, copy=False) for image in images)


def contrast_problem(profile: np.ndarray) -> str | None:
    """Why a contrast profile has no focus to find (blank or identical slices), or None.

    Shared by :func:`suggest_focus` (stacks) and the scan autofocus of
    :mod:`napari_zfocus.acquisition.scan_focus` (frames taken at several z).
    """
    top = float(np.max(profile))
    if not top > MIN_CONTRAST:
        return ("no contrast: every slice is blank or constant (or not positive), "
                "so there is no focus to find")
    if float(np.ptp(profile)) <= MIN_RELATIVE_CONTRAST_CHANGE * top:
        return ("no contrast change along z: every slice looks the same, "
                "so there is no focus to find")
    return None


def _check_contrast(name: str, profile: np.ndarray) -> None:
    """Refuse a stack without contrast: any slice picked from it would be arbitrary."""
    problem = contrast_problem(profile)
    if problem is not None:
        raise StackError(describe(name, problem))


def deepest_dip(
    profile: np.ndarray, window: int, *, peak_tolerance: float | None = None
) -> tuple[int, float, tuple[int | None, int | None], str]:
    """Index, confidence, bounding peaks and method of the deepest bounded valley.

    Steps 2 and 3 of the module's method, on any contrast profile (one value per z,
    ascending z): ``window`` is how many samples from a candidate its bounding peaks may
    lie. ``method`` is ``"contrast-dip"`` when a valley has a peak on both sides, else
    ``"edge-minimum"`` (confidence 0, one peak ``None``).

    ``peak_tolerance`` (relative, e.g. 0.03) keeps only valleys whose bounding peaks are
    local maxima: no neighbour more than this fraction above them (an end sample has one
    neighbour; the tolerance lets a noisy plateau count). Coarse profiles (a z-scan every
    2 um) need it: the narrow in-focus dip falls between samples there, and any point of a
    long convex flank lies below the line to a far peak, which would outrank it.
    """
    values = np.asarray(profile, dtype=float)
    n = len(values)
    best: tuple[float, int, int, int] | None = None  # rank, index, left peak, right peak
    for i in range(1, n - 1):
        left = slice(max(0, i - window), i)
        right = slice(i + 1, min(n, i + window + 1))
        lp = left.start + int(np.argmax(values[left]))
        rp = right.start + int(np.argmax(values[right]))
        if min(values[lp], values[rp]) <= values[i]:
            continue  # not a valley
        if peak_tolerance is not None and not (
            _is_peak(values, lp, peak_tolerance) and _is_peak(values, rp, peak_tolerance)
        ):
            continue  # a rim on a flank, not a contrast peak
        # Rank by the depth below the line joining the two peaks, not below the lower
        # peak: out-of-focus layers (cells on the chamber ceiling) tilt the valley,
        # and the lower rim would pull the pick towards the lower side.
        rim_line = values[lp] + (values[rp] - values[lp]) * (i - lp) / (rp - lp)
        rank = rim_line - values[i]
        if best is None or rank > best[0]:
            best = (rank, i, lp, rp)
    if best is not None:
        _, index, lp, rp = best
        rim = min(values[lp], values[rp])
        depth = rim - values[index]
        confidence = float(np.clip(depth / rim, 0.0, 1.0)) if rim > 0 else 0.0
        return index, confidence, (lp, rp), "contrast-dip"
    # No valley with a peak on both sides: the focus is at (or beyond) an end of the
    # stack. Take the minimum on the far side of the strongest peak, i.e. the end.
    peak = int(np.argmax(values))
    side = values[:peak] if peak > (n - 1 - peak) else values[peak + 1 :]
    offset = 0 if peak > (n - 1 - peak) else peak + 1
    index = offset + int(np.argmin(side)) if len(side) else peak
    return index, 0.0, (peak, None) if index > peak else (None, peak), "edge-minimum"


def _is_peak(values: np.ndarray, index: int, tolerance: float) -> bool:
    """Whether no neighbour of ``values[index]`` is more than ``tolerance`` (relative) above."""
    neighbours = values[max(0, index - 1) : index + 2]
    return bool(values[index] >= neighbours.max() * (1.0 - tolerance))
