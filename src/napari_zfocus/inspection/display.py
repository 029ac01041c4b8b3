"""Qt-free helpers of the inspection widget: model summary, image planes, focus-map geometry.

Everything the inspection dock computes lives here so it can be tested without Qt:

* :func:`describe_model` -- the rows of the model summary (architecture, field, bins,
  training, validation metrics);
* :func:`pixel_size_from_layer` -- the pixel size of an image layer in um, or None when
  the layer does not say (napari's default scale of 1 with no unit);
* :func:`displayed_plane` -- the 2-D plane of an n-D array at the viewer's current point;
* :func:`focus_map_transform` / :func:`tile_index` -- scale/translate that put a
  :class:`~napari_zfocus.model.inference.FocusMap` on top of the image it came from, and
  the inverse (which tile lies under the cursor).

The metrics table lives in :mod:`napari_zfocus.inspection.metrics_table` (shared with the CLI).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from napari_zfocus.errors import ZFocusError
from napari_zfocus.inspection.metrics_table import format_value as _fmt

__all__ = [
    "describe_model",
    "describe_model_text",
    "displayed_plane",
    "focus_map_summary",
    "focus_map_transform",
    "pixel_size_from_layer",
    "prediction_texts",
    "tile_index",
    "tile_text",
]

#: Validation metrics of a training record shown in the model summary: (key, format).
_VALIDATION_SHOWN = (
    ("median_abs_error_um", "median |error| {:.2f} um"),
    ("within_1um", "{:.0%} within 1 um"),
    ("argmax_within_1um", "argmax {:.0%} within 1 um"),
    ("n_images", "on {:.0f} images"),
)

_UM_UNITS = {"um", "µm", "micrometer", "micron", "micrometre"}


def describe_model(
    config: Any, metadata: dict | None = None, info: dict | None = None
) -> list[tuple[str, str]]:
    """Human-readable ``(label, value)`` rows describing a model file.

    Parameters
    ----------
    config
        The model's :class:`~napari_zfocus.model.config.ModelConfig`.
    metadata
        The free metadata of the file (``"training"`` summary written by training).
    info
        File facts from :func:`~napari_zfocus.model.io.load_model` (versions, date,
        whether it is calibrated).
    """
    rows = [
        (
            "architecture",
            f"{config.architecture} conv {list(config.conv_features)}, fc {config.fc_features}",
        ),
        (
            "field",
            f"{config.field_um:g} um at {config.pixel_size_um:g} um/px ({config.input_px} px)",
        ),
        (
            "z bins",
            f"{config.n_bins} x {config.bin_um:g} um, "
            f"{config.z_min_um:+g} .. {config.z_max_um:+g} um",
        ),
    ]
    training = (metadata or {}).get("training")
    if isinstance(training, dict):
        rows += _training_rows(training)
    else:
        rows.append(("training", "no training record in the file"))
    for key, value in (metadata or {}).items():
        if key != "training" and isinstance(value, (str, int, float, bool)):
            rows.append((str(key), _fmt(value)))
    if info and "calibrated" in info:
        rows.append(("confidence", "calibrated: P(within +/-1 um)"
                     if info["calibrated"] else
                     "uncalibrated (softmax mass within +/-1 bin; no OOD check)"))
    gain = (info or {}).get("distance_scale")  # load_model's: the gain, None if never measured
    reference = getattr(config, "reference_condenser_na", None)
    if reference is not None:
        rows.append(("distances", _aperture_row(reference, gain)))
    elif gain == 1.0:
        rows.append(("distances", "as trained (zfocus rescale measured no change)"))
    elif gain is not None:
        rows.append(("distances", f"rescaled: readings divided by {gain:.2f} "
                                  "(zfocus rescale)"))
    if info:
        made = info.get("created_utc") or "?"
        version = info.get("napari_zfocus_version") or "?"
        rows.append(("file", f"written {made} by napari-zfocus {version}"))
    return rows


def _aperture_row(reference: float, gain: float | None) -> str:
    """The distances row of a model that reads them as at a reference aperture."""
    head = f"as at condenser aperture {reference:g}"
    if gain is None or gain == 1.0:
        return head + " (zfocus rescale --condenser-na sets a microscope's)"
    return f"{head}; on this microscope divided by {gain:.2f} (aperture {reference * gain:.2f})"


def describe_model_text(rows: Sequence[tuple[str, str]]) -> str:
    """The rows of :func:`describe_model` as aligned ``label  value`` lines."""
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _training_rows(training: dict) -> list[tuple[str, str]]:
    """Rows summarising the ``"training"`` record a training run wrote into the file."""
    parts = []
    if "steps" in training:
        parts.append(f"{training['steps']} steps")
    if "train_stacks" in training:
        parts.append(f"{training['train_stacks']} train stacks")
    val = training.get("val_stacks")
    if isinstance(val, list):
        parts.append(f"{len(val)} validation stacks")
    if training.get("elapsed_s") is not None:
        minutes = float(training["elapsed_s"]) / 60
        parts.append(f"{minutes:.1f} min on {training.get('device', '?')}")
    if training.get("cancelled"):
        parts.append("stopped early")
    rows = [("training", ", ".join(parts) or "-")]
    if training.get("dataset"):
        rows.append(("data", str(training["dataset"])))
    metrics = training.get("validation")
    if isinstance(metrics, dict) and metrics:
        shown = [fmt.format(float(metrics[k])) for k, fmt in _VALIDATION_SHOWN
                 if isinstance(metrics.get(k), (int, float))]
        if not shown:  # an unfamiliar record: show its first entries raw
            shown = [f"{k} {_fmt(v)}" for k, v in list(metrics.items())[:4]]
        rows.append(("validation", ", ".join(shown)))
    return rows


def pixel_size_from_layer(
    scale: Sequence[float], metadata: dict | None = None, units: Sequence[Any] | None = None
) -> float | None:
    """Pixel size (um) of an image layer, or None when unknown.

    Looks at, in order: ``metadata["pixel_size_um"]`` (set by the zfocus reader), the
    last scale value when the layer's unit says micrometres, and any last scale value
    other than napari's default 1.0 (a scale the user or a reader chose deliberately).
    """
    meta = metadata or {}
    value = meta.get("pixel_size_um")
    if value is not None:
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = math.nan
        if v > 0 and math.isfinite(v):
            return v
    s = float(scale[-1]) if len(scale) else 1.0
    if units is not None and len(units) and str(units[-1]).lower() in _UM_UNITS and s > 0:
        return s
    if s > 0 and math.isfinite(s) and not math.isclose(s, 1.0):
        return s
    return None


def displayed_plane(data: Any, data_point: Sequence[float], *, rgb: bool = False) -> Any:
    """The (Y, X) plane of ``data`` at ``data_point`` (the leading axes rounded and clipped).

    Returns a view/lazy slice (dask stays lazy: compute it in a worker).

    Raises
    ------
    ZFocusError
        For RGB or 1-D data (the model reads one grey channel).
    """
    if rgb:
        raise ZFocusError("the model reads single-channel bright-field images, not RGB")
    ndim = len(data.shape)
    if ndim < 2:
        raise ZFocusError(f"need a 2-D image or a stack, got {ndim}-D data")
    lead = []
    for axis in range(ndim - 2):
        p = data_point[axis] if axis < len(data_point) else 0.0
        p = 0.0 if not math.isfinite(float(p)) else float(p)
        lead.append(int(np.clip(round(p), 0, data.shape[axis] - 1)))
    return data[tuple(lead)] if lead else data


def focus_map_transform(
    focus_map: Any,
    layer_scale_yx: Sequence[float] = (1.0, 1.0),
    layer_translate_yx: Sequence[float] = (0.0, 0.0),
) -> tuple[tuple[float, float], tuple[float, float]]:
    """``(scale, translate)`` of a focus-map layer over the image layer it was computed on.

    A map pixel covers ``stride x stride`` input pixels centred on its tile's centre; the
    image layer's own scale and translate are applied on top, so both layers share world
    coordinates.
    """
    (sy, sx), (ty, tx) = focus_map.layer_transform(in_um=False)
    ly, lx = (float(v) for v in layer_scale_yx)
    oy, ox = (float(v) for v in layer_translate_yx)
    return (sy * ly, sx * lx), (oy + ty * ly, ox + tx * lx)


def tile_index(data_coords: Sequence[float], shape: tuple[int, int]) -> tuple[int, int] | None:
    """Tile ``(row, col)`` at focus-map data coordinates, or None outside the map."""
    if len(data_coords) < 2:
        return None
    y, x = float(data_coords[-2]), float(data_coords[-1])
    if not (math.isfinite(y) and math.isfinite(x)):
        return None
    i, j = int(round(y)), int(round(x))
    if 0 <= i < shape[0] and 0 <= j < shape[1]:
        return i, j
    return None


def tile_text(focus_map: Any, i: int, j: int) -> str:
    """One line describing tile ``(i, j)`` of a focus map."""
    flag = ", BIMODAL" if focus_map.bimodal[i, j] else ""
    return (
        f"tile ({i}, {j}): z {focus_map.z_um[i, j]:+.2f} um, "
        f"confidence {focus_map.confidence[i, j]:.2f}{flag}"
    )


def focus_map_summary(focus_map: Any) -> str:
    """One line describing a whole focus map (tiles and z range)."""
    rows, cols = focus_map.shape
    return (
        f"{rows} x {cols} tiles; "
        f"z {np.nanmin(focus_map.z_um):+.1f} .. {np.nanmax(focus_map.z_um):+.1f} um. "
        "Hover a tile to see its softmax."
    )


def prediction_texts(prediction: Any) -> dict[str, str]:
    """The dock's value labels for one prediction: z, argmax bin, confidence, bimodal.

    The confidence says what it is: a calibrated probability of being within +/-1 um, or
    the uncalibrated softmax mass; and whether the image is out of the model's world.
    """
    if getattr(prediction, "ood", False):
        what = f", OUT OF DISTRIBUTION (score {prediction.ood_score:.1f})"
    elif getattr(prediction, "calibrated", False):
        what = " (P within +/-1 um)"
    else:
        what = " (uncalibrated)"
    return {
        "z": f"{prediction.z_um:+.2f} um",
        "argmax": f"{prediction.z_argmax_um:+.1f} um",
        "confidence": f"{prediction.confidence:.2f}{what}",
        "bimodal": "YES (ambiguous)" if prediction.bimodal else "no",
    }
