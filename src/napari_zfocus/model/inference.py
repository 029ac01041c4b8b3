"""Fast inference: :class:`Predictor` (model loaded once), :class:`Prediction`, :class:`FocusMap`.

The live loop calls :meth:`Predictor.predict` on every camera frame, so the path from a
raw frame to a z estimate is kept short: centre crop in the frame's own pixels (a view),
one float conversion of the crop, average pooling, in-place normalisation, a forward pass
in ``torch.inference_mode`` with channels-last weights, and a numpy readout.
Optional ``torch.compile`` roughly halves the forward pass on CPU and falls back to eager
mode if compilation fails. On CUDA the forward pass runs under autocast (float16); these
runtime settings are :mod:`.torch_runtime`'s, the :class:`Prediction` type :mod:`.prediction`'s.

Tiled prediction (:meth:`Predictor.predict_tiles`) slides the model's field over a large
frame and returns a :class:`FocusMap` whose geometry is in the INPUT image's pixels, so a
widget can overlay a colour-mapped z map on the image it came from (see
:mod:`.focus_map`).

A calibrated model (:mod:`.calibration`) reports a calibrated confidence and an
out-of-distribution score per image (:attr:`Prediction.ood_score`); ``flagged`` marks an
image whose estimate should not be acted on (low confidence or out of distribution).
A model with a distance scale (:mod:`.distance_scale`) has every reading divided by its
gain; the calibration and OOD check still read the softmax in the model's own units.

Constructing a :class:`Predictor` leaves process-wide torch settings alone: torch's thread
count changes only when the caller asks for it (``num_threads``), as ``zfocus bench
--threads`` does.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from napari_zfocus._generators import run_to_end
from napari_zfocus.errors import ZFocusError
from napari_zfocus.model.calibration import Calibration
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.device import available_cores
from napari_zfocus.model.distance_scale import DistanceScale
from napari_zfocus.model.focus_map import FocusMap, iter_focus_map, tile_grid
from napari_zfocus.model.prediction import Prediction
from napari_zfocus.model.preprocess import prepare
from napari_zfocus.model.readout import BimodalRule, Readout, readout
from napari_zfocus.model.torch_runtime import autocast, compile_network

if TYPE_CHECKING:
    from napari_zfocus.model.io import LoadedModel

# Re-exported under its former private name (tests/model/test_inference.py imports it).
from napari_zfocus.model.torch_runtime import cudnn_benchmark as _cudnn_benchmark  # noqa: F401

# Prediction (the result), FocusMap (tiling) and available_cores (devices) live in
# .prediction, .focus_map and .device; they stay importable from here.
__all__ = ["Prediction", "FocusMap", "Predictor", "available_cores"]


class Predictor:
    """A model loaded once and ready to read z from images.

    Parameters
    ----------
    net
        The network (its weights are used as they are).
    config
        Its configuration.
    metadata
        Free metadata (from the model file).
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``... ``None`` picks CUDA when available.
    compile
        Try ``torch.compile`` (faster on CPU after a ~30-60 s first call); on any
        failure the predictor warns and stays in eager mode.
    num_threads
        Opt-in: set torch's intra-op threads to this many (``torch.set_num_threads``, a
        PROCESS-WIDE setting that every other torch user in the process then shares).
        ``None`` (default) leaves the process's setting as it is; a library object must
        not change global state behind its caller's back. Ignored on GPUs.
    bimodal_rule
        Thresholds of the bimodality flag.
    path
        The model file it came from (named in error messages).
    calibration
        The model's calibration; ``None``: uncalibrated (confidence as before, no OOD).
    distance_scale
        The model's gain on this microscope (readings are divided by it); ``None``: read
        distances as trained.
    """

    def __init__(
        self,
        net: nn.Module,
        config: ModelConfig,
        metadata: dict | None = None,
        *,
        device: str | torch.device | None = None,
        compile: bool = False,
        num_threads: int | None = None,
        bimodal_rule: BimodalRule | None = None,
        path: Path | None = None,
        calibration: Calibration | None = None,
        distance_scale: DistanceScale | None = None,
    ) -> None:
        self.config = config
        self.calibration = calibration
        self.distance_scale = distance_scale
        self.metadata = dict(metadata or {})
        self.path = path
        self.bimodal_rule = bimodal_rule or BimodalRule()
        from napari_zfocus.model.device import resolve_device

        self.device = resolve_device(device, "device")  # None / "auto": CUDA when present
        if num_threads is not None and self.device.type == "cpu":
            torch.set_num_threads(int(num_threads))  # explicitly asked for: see the docstring
        #: Torch's intra-op threads when the predictor was made (the process's setting).
        self.num_threads = torch.get_num_threads()
        # The network's bins, in its own units: what calibration and OOD were fitted on.
        self._bins = np.asarray(config.bin_centres_um, dtype=np.float64)
        self._gain = 1.0 if distance_scale is None else distance_scale.gain
        # channels_last: oneDNN's fastest convolution layout on CPU (11.4 vs 13.7 ms).
        net = net.to(self.device).eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.net = net
        self._forward: Any = net
        self.compiled = False
        if compile:
            self._try_compile()

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        device: str | torch.device | None = None,
        **kwargs: Any,
    ) -> Predictor:
        """Load a model file (see :func:`napari_zfocus.model.io.load_model`)."""
        from napari_zfocus.model.io import load_model

        return cls.from_loaded(load_model(path), device, **kwargs)

    @classmethod
    def from_loaded(
        cls, loaded: LoadedModel, device: str | torch.device | None = None, **kwargs: Any,
    ) -> Predictor:
        """A predictor of a model already read (``load_model``'s result), with its
        calibration and distance scale."""
        return cls(
            loaded.net, loaded.config, loaded.metadata, device=device, path=loaded.path,
            calibration=loaded.calibration, distance_scale=loaded.distance_scale, **kwargs,
        )

    def _try_compile(self) -> None:
        try:
            # Compiled now (batch 1) so a failure shows here, not in the live loop.
            compiled = compile_network(self.net, self.device, self.config.input_px)
        except Exception as exc:  # noqa: BLE001 - any compile failure falls back to eager mode
            warnings.warn(f"torch.compile failed, using eager mode: {exc}", stacklevel=3)
            return
        self._forward = compiled
        self.compiled = True

    # -- core -----------------------------------------------------------------------------
    def probabilities(self, batch: torch.Tensor) -> np.ndarray:
        """Softmax ``(N, n_bins)`` for a preprocessed batch ``(N, 1, n, n)``."""
        x = batch.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        # The compiled graph is specialised to batch 1 (the live path); other batch sizes
        # run eagerly instead of triggering a slow recompilation per new shape.
        forward = self._forward if x.shape[0] == 1 else self.net
        with torch.inference_mode(), autocast(self.device):
            logits = forward(x)
        return torch.softmax(logits.float(), dim=1).cpu().numpy().astype(np.float64)

    def warmup(self, n: int = 3) -> None:
        """Run ``n`` dummy forward passes (first calls allocate and pick kernels)."""
        side = self.config.input_px
        dummy = torch.zeros((1, 1, side, side))
        for _ in range(n):
            self.probabilities(dummy)

    def require_finite(self, probs: np.ndarray, what: str) -> np.ndarray:
        """Return ``probs``; raise if any is NaN or infinite (from non-finite logits).

        A model file with a valid hash can still compute NaN (a negative BatchNorm
        variance) or overflow (weights scaled by 1e30); its softmax must not be read as
        an answer. ``what`` names the input (``"image.tif"``).

        Raises
        ------
        ZFocusError
            ``"<model>: produced non-finite output (NaN or infinite) for <what>; ..."``.
        """
        if np.isfinite(probs).all():
            return probs
        model = self.path if self.path is not None else "the model"
        raise ZFocusError(
            f"{model}: produced non-finite output (NaN or infinite) for {what}; the model "
            "file is broken (e.g. a negative BatchNorm variance or overflowing weights)"
        )

    @property
    def calibrated(self) -> bool:
        """Whether the model's confidence is calibrated."""
        return self.calibration is not None

    def with_distance_scale(self, distance_scale: DistanceScale | None) -> Predictor:
        """This model on another microscope setting: readings divided by ``distance_scale``'s
        gain (``None``: as trained). The network, calibration and OOD check are shared
        with this predictor, not copied or reloaded."""
        other = copy.copy(self)
        other.distance_scale = distance_scale
        other._gain = 1.0 if distance_scale is None else distance_scale.gain
        return other

    @property
    def gain(self) -> float:
        """The model's gain on this microscope (1: reads distances as trained)."""
        return self._gain

    @property
    def bin_centres_um(self) -> np.ndarray:
        """The z-bins' centres on this microscope (the model's, divided by its gain)."""
        return self._bins / self._gain

    def _model_readout(self, probs: np.ndarray) -> Readout:
        """The readout in the network's own units, with the calibrated confidence."""
        r = readout(probs, self._bins, rule=self.bimodal_rule)
        if self.calibration is not None:
            r.confidence = self.calibration.confidence(probs, r.z_um, self._bins)
        return r

    def _rescaled(self, r: Readout) -> Readout:
        """``r`` with its distances divided by the model's gain (a copy when it is not 1)."""
        if self._gain == 1.0:
            return r
        g = self._gain
        return Readout(r.z_um / g, r.z_argmax_um / g, r.confidence, r.entropy, r.bimodal,
                       r.second_mode_um / g)

    def _readout(self, probs: np.ndarray) -> Readout:
        """The readout of the network's softmax on this microscope (see :attr:`bin_centres_um`)."""
        return self._rescaled(self._model_readout(probs))

    def _predictions(self, probs: np.ndarray, inputs: torch.Tensor) -> list[Prediction]:
        own = self._model_readout(probs)
        r = self._rescaled(own)
        cal = self.calibration
        ood = (cal.ood_scores(inputs, own.z_um, self._bins) if cal is not None
               else np.full(len(probs), np.nan))
        bins = self.bin_centres_um
        return [
            Prediction(
                z_um=float(r.z_um[i]),
                z_argmax_um=float(r.z_argmax_um[i]),
                confidence=float(r.confidence[i]),
                entropy=float(r.entropy[i]),
                bimodal=bool(r.bimodal[i]),
                softmax=probs[i],
                bin_centres_um=bins,
                second_mode_um=float(r.second_mode_um[i]),
                calibrated=cal is not None,
                ood_score=float(ood[i]),
                ood=bool(ood[i] > 1.0),
            )
            for i in range(len(probs))
        ]

    # -- public API -------------------------------------------------------------------------
    def predict(self, image: Any, pixel_size_um: float) -> Prediction:
        """Read z from one 2-D image (centre field crop, as the paper).

        Raises
        ------
        ZFocusError
            Not a 2-D numeric image, pixel size not > 0, image smaller than the model's
            field, or NaN/inf values in the field.

        Notes
        -----
        A model whose output is NaN or infinite gives ``z_um`` and ``confidence`` NaN
        (no exception: the live controller counts such frames as failures and stops
        safely); callers that report an answer check :meth:`require_finite` or the NaN.
        """
        x = prepare(image, pixel_size_um, self.config)
        return self._predictions(self.probabilities(x), x)[0]

    def predict_batch(
        self,
        images: Sequence[Any] | np.ndarray,
        pixel_size_um: float | Sequence[float],
        *,
        batch_size: int = 32,
    ) -> list[Prediction]:
        """Read z from several images (a list, or an ``(N, Y, X)`` array).

        ``pixel_size_um`` is one value or one per image. Images may differ in size.

        Raises
        ------
        ZFocusError
            As :meth:`predict`, and when the model's output is NaN or infinite
            (:meth:`require_finite`): a batch feeds metrics and suggestions, where a NaN
            would silently become a number (an ``argmin``, a mean).
        """
        n = len(images)
        one = np.ndim(pixel_size_um) == 0
        sizes: list[Any] = [pixel_size_um] * n if one else list(pixel_size_um)  # type: ignore[arg-type]
        if len(sizes) != n:
            raise ZFocusError(f"got {n} images but {len(sizes)} pixel sizes")
        out: list[Prediction] = []
        for start in range(0, n, batch_size):
            chunk = [
                prepare(images[i], sizes[i], self.config)
                for i in range(start, min(n, start + batch_size))
            ]
            x = torch.cat(chunk)
            probs = self.probabilities(x)
            for i, row in enumerate(probs):
                self.require_finite(row, f"image {start + i} of the {n} given")
            out += self._predictions(probs, x)
        return out

    def tile_geometry(
        self,
        image_shape: tuple[int, int],
        pixel_size_um: float,
        tile_um: float | None = None,
        stride_um: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray, int, int, int]:
        """Grid of tiles for :meth:`predict_tiles`: (tops, lefts, tile_px, stride_px, field_px)."""
        return tile_grid(self.config, image_shape, pixel_size_um, tile_um, stride_um).as_tuple()

    def iter_predict_tiles(
        self,
        image: Any,
        pixel_size_um: float,
        tile_um: float | None = None,
        stride_um: float | None = None,
        *,
        batch_size: int = 16,
        cancel: Any = None,
    ) -> Generator[tuple[int, int], None, FocusMap | None]:
        """Generator form of :meth:`predict_tiles` for napari workers.

        Yields ``(tiles_done, tiles_total)`` after every batch and returns the
        :class:`FocusMap` (``StopIteration.value``); returns ``None`` if ``cancel``
        (a callable or an object with ``is_set()``) asks to stop.
        """
        return (
            yield from iter_focus_map(
                self, image, pixel_size_um, tile_um, stride_um, batch_size=batch_size,
                cancel=cancel,
            )
        )

    def predict_tiles(
        self,
        image: Any,
        pixel_size_um: float,
        tile_um: float | None = None,
        stride_um: float | None = None,
        *,
        batch_size: int = 16,
    ) -> FocusMap:
        """Focus map of a large image: one prediction per tile, batched.

        Parameters
        ----------
        image
            2-D image at least one model field in size.
        pixel_size_um
            Its pixel size, um.
        tile_um
            Side of a tile (the area one value stands for); default the model's field.
            The model always reads a field-sized window centred on the tile.
        stride_um
            Grid step; default ``tile_um`` (no overlap).
        """
        focus_map = run_to_end(self.iter_predict_tiles(
            image, pixel_size_um, tile_um, stride_um, batch_size=batch_size
        ))
        assert focus_map is not None  # only a cancel returns None, and none was given
        return focus_map

