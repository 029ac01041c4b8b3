"""Physical bounds of the data every part of the program reads, written down once.

``annotations.csv`` rows, stack metadata overrides, the CLI flags and the simulator all
check z-steps and pixel sizes against these, so a dataset one command writes is one every
other command accepts. This module imports nothing heavy (no numpy, dask or torch): the
CLI parsers use it before any work starts.
"""

from __future__ import annotations

from typing import Any

from napari_zfocus.errors import ZFocusError
from napari_zfocus.validation import check_number

#: Distance between z-slices, um. 10 nm is below the step of any focus drive used for
#: bright-field stacks; 100 um between slices leaves no defocus signature to learn from
#: (a cell fades out within ~20 um of focus at NA 1.3).
Z_STEP_UM: tuple[float, float] = (0.01, 100.0)

#: Pixel size at the sample, um. 10 nm is finer than any camera sampling of an optical
#: microscope (a 100x objective with 6.5 um camera pixels gives 65 nm); 100 um per pixel is
#: a 0.1x macro view in which a 5 um yeast cell is less than a pixel.
PIXEL_SIZE_UM: tuple[float, float] = (0.01, 100.0)

#: Condenser (Koehler) aperture of a stack or a model's reference: above 0 (a pinhole)
#: and at most 1.6 (beyond the widest oil condenser).
CONDENSER_NA: tuple[float, float] = (0.01, 1.6)

#: Fewest slices of a z-stack: with one slice it is a 2-D image (the default of
#: :func:`napari_zfocus.data.read_stack`; training and evaluation need a z axis).
MIN_STACK_SLICES = 2

#: Fewest slices to suggest a focus: a contrast dip needs a slice on each side of it.
MIN_SUGGEST_SLICES = 3

#: Largest random seed: numpy's ``SeedSequence`` and ``torch.manual_seed`` take any
#: non-negative integer, but 32 bits is what every tool that logs or replays seeds keeps.
MAX_SEED = 2**32 - 1


def check_length_um(value: Any, name: str, bounds: tuple[float, float]) -> float:
    """``value`` as a float within ``bounds`` (inclusive, um); else one-line ZFocusError.

    The message keeps the wording ``"<name> must be a positive number of um ..."`` that
    the stack reader has always used, and states the allowed range.
    """
    lo, hi = bounds
    try:
        return float(check_number(value, name, lo=lo, hi=hi))
    except ZFocusError:
        raise ZFocusError(
            f"{name} must be a positive number of um within {lo:g}..{hi:g}, got {value!r}"
        ) from None


def check_z_step(value: Any, name: str = "z_step_um") -> float:
    """A z-step within :data:`Z_STEP_UM`."""
    return check_length_um(value, name, Z_STEP_UM)


def check_pixel_size_um(value: Any, name: str = "pixel_size_um") -> float:
    """A pixel size within :data:`PIXEL_SIZE_UM`."""
    return check_length_um(value, name, PIXEL_SIZE_UM)


__all__ = [
    "MAX_SEED",
    "MIN_STACK_SLICES",
    "MIN_SUGGEST_SLICES",
    "PIXEL_SIZE_UM",
    "Z_STEP_UM",
    "check_length_um",
    "check_pixel_size_um",
    "check_z_step",
]
