"""npe2 reader: open a z-stack as an Image layer in physical units (z um, y um, x um).

``get_reader`` follows napari's convention: it returns ``None`` for paths this plugin
cannot read (other file types, folders without TIFFs) so napari can try other readers.
For a path it accepts, a broken file raises :class:`~napari_zfocus.errors.StackError`
from the returned reader function; napari shows that one-line message as a notification.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_zfocus.data.stack import TIFF_SUFFIXES, ZStack, read_stack, stack_series, tiff_files_in
from napari_zfocus.errors import StackError, describe

LayerData = tuple[Any, dict[str, Any], str]
PathLike = str | os.PathLike[str]


def get_reader(path: PathLike | Sequence[PathLike]) -> Callable[[Any], list[LayerData]] | None:
    """Return :func:`read_stack_layers` if ``path`` looks like a z-stack, else ``None``."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None  # several files at once: not one stack
        path = path[0]
    candidate = Path(path)
    if candidate.is_dir():
        try:
            has_tiffs = bool(tiff_files_in(candidate))
        except OSError:
            return None
        return read_stack_layers if has_tiffs else None
    if candidate.suffix.lower() in TIFF_SUFFIXES:
        return read_stack_layers
    return None


def read_stack_layers(path: PathLike | Sequence[PathLike]) -> list[LayerData]:
    """Read one stack (one layer per series of a multi-position file) into napari layer
    data with its physical scale.

    Unknown z-step or pixel size count as 1 in the scale (napari's default) and as
    ``None`` in the metadata, so a widget can ask the user for them.
    """
    if isinstance(path, (list, tuple)):
        path = path[0]
    series = stack_series(path)
    if len(series) == 1:
        return [stack_layer_data(read_stack(path))]
    # Several same-shape series (stage positions): one layer each, named by series.
    name = _layer_name(Path(path))
    return [
        stack_layer_data(read_stack(path, series=i), name=f"{name} [series {i}]") for i in series
    ]


def stack_layer_data(stack: ZStack, name: str | None = None) -> LayerData:
    """Layer data tuple ``(data, kwargs, "image")`` for a :class:`ZStack`."""
    z_scale = stack.z_step_um if stack.z_step_um is not None else 1.0
    xy_scale = stack.pixel_size_um if stack.pixel_size_um is not None else 1.0
    kwargs: dict[str, Any] = {
        "name": name or _layer_name(stack.path),
        "scale": (z_scale, xy_scale, xy_scale),
        "metadata": {
            "path": str(stack.path) if stack.path is not None else None,
            "z_step_um": stack.z_step_um,
            "pixel_size_um": stack.pixel_size_um,
            "n_slices": stack.n_slices,
        },
        "colormap": "gray",
    }
    if (stack.z_step_um is not None or stack.pixel_size_um is not None) and _layers_take_units():
        kwargs["units"] = ("um", "um", "um")
    limits = _contrast_limits(stack)
    if limits is not None:
        # Given explicitly so napari does not scan a lazy multi-GB stack to find them.
        kwargs["contrast_limits"] = limits
    return stack.data, kwargs, "image"


def _layers_take_units() -> bool:
    """Whether this napari's layers accept ``units`` (added in napari 0.6)."""
    try:
        from napari.layers import Image
    except ImportError:  # plain use without napari: the tuple is harmless data
        return True
    return "units" in inspect.signature(Image.__init__).parameters


def _layer_name(path: Path | None) -> str:
    if path is None:
        return "z-stack"
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _contrast_limits(stack: ZStack) -> tuple[float, float] | None:
    """Robust limits from the middle slice (one slice read, whatever the stack size)."""
    try:
        middle = np.asarray(stack.data[stack.n_slices // 2])
    except (OSError, ValueError, RuntimeError) as exc:
        raise StackError(describe(stack.path, f"cannot read the middle slice ({exc})")) from exc
    finite = middle[np.isfinite(middle)] if middle.dtype.kind == "f" else middle
    if finite.size == 0:
        return None
    low, high = np.percentile(finite, (0.1, 99.9))
    if high <= low:
        low, high = float(finite.min()), float(finite.max())
    if high <= low:
        high = low + 1.0
    return float(low), float(high)
