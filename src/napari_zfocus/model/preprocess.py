"""Turn a raw bright-field image into the network's input, in physical units.

A model sees a square field of ``config.field_um`` sampled at ``config.pixel_size_um``.
Any image of known pixel size is brought to that grid:

1. **Crop first.** The centre field is cut from the raw frame in the frame's own pixels
   (a numpy view, no copy), so only ~1 MPixel of a 3 MPixel camera frame is converted to
   float and resampled (0.4 ms instead of several ms on 2 CPU cores).
2. **Resample.** An integer downsampling factor (0.06 -> 0.24 um/px is 4x) uses
   ``avg_pool2d`` (area averaging, the paper's downsampling, and the fastest); a
   non-integer factor uses ``interpolate(mode="area")``; an input coarser than the model
   is upsampled bilinearly.
3. **Normalise** each image to zero mean and unit variance (a constant image gives zeros,
   never NaN), so exposure and lamp brightness do not shift the prediction.

An image smaller than the model's field is **refused** with a clear error rather than
padded: padding invents content the network never saw in training, and a silently wrong
z estimate is worse than an error the user can fix (larger frame, smaller-field model).
For the same reason an image whose pixels are much coarser than the model's is refused
(upsampling cannot restore the detail the network reads), and so is an absurd
downsampling factor (:func:`check_resampling`).

The training loop reuses :func:`field_source_px`, :func:`to_model_grid`,
:func:`resample` and :func:`normalise` so training and inference see identical inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from napari_zfocus.errors import ZFocusError
from napari_zfocus.model.config import ModelConfig

#: Relative tolerance under which a resampling factor counts as an integer (0.24 / 0.06
#: is 3.9999999999999996 in floating point). 1e-3 drifts < 0.25 px over a 250 px field.
INTEGER_FACTOR_TOL = 1e-3

#: Largest factor by which an image may be UPSAMPLED to the model's grid. Pixels more than
#: 2x coarser than the model's have lost the fine texture the network reads; bilinear
#: interpolation cannot restore it, and the model then answers confidently but wrongly.
MAX_UPSAMPLING = 2.0
#: Largest DOWNSAMPLING factor. 60 nm camera pixels to a 1.2 um/px model is 20x and
#: normal; beyond 100x the pixel size is almost surely wrong (nm entered as um) and the
#: model's field would be a crop of over 10^8 pixels.
MAX_DOWNSAMPLING = 100.0
#: Above this magnitude :func:`normalise` rescales an image first: squares of float32
#: values beyond ~1.8e19 overflow, and a camera never gives more than ~1e9 counts.
_LARGE_VALUE = 1e15

__all__ = [
    "MAX_DOWNSAMPLING",
    "MAX_UPSAMPLING",
    "check_image",
    "check_pixel_size",
    "check_resampling",
    "integer_factor",
    "field_source_px",
    "centre_crop",
    "crop_window",
    "resample",
    "to_model_grid",
    "normalise",
    "prepare",
    "prepare_batch",
]


def check_pixel_size(pixel_size_um: Any) -> float:
    """Return ``pixel_size_um`` as a float; raise :class:`ZFocusError` unless finite and > 0."""
    try:
        value = float(pixel_size_um)
    except (TypeError, ValueError):
        raise ZFocusError(f"pixel size must be a number of um, got {pixel_size_um!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise ZFocusError(f"pixel size must be a positive number of um, got {pixel_size_um}")
    return value


def check_resampling(pixel_size_um: Any, model_pixel_size_um: float) -> float:
    """Return the image pixel size if the model's grid can be reached from it, else raise.

    Allowed: at most :data:`MAX_UPSAMPLING` times coarser and at most
    :data:`MAX_DOWNSAMPLING` times finer than the model's pixel size.

    Raises
    ------
    ZFocusError
        ``"pixel size 5 um/px is 4.2x coarser than the model's 1.2 um/px; allowed ..."``.
    """
    px = check_pixel_size(pixel_size_um)
    model = float(model_pixel_size_um)
    factor = model / px  # > 1: downsampling
    # A hair of slack so that exactly 2x (e.g. 0.48 -> 0.24) passes despite rounding.
    if factor * MAX_UPSAMPLING >= 1 - 1e-9 and factor <= MAX_DOWNSAMPLING * (1 + 1e-9):
        return px
    how = f"{1 / factor:.3g}x coarser" if factor < 1 else f"{factor:.3g}x finer"
    raise ZFocusError(
        f"pixel size {px:g} um/px is {how} than the model's {model:g} um/px; allowed "
        f"{model / MAX_DOWNSAMPLING:.3g}..{model * MAX_UPSAMPLING:.3g} um/px (at most "
        f"{MAX_UPSAMPLING:g}x upsampling, {MAX_DOWNSAMPLING:g}x downsampling)"
    )


def check_image(image: Any) -> Any:
    """Check that ``image`` is a 2-D numeric array (numpy, dask, or tensor); return it.

    Finiteness is checked later, on the resampled field only (cheap, and NaN outside the
    field cannot affect the prediction).
    """
    ndim = getattr(image, "ndim", None)
    dtype = getattr(image, "dtype", None)
    if ndim is None or dtype is None:
        image = np.asarray(image)
        ndim, dtype = image.ndim, image.dtype
    if ndim != 2:
        shape = tuple(getattr(image, "shape", ()))
        raise ZFocusError(f"expected a 2-D image (Y, X), got an array of shape {shape}")
    if isinstance(dtype, torch.dtype):
        ok = dtype.is_floating_point or dtype in (
            torch.uint8,
            torch.int8,
            torch.int16,
            torch.int32,
            torch.int64,
            torch.uint16,
        )
    else:
        # bool is refused: a mask, not the grey levels of a bright-field image.
        ok = np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)
    if not ok:
        raise ZFocusError(f"expected a numeric grey-level image, got dtype {dtype}")
    return image


def integer_factor(factor: float) -> int | None:
    """``round(factor)`` if ``factor`` is (nearly) a positive integer, else ``None``."""
    k = int(round(factor))
    if k >= 1 and abs(factor - k) <= INTEGER_FACTOR_TOL * k:
        return k
    return None


def field_source_px(pixel_size_um: float, config: ModelConfig) -> int:
    """Side, in the input image's pixels, of the crop that covers the model's field.

    For an integer downsampling factor ``k`` this is exactly ``k * config.input_px`` so
    that average pooling yields ``input_px`` without rounding.
    """
    pixel_size_um = check_resampling(pixel_size_um, config.pixel_size_um)
    k = integer_factor(config.pixel_size_um / pixel_size_um)
    if k is not None:
        return k * config.input_px
    return max(1, int(round(config.field_um / pixel_size_um)))


def _crop_origin(shape: Sequence[int], size: int) -> tuple[int, int]:
    h, w = int(shape[-2]), int(shape[-1])
    return (h - size) // 2, (w - size) // 2


def _too_small(shape: Sequence[int], size: int, pixel_size_um: float | None) -> ZFocusError:
    h, w = int(shape[-2]), int(shape[-1])
    if pixel_size_um:
        return ZFocusError(
            f"image is {h} x {w} px ({h * pixel_size_um:.1f} x {w * pixel_size_um:.1f} um at "
            f"{pixel_size_um:g} um/px), smaller than the model's field of {size} px "
            f"({size * pixel_size_um:.1f} um); use a larger image or a smaller-field model"
        )
    return ZFocusError(f"image is {h} x {w} px, smaller than the {size} x {size} px crop")


def centre_crop(image: Any, size: int, *, pixel_size_um: float | None = None) -> Any:
    """Centre ``size x size`` crop of the last two axes (a view for numpy/torch).

    Raises
    ------
    ZFocusError
        When the image is smaller than ``size`` in either direction (see module doc:
        we refuse rather than pad).
    """
    top, left = _crop_origin(image.shape, size)
    if top < 0 or left < 0:
        raise _too_small(image.shape, size, pixel_size_um)
    return image[..., top : top + size, left : left + size]


def crop_window(image: Any, top: int, left: int, size: int) -> Any:
    """``size x size`` window at (``top``, ``left``) of the last two axes, checked to fit."""
    h, w = int(image.shape[-2]), int(image.shape[-1])
    if top < 0 or left < 0 or top + size > h or left + size > w:
        raise ZFocusError(
            f"window {size} px at ({top}, {left}) does not fit in a {h} x {w} px image"
        )
    return image[..., top : top + size, left : left + size]


def _as_float4d(image: Any) -> torch.Tensor:
    """(H, W), (C, H, W) or (N, C, H, W) array/tensor -> float32 tensor (N, C, H, W)."""
    if isinstance(image, torch.Tensor):
        x = image if image.dtype.is_floating_point else image.to(torch.float32)
        x = x.to(torch.float32)
    else:
        # Converts (and copies) only what it is given: callers crop before calling.
        x = torch.from_numpy(np.ascontiguousarray(np.asarray(image), dtype=np.float32))
    while x.ndim < 4:
        x = x.unsqueeze(0)
    return x


def resample(image: Any, from_px_um: float, to_px_um: float) -> torch.Tensor:
    """Resample an image from ``from_px_um`` to ``to_px_um`` per pixel.

    Parameters
    ----------
    image
        (H, W), (C, H, W) or (N, C, H, W) numpy array or tensor.
    from_px_um, to_px_um
        Pixel size of the input and of the output, um.

    Returns
    -------
    torch.Tensor
        float32 (N, C, H', W'). Integer downsampling ``k`` gives ``floor(H / k)`` rows
        (area average over k x k blocks); other factors give ``round(H * from / to)``.

    Raises
    ------
    ZFocusError
        A factor beyond :func:`check_resampling`'s bounds (``to_px_um`` is the model's).
    """
    dst = check_pixel_size(to_px_um)
    src = check_resampling(from_px_um, dst)
    x = _as_float4d(image)
    factor = dst / src
    k = integer_factor(factor)
    if k == 1:
        return x
    if k is not None:
        if min(x.shape[-2:]) < k:
            raise _too_small(x.shape, k, src)
        return block_mean(x, k)
    h, w = x.shape[-2:]
    size = (max(1, int(round(h / factor))), max(1, int(round(w / factor))))
    return _interpolate(x, size, downsample=factor > 1)


def block_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """Means of ``k x k`` blocks of ``(N, C, H, W)`` (``floor(H / k)`` rows, as
    ``avg_pool2d(x, k)``).

    Sums of strided slices, rows then columns: on a CPU, ``avg_pool2d`` of a 1-channel
    1000 px frame takes ~1 ms for k = 4, these sums ~0.4 ms, a tenth of a live frame's
    budget.
    """
    h, w = (int(x.shape[-2]) // k) * k, (int(x.shape[-1]) // k) * k
    x = x[..., :h, :w]
    rows = x[..., 0::k, :]
    for i in range(1, k):
        rows = rows + x[..., i::k, :]
    out = rows[..., 0::k]
    for i in range(1, k):
        out = out + rows[..., i::k]
    return out * (1.0 / (k * k))


def _interpolate(x: torch.Tensor, size: tuple[int, int], *, downsample: bool) -> torch.Tensor:
    if downsample:
        # 'area' = adaptive average pooling: every output pixel averages the input
        # pixels it covers (no aliasing of the sub-cellular texture the CNN reads).
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def to_model_grid(crop: Any, pixel_size_um: float, config: ModelConfig) -> torch.Tensor:
    """Resample a field crop (from :func:`field_source_px`) to ``(N, 1, n, n)``, n = input_px.

    Not normalised. ``crop`` may be (S, S) or batched (N, 1, S, S).
    """
    pixel_size_um = check_pixel_size(pixel_size_um)
    x = _as_float4d(crop)
    n = config.input_px
    factor = config.pixel_size_um / pixel_size_um
    k = integer_factor(factor)
    if k is not None and x.shape[-1] == k * n and x.shape[-2] == k * n:
        return x if k == 1 else block_mean(x, k)
    if tuple(x.shape[-2:]) == (n, n):
        return x
    return _interpolate(x, (n, n), downsample=factor > 1)


def normalise(batch: torch.Tensor, *, inplace: bool = False) -> torch.Tensor:
    """Per-image z-score: zero mean, unit standard deviation.

    A 2-D tensor is one image; otherwise the first axis is the batch and every other
    axis belongs to the image. A (nearly) constant image maps to (nearly) zeros: its
    standard deviation is replaced by 1 instead of dividing by ~0 (no NaN, no blow-up
    of float32 rounding noise).
    """
    x = batch if batch.dtype.is_floating_point else batch.to(torch.float32)
    dims = tuple(range(x.ndim)) if x.ndim <= 2 else tuple(range(1, x.ndim))
    peak = x.abs().amax(dim=dims, keepdim=True)
    if bool((peak > _LARGE_VALUE).any()):
        # The variance of values ~1e37 overflows float32 (NaN out of a finite image); the
        # z-score does not change with scale, so bring such images to |x| <= 1 first.
        x = x / torch.where(peak > 0, peak, torch.ones_like(peak))
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True, correction=0)
    # Relative floor: float32 rounding of a constant 60000-count image leaves ~1e-3 noise.
    floor = 1e-5 * (mean.abs() + 1.0)
    std = torch.where(std > floor, std, torch.ones_like(std))
    if inplace and x is batch:
        return x.sub_(mean).div_(std)
    return (x - mean) / std


def _check_finite(x: torch.Tensor) -> None:
    # A finite sum proves every value finite (NaN and inf propagate) at a tenth of the
    # cost of isfinite(); only a sum that overflowed needs the element-wise check.
    if bool(torch.isfinite(x.sum())):
        return
    if not bool(torch.isfinite(x).all()):
        raise ZFocusError("image contains NaN or infinite values in the model's field")


def prepare(image: Any, pixel_size_um: float, config: ModelConfig) -> torch.Tensor:
    """The full preprocessing of one image: centre field crop, resample, normalise.

    Parameters
    ----------
    image
        2-D array (numpy, dask, tensor) of any numeric dtype, e.g. a raw uint16 frame.
    pixel_size_um
        Pixel size of ``image`` in um.
    config
        The model's configuration (field, pixel size).

    Returns
    -------
    torch.Tensor
        float32 ``(1, 1, input_px, input_px)``, normalised, on the CPU.

    Raises
    ------
    ZFocusError
        Not a 2-D numeric image, bad pixel size, image smaller than the field, or
        NaN/inf inside the field.
    """
    check_image(image)
    px = check_pixel_size(pixel_size_um)
    size = field_source_px(px, config)
    crop = centre_crop(image, size, pixel_size_um=px)
    x = to_model_grid(crop, px, config)
    _check_finite(x)
    if tuple(x.shape[-2:]) == tuple(crop.shape[-2:]):
        # No resampling happened, so x may share memory with the caller's array:
        # copy before normalising in place.
        x = x.clone()
    return normalise(x, inplace=True)


def prepare_batch(
    images: Sequence[Any] | np.ndarray, pixel_size_um: float | Sequence[float], config: ModelConfig
) -> torch.Tensor:
    """:func:`prepare` for several images (list or (N, Y, X) array) -> ``(N, 1, n, n)``.

    ``pixel_size_um`` is one value for all images or one per image.
    """
    n = len(images)
    sizes: list[Any]
    if np.ndim(pixel_size_um) == 0:
        sizes = [pixel_size_um] * n
    else:
        sizes = list(pixel_size_um)  # type: ignore[arg-type]
        if len(sizes) != n:
            raise ZFocusError(f"got {n} images but {len(sizes)} pixel sizes")
    if n == 0:
        return torch.empty((0, 1, config.input_px, config.input_px))
    return torch.cat([prepare(img, px, config) for img, px in zip(images, sizes, strict=True)])
