"""Physical sizes (z-step, pixel size) from the metadata of a TIFF file.

Sources, tried in this order (the first that gives a value wins, per quantity):

1. OME-XML: ``Pixels/@PhysicalSizeX`` and ``@PhysicalSizeZ`` with their units;
2. Micro-Manager: ``Summary`` (``z-step_um``, ``PixelSize_um``) or the per-image JSON tag
   51123 (``PixelSizeUm``, ``z-step_um``, or the ``ZPositionUm`` difference of two slices);
3. ImageJ: ``spacing`` and ``unit`` in the description, X resolution in pixels per unit;
4. plain TIFF resolution, only in centimetres / millimetres / micrometres (a resolution in
   inches is a print setting, such as the 72 dpi many programs write, never a pixel size).

Only the TIFF header and descriptions are read, never pixel data.

Values found are checked like the flags are (:func:`check_metadata_sizes`): a z-step or
pixel size outside :mod:`napari_zfocus.bounds` is refused naming the file and the
metadata field, unless the caller gives that size itself, and so are pixels that are
not square (X and Y sizes more than 1 % apart). A plain TIFF resolution outside the
bounds is ignored instead: it is a print setting, not a pixel size.
"""

from __future__ import annotations

import json
import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tifffile

from napari_zfocus.bounds import PIXEL_SIZE_UM, Z_STEP_UM, check_pixel_size_um, check_z_step
from napari_zfocus.errors import StackError, ZFocusError, describe

_log = logging.getLogger(__name__)

#: Length units seen in ImageJ / OME / Micro-Manager metadata, as micrometres per unit.
_UNIT_TO_UM: dict[str, float] = {
    "um": 1.0,
    "µm": 1.0,  # micro sign
    "μm": 1.0,  # Greek mu
    "\\u00b5m": 1.0,  # ImageJ writes the escape sequence literally
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "mm": 1e3,
    "millimeter": 1e3,
    "cm": 1e4,
    "centimeter": 1e4,
    "m": 1e6,
    "meter": 1e6,
}

#: Values at byte 8 of Micro-Manager files: multipage-TIFF index map, NDTiff.
_MM_HEADER_MAGIC = (54773648, 483729)

#: TIFF ResolutionUnit codes that describe a physical pixel size (2 = inch is left out).
_RESUNIT_TO_UM = {3: 1e4, 4: 1e3, 5: 1.0}

#: Largest relative difference of the X and Y pixel sizes of "square" pixels. The model
#: resamples both axes by one factor, so other pixels would reach it stretched.
SQUARE_PIXEL_TOLERANCE = 0.01


@dataclass(frozen=True)
class PhysicalSizes:
    """Z-step and pixel size in micrometres; ``None`` where the metadata is silent.

    ``pixel_size_um`` is the X size; ``pixel_size_y_um`` the Y size where the source
    states it separately. The ``*_source`` fields name the metadata field a value came
    from (``"ImageJ spacing"``), for messages.
    """

    z_step_um: float | None = None
    pixel_size_um: float | None = None
    pixel_size_y_um: float | None = None
    z_step_source: str = ""
    pixel_size_source: str = ""

    def merged(self, other: PhysicalSizes) -> PhysicalSizes:
        """Fill the values missing here from ``other`` (X, Y and source go together)."""
        z = self if self.z_step_um is not None else other
        px = self if self.pixel_size_um is not None else other
        return PhysicalSizes(
            z.z_step_um, px.pixel_size_um, px.pixel_size_y_um, z.z_step_source,
            px.pixel_size_source,
        )


def unit_to_um(unit: str | None) -> float | None:
    """Micrometres per ``unit`` (``"um"``, ``"µm"``, ``"micron"``, ``"nm"``...), or ``None``."""
    if unit is None:
        return None
    return _UNIT_TO_UM.get(unit.strip().lower())


def clean_size(value: Any, factor: float | None = 1.0) -> float | None:
    """A positive finite size in um, rounded to 9 significant digits, or ``None``.

    TIFF stores resolutions as rationals; rounding turns 6/25 px/unit back into exactly
    0.24 um instead of 0.24000000000000002.
    """
    if factor is None:
        return None
    try:
        number = float(value) * factor
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number <= 0:
        return None
    return float(f"{number:.9g}")


def checked_size(path: Path, name: str, value: float | None) -> float | None:
    """A z-step / pixel size given by the caller, within :mod:`napari_zfocus.bounds`.

    ``name`` is ``"z_step_um"`` or ``"pixel_size_um"``; ``None`` passes through.

    Raises
    ------
    StackError
        Out of bounds, the message naming ``path``.
    """
    if value is None:
        return None
    check = check_z_step if name == "z_step_um" else check_pixel_size_um
    try:
        return check(value, name)
    except ZFocusError as exc:
        raise StackError(describe(path, str(exc))) from None


def check_metadata_sizes(
    path: Path, sizes: PhysicalSizes, *, z_step_given: bool, pixel_size_given: bool
) -> None:
    """Refuse sizes from a file's metadata that the flags would refuse, and non-square pixels.

    A size the caller gives (a flag, an ``annotations.csv`` row) replaces the file's, so
    its metadata value is then not checked. Non-square pixels are refused either way:
    a pixel size cannot make them square.

    Raises
    ------
    StackError
        ``"<path>: z-step 1e+30 um from its ImageJ spacing metadata is outside ..."``.
    """
    checks = (
        (z_step_given, sizes.z_step_um, sizes.z_step_source, "z-step", Z_STEP_UM, "--z-step"),
        (pixel_size_given, sizes.pixel_size_um, sizes.pixel_size_source, "pixel size",
         PIXEL_SIZE_UM, "--pixel-size"),
    )
    for given, value, source, what, (lo, hi), flag in checks:
        if not given and value is not None and not lo <= value <= hi:
            raise StackError(describe(
                path, f"{what} {value:g} um from its {source or 'file'} metadata is outside "
                f"{lo:g}..{hi:g} um; give the {what} explicitly ({flag})"))
    x, y = sizes.pixel_size_um, sizes.pixel_size_y_um
    if x is not None and y is not None and abs(x - y) > SQUARE_PIXEL_TOLERANCE * max(x, y):
        raise StackError(describe(
            path, f"pixels are not square: X {x:g} um, Y {y:g} um ({sizes.pixel_size_source} "
            "metadata); the model needs square pixels, resample the image first"))


def read_physical_sizes(tif: tifffile.TiffFile) -> PhysicalSizes:
    """Collect the z-step and pixel size from every metadata source of an open file."""
    sizes = PhysicalSizes()
    readers: tuple[Callable[[tifffile.TiffFile], PhysicalSizes], ...] = (
        _from_ome,
        _from_micromanager,
        _from_imagej,
        _from_resolution,
    )
    for reader in readers:
        if sizes.z_step_um is not None and sizes.pixel_size_um is not None:
            break
        try:
            found = reader(tif)
        except Exception as exc:  # noqa: BLE001 - odd metadata must never stop an open
            _log.debug("%s: ignoring unreadable metadata: %r", tif.filehandle.name, exc)
            continue
        sizes = sizes.merged(found)
    return sizes


def _from_ome(tif: tifffile.TiffFile) -> PhysicalSizes:
    if not tif.is_ome or not tif.ome_metadata:
        return PhysicalSizes()
    root = ET.fromstring(tif.ome_metadata)
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return PhysicalSizes()

    def size(axis: str) -> float | None:
        # OME's default unit is the micrometre.
        unit = pixels.get(f"PhysicalSize{axis}Unit", "µm")
        return clean_size(pixels.get(f"PhysicalSize{axis}"), unit_to_um(unit))

    return PhysicalSizes(size("Z"), size("X"), size("Y"), "OME PhysicalSizeZ",
                         "OME PhysicalSizeX/Y")


def _pick(mapping: Mapping[str, Any], *keys: str) -> Any:
    lowered = {str(k).lower(): v for k, v in mapping.items()}
    for key in keys:
        if key.lower() in lowered:
            return lowered[key.lower()]
    return None


def _mm_page_metadata(page: Any) -> dict[str, Any]:
    tag = page.tags.get(51123) if page is not None and hasattr(page, "tags") else None
    if tag is None:
        return {}
    value = tag.value
    if isinstance(value, (bytes, str)):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def _mm_summary(tif: tifffile.TiffFile) -> dict[str, Any]:
    """The ``Summary`` of a Micro-Manager file header, or ``{}``.

    Only files that carry Micro-Manager's header magic at byte 8 are parsed: on other
    files tifffile would log a warning for every header field it cannot find.
    """
    fh = tif.filehandle
    fh.seek(8)
    raw = fh.read(4)
    if len(raw) < 4:
        return {}
    magic = int.from_bytes(raw, "little" if tif.byteorder == "<" else "big")
    if magic not in _MM_HEADER_MAGIC:
        return {}
    summary = tifffile.read_micromanager_metadata(fh, keys={"Summary"}).get("Summary")
    return summary if isinstance(summary, dict) else {}


def _from_micromanager(tif: tifffile.TiffFile) -> PhysicalSizes:
    if not tif.is_micromanager:
        return PhysicalSizes()
    z_step = pixel = None
    summary = _mm_summary(tif)
    if isinstance(summary, dict):
        z_step = clean_size(_pick(summary, "z-step_um", "ZStepUm", "z-step"))
        pixel = clean_size(_pick(summary, "PixelSize_um", "PixelSizeUm"))
    first = _mm_page_metadata(tif.pages[0])
    if pixel is None:
        pixel = clean_size(_pick(first, "PixelSizeUm", "PixelSize_um"))
    if z_step is None:
        z_step = clean_size(_pick(first, "z-step_um", "ZStepUm"))
    if z_step is None and len(tif.pages) > 1:
        # Per-image stage positions: the step between the first two planes.
        second = _mm_page_metadata(tif.pages[1])
        z0 = _pick(first, "ZPositionUm", "ZPositionUM")
        z1 = _pick(second, "ZPositionUm", "ZPositionUM")
        if z0 is not None and z1 is not None:
            z_step = clean_size(abs(float(z1) - float(z0)))
    return PhysicalSizes(z_step, pixel, None, "Micro-Manager z-step", "Micro-Manager PixelSizeUm")


def _from_imagej(tif: tifffile.TiffFile) -> PhysicalSizes:
    meta = tif.imagej_metadata
    if not tif.is_imagej or not meta:
        return PhysicalSizes()
    factor = unit_to_um(str(meta.get("unit", "")))
    z_step = clean_size(meta.get("spacing"), factor)
    pixel = pixel_y = None
    xres = _x_resolution(tif.pages[0])
    if xres is not None and factor is not None:
        pixel = clean_size(1.0 / xres, factor)
        yres = _x_resolution(tif.pages[0], "YResolution")
        pixel_y = clean_size(1.0 / yres, factor) if yres is not None else None
    return PhysicalSizes(z_step, pixel, pixel_y, "ImageJ spacing", "ImageJ X/YResolution")


def _from_resolution(tif: tifffile.TiffFile) -> PhysicalSizes:
    page = tif.pages[0]
    unit_tag = page.tags.get("ResolutionUnit")  # type: ignore[union-attr]
    factor = _RESUNIT_TO_UM.get(int(unit_tag.value)) if unit_tag is not None else None
    xres = _x_resolution(page)
    if xres is None or factor is None:
        return PhysicalSizes()
    pixel = clean_size(1.0 / xres, factor)
    lo, hi = PIXEL_SIZE_UM
    if pixel is None or not lo <= pixel <= hi:
        return PhysicalSizes()  # a print setting (72 dpi in cm), not a microscope's pixel
    yres = _x_resolution(page, "YResolution")
    pixel_y = clean_size(1.0 / yres, factor) if yres is not None else None
    return PhysicalSizes(None, pixel, pixel_y, "", "TIFF X/YResolution")


def _x_resolution(page: Any, tag_name: str = "XResolution") -> float | None:
    """Pixels per unit along X (or ``tag_name``), or ``None`` when absent or the
    meaningless default 1/1."""
    tag = page.tags.get(tag_name)
    if tag is None:
        return None
    value = tag.value
    if isinstance(value, tuple):
        num, den = value
        if not den:
            return None
        value = num / den
    value = float(value)
    if not math.isfinite(value) or value <= 0 or value == 1.0:
        return None
    return value
