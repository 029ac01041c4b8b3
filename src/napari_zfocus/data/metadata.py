"""Physical sizes (z-step, pixel size) from the metadata of a TIFF file.

Sources, tried in this order (the first that gives a value wins, per quantity):

1. OME-XML: ``Pixels/@PhysicalSizeX`` and ``@PhysicalSizeZ`` with their units;
2. Micro-Manager: ``Summary`` (``z-step_um``, ``PixelSize_um``) or the per-image JSON tag
   51123 (``PixelSizeUm``, ``z-step_um``, or the ``ZPositionUm`` difference of two slices);
3. ImageJ: ``spacing`` and ``unit`` in the description, X resolution in pixels per unit;
4. plain TIFF resolution, only in centimetres / millimetres / micrometres (a resolution in
   inches is a print setting, such as the 72 dpi many programs write, never a pixel size).

Only the TIFF header and descriptions are read, never pixel data.
"""

from __future__ import annotations

import json
import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import tifffile

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


@dataclass(frozen=True)
class PhysicalSizes:
    """Z-step and pixel size in micrometres; ``None`` where the metadata is silent."""

    z_step_um: float | None = None
    pixel_size_um: float | None = None

    def merged(self, other: PhysicalSizes) -> PhysicalSizes:
        """Fill the values missing here from ``other``."""
        return PhysicalSizes(
            self.z_step_um if self.z_step_um is not None else other.z_step_um,
            self.pixel_size_um if self.pixel_size_um is not None else other.pixel_size_um,
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

    return PhysicalSizes(size("Z"), size("X"))


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
    return PhysicalSizes(z_step, pixel)


def _from_imagej(tif: tifffile.TiffFile) -> PhysicalSizes:
    meta = tif.imagej_metadata
    if not tif.is_imagej or not meta:
        return PhysicalSizes()
    factor = unit_to_um(str(meta.get("unit", "")))
    z_step = clean_size(meta.get("spacing"), factor)
    pixel = None
    xres = _x_resolution(tif.pages[0])
    if xres is not None and factor is not None:
        pixel = clean_size(1.0 / xres, factor)
    return PhysicalSizes(z_step, pixel)


def _from_resolution(tif: tifffile.TiffFile) -> PhysicalSizes:
    page = tif.pages[0]
    unit_tag = page.tags.get("ResolutionUnit")
    factor = _RESUNIT_TO_UM.get(int(unit_tag.value)) if unit_tag is not None else None
    xres = _x_resolution(page)
    if xres is None or factor is None:
        return PhysicalSizes()
    return PhysicalSizes(None, clean_size(1.0 / xres, factor))


def _x_resolution(page: Any) -> float | None:
    """Pixels per unit along X, or ``None`` when absent or the meaningless default 1/1."""
    tag = page.tags.get("XResolution")
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
