"""Camera model: vignetting, shot noise, read noise, gain, offset, 16-bit output."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_zfocus.errors import ZFocusError

# Below this many expected electrons per pixel the Gaussian approximation of the Poisson
# shot noise is visibly wrong, so exact Poisson draws are used.
_POISSON_BELOW = 30.0


@dataclass
class CameraParams:
    """Camera and illumination brightness.

    Parameters
    ----------
    photons
        Mean photo-electrons per pixel of the unobstructed illumination at the field centre
        (sets the brightness and, through shot noise, the signal-to-noise ratio).
    vignetting
        Fractional brightness loss in the field corners (0 = flat field).
    vignetting_centre
        Centre of the vignetting falloff as a fraction of (rows, cols); the illumination is
        rarely perfectly centred.
    read_noise_e
        Gaussian read noise, electrons rms.
    gain
        ADU per electron.
    offset_adu
        Camera bias added to every pixel.
    """

    photons: float = 3000.0
    vignetting: float = 0.15
    vignetting_centre: tuple[float, float] = (0.5, 0.5)
    read_noise_e: float = 3.0
    gain: float = 2.0
    offset_adu: float = 100.0

    def validate(self) -> None:
        """Raise :class:`ZFocusError` for impossible settings."""
        if self.photons <= 0:
            raise ZFocusError(f"camera: photons must be > 0, got {self.photons}")
        if not 0 <= self.vignetting < 1:
            raise ZFocusError(f"camera: vignetting must be in [0, 1), got {self.vignetting}")
        if self.read_noise_e < 0 or self.gain <= 0 or self.offset_adu < 0:
            raise ZFocusError("camera: read_noise_e, offset_adu must be >= 0 and gain > 0")


def vignetting_map(shape: tuple[int, int], params: CameraParams) -> np.ndarray:
    """Relative illumination ``(rows, cols)``: 1 at the centre, ``1 - vignetting`` in corners.

    A quadratic (cos^4-like, to first order) falloff with the distance from the centre.
    """
    rows, cols = shape
    cy, cx = params.vignetting_centre[0] * rows, params.vignetting_centre[1] * cols
    y = (np.arange(rows, dtype=np.float32) + 0.5 - cy)[:, None]
    x = (np.arange(cols, dtype=np.float32) + 0.5 - cx)[None, :]
    r2 = (x * x + y * y) / np.float32((rows / 2) ** 2 + (cols / 2) ** 2)
    return (1.0 - params.vignetting * r2).astype(np.float32)


def apply_camera(
    intensity: np.ndarray, params: CameraParams, rng: np.random.Generator
) -> np.ndarray:
    """Turn relative intensity into a noisy 16-bit camera image.

    Parameters
    ----------
    intensity
        float ``(..., rows, cols)``, 1.0 = unobstructed illumination.
    params
        Camera settings.
    rng
        Noise source (same generator state -> identical output).

    Returns
    -------
    ndarray, uint16, same shape
        ``offset + gain * (electrons + noise)``, rounded and clipped to 0..65535.
    """
    params.validate()
    intensity = np.asarray(intensity, dtype=np.float32)
    vig = vignetting_map(intensity.shape[-2:], params)
    electrons = intensity * (vig * np.float32(params.photons))
    np.maximum(electrons, 0, out=electrons)
    if params.photons < _POISSON_BELOW:
        noisy = rng.poisson(electrons).astype(np.float32)
        noisy += rng.standard_normal(electrons.shape, dtype=np.float32) * np.float32(
            params.read_noise_e)
    else:
        # Shot + read noise in one Gaussian draw: variance = electrons + read_noise^2.
        # Exact enough at these counts and ~5x faster than Poisson draws.
        sigma = np.sqrt(electrons + np.float32(params.read_noise_e**2))
        noisy = electrons + sigma * rng.standard_normal(electrons.shape, dtype=np.float32)
    adu = noisy * np.float32(params.gain) + np.float32(params.offset_adu)
    return np.clip(np.rint(adu), 0, 65535).astype(np.uint16)
