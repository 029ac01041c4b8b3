"""Tiled prediction: a :class:`FocusMap` of z estimates over a large image.

:func:`iter_focus_map` slides the model's field over a frame in batches (the work behind
:meth:`Predictor.predict_tiles <napari_zfocus.model.inference.Predictor.predict_tiles>`);
the map's geometry is in the INPUT image's pixels, so a widget can overlay a colour-mapped
z map on the image it came from.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from napari_zfocus.errors import ZFocusError
from napari_zfocus.model.preprocess import (
    _check_finite,
    check_image,
    check_pixel_size,
    crop_window,
    field_source_px,
    normalise,
    to_model_grid,
)

if TYPE_CHECKING:
    from napari_zfocus.model.config import ModelConfig
    from napari_zfocus.model.inference import Predictor

__all__ = ["FocusMap", "TileGrid", "cancel_requested", "iter_focus_map", "tile_grid"]


@dataclass
class FocusMap:
    """Tiled prediction over a large image: one z estimate per tile.

    Tile ``(i, j)`` covers input pixels ``tops[i] : tops[i] + tile_px`` (rows) and
    ``lefts[j] : lefts[j] + tile_px`` (columns). The model read a ``field_px`` window
    centred on the tile (shifted inward at the image border so that it fits).

    Attributes
    ----------
    z_um, z_argmax_um, confidence, entropy
        ``(rows, cols)`` float arrays.
    bimodal
        ``(rows, cols)`` bool.
    softmax
        ``(rows, cols, n_bins)``.
    bin_centres_um
        ``(n_bins,)``.
    tops, lefts
        Top row / left column of every tile row / column, input pixels.
    tile_px, stride_px, field_px
        Tile side, grid step and model window side, input pixels.
    pixel_size_um
        Pixel size of the input image.
    image_shape
        ``(Y, X)`` of the input image.
    """

    z_um: np.ndarray
    z_argmax_um: np.ndarray
    confidence: np.ndarray
    entropy: np.ndarray
    bimodal: np.ndarray
    softmax: np.ndarray
    bin_centres_um: np.ndarray
    tops: np.ndarray
    lefts: np.ndarray
    tile_px: int
    stride_px: int
    field_px: int
    pixel_size_um: float
    image_shape: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the tile grid."""
        return (len(self.tops), len(self.lefts))

    def boxes(self) -> np.ndarray:
        """``(rows, cols, 4)`` int boxes ``[top, left, bottom, right]`` (exclusive), input px."""
        rows, cols = self.shape
        out = np.empty((rows, cols, 4), dtype=np.int64)
        out[..., 0] = self.tops[:, None]
        out[..., 1] = self.lefts[None, :]
        out[..., 2] = out[..., 0] + self.tile_px
        out[..., 3] = out[..., 1] + self.tile_px
        return out

    def centres_px(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of every tile centre, input pixel coordinates (pixel centres at
        integers, the napari convention)."""
        half = (self.tile_px - 1) / 2.0
        return self.tops + half, self.lefts + half

    def layer_transform(
        self, in_um: bool = False
    ) -> tuple[tuple[float, float], tuple[float, float]]:
        """``(scale, translate)`` that overlays a ``(rows, cols)`` array on the input image.

        Each map pixel becomes a ``stride x stride`` square centred on its tile's centre.
        With ``in_um`` the values are in um (for an image layer scaled by its pixel size),
        otherwise in input pixels.
        """
        cy, cx = self.centres_px()
        f = self.pixel_size_um if in_um else 1.0
        scale = (self.stride_px * f, self.stride_px * f)
        translate = (float(cy[0]) * f, float(cx[0]) * f)
        return scale, translate


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of a focus map lie, in input pixels (see :class:`FocusMap`)."""

    tops: np.ndarray
    lefts: np.ndarray
    tile_px: int
    stride_px: int
    field_px: int

    def as_tuple(self) -> tuple[np.ndarray, np.ndarray, int, int, int]:
        """``(tops, lefts, tile_px, stride_px, field_px)``."""
        return self.tops, self.lefts, self.tile_px, self.stride_px, self.field_px


def _grid(length: int, tile: int, stride: int) -> np.ndarray:
    """Tile origins along one axis: as many as fit, the grid centred in the image."""
    n = (length - tile) // stride + 1
    offset = (length - tile - (n - 1) * stride) // 2
    return offset + stride * np.arange(n, dtype=np.int64)


def tile_grid(
    config: ModelConfig,
    image_shape: tuple[int, int],
    pixel_size_um: float,
    tile_um: float | None = None,
    stride_um: float | None = None,
) -> TileGrid:
    """Grid of tiles of side ``tile_um`` (default the model's field) every ``stride_um``.

    Raises
    ------
    ZFocusError
        Pixel size, tile or stride not > 0, or an image smaller than one tile / field.
    """
    px = check_pixel_size(pixel_size_um)
    field_px = field_source_px(px, config)
    tile_um = config.field_um if tile_um is None else float(tile_um)
    stride_um = tile_um if stride_um is None else float(stride_um)
    if not (tile_um > 0 and stride_um > 0):
        raise ZFocusError(f"tile ({tile_um} um) and stride ({stride_um} um) must be > 0")
    tile_px = field_px if tile_um == config.field_um else max(1, int(round(tile_um / px)))
    stride_px = max(1, int(round(stride_um / px)))
    h, w = int(image_shape[0]), int(image_shape[1])
    if h < max(tile_px, field_px) or w < max(tile_px, field_px):
        side = max(tile_px, field_px)
        raise ZFocusError(
            f"image is {h} x {w} px ({h * px:.1f} x {w * px:.1f} um), smaller than one "
            f"tile/field of {side} px ({side * px:.1f} um)"
        )
    return TileGrid(
        _grid(h, tile_px, stride_px), _grid(w, tile_px, stride_px), tile_px, stride_px, field_px
    )


def iter_focus_map(
    predictor: Predictor,
    image: Any,
    pixel_size_um: float,
    tile_um: float | None = None,
    stride_um: float | None = None,
    *,
    batch_size: int = 16,
    cancel: Any = None,
) -> Generator[tuple[int, int], None, FocusMap | None]:
    """Yield ``(tiles_done, tiles_total)`` per batch; return the :class:`FocusMap`, or
    ``None`` when ``cancel`` asks to stop (see :func:`cancel_requested`)."""
    check_image(image)
    px = check_pixel_size(pixel_size_um)
    h, w = int(image.shape[0]), int(image.shape[1])
    grid = tile_grid(predictor.config, (h, w), px, tile_um, stride_um)
    field_px = grid.field_px
    # Window of the model's field centred on each tile, clamped inside the image.
    offset = (grid.tile_px - field_px) // 2
    win_tops = np.clip(grid.tops + offset, 0, h - field_px)
    win_lefts = np.clip(grid.lefts + offset, 0, w - field_px)
    coords = [(int(t), int(lf)) for t in win_tops for lf in win_lefts]
    total = len(coords)
    probs = np.empty((total, predictor.config.n_bins))
    for start in range(0, total, batch_size):
        if cancel_requested(cancel):
            return None
        windows = [
            crop_window(image, t, lf, field_px) for t, lf in coords[start : start + batch_size]
        ]
        x = torch.cat([to_model_grid(win, px, predictor.config) for win in windows])
        _check_finite(x)
        probs[start : start + len(windows)] = predictor.require_finite(
            predictor.probabilities(normalise(x)), f"tile {start + 1}..{start + len(windows)} "
            f"of {total}"
        )
        yield min(total, start + batch_size), total
    return _assemble(predictor, probs, grid, px, (h, w))


def _assemble(
    predictor: Predictor, probs: np.ndarray, grid: TileGrid, px: float, shape: tuple[int, int]
) -> FocusMap:
    """The focus map of the tiles' softmax rows (row-major over the grid)."""
    rows, cols = len(grid.tops), len(grid.lefts)
    r = predictor._readout(probs)
    return FocusMap(
        z_um=r.z_um.reshape(rows, cols),
        z_argmax_um=r.z_argmax_um.reshape(rows, cols),
        confidence=r.confidence.reshape(rows, cols),
        entropy=r.entropy.reshape(rows, cols),
        bimodal=r.bimodal.reshape(rows, cols),
        softmax=probs.reshape(rows, cols, -1),
        bin_centres_um=predictor.bin_centres_um,
        tops=grid.tops,
        lefts=grid.lefts,
        tile_px=grid.tile_px,
        stride_px=grid.stride_px,
        field_px=grid.field_px,
        pixel_size_um=px,
        image_shape=shape,
    )


def cancel_requested(cancel: Any) -> bool:
    """True when a cancel token (callable, ``is_set()``, or ``.cancelled``) says stop."""
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    if hasattr(cancel, "cancelled"):
        value = cancel.cancelled
        return bool(value() if callable(value) else value)
    if callable(cancel):
        return bool(cancel())
    return False
