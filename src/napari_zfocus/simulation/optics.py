"""Bright-field optics: multi-slice angular-spectrum propagation and Koehler illumination.

Model (scalar, paraxial-free angular spectrum, unit magnification, sample space):

* Koehler illumination = an incoherent sum over a few condenser source points. Each point is
  a tilted plane wave ``exp(i 2 pi (fx_s x + fy_s y))`` with ``|f_s| <= NA_c / lambda``; the
  points are snapped to the FFT grid so the tilted wave is periodic on it.
* The sample is a stack of thin slabs (see :func:`.sample.optical_layers`); each transmits
  ``t = exp(i k0 OPD - a)`` (weak phase object, weak absorption), and the field is carried
  to the next slab by the angular-spectrum transfer function
  ``H_d(f) = exp(i 2 pi d sqrt((n / lambda)^2 - |f|^2))``, evanescent waves cut off.
* The objective images the plane at defocus z: the exit field is propagated (in Fourier
  space, one multiplication per plane) to the focal plane and low-passed by the pupil
  ``|f| <= NA / lambda`` (also limited to the grid's Nyquist circle: the camera samples at
  ``pixel_size_um``, like the paper's 4x-downsampled frames). Intensity is ``|field|^2``
  averaged over source points; an empty field gives 1.0.

Each source point's exit field is computed ONCE; all planes are then one multiply + inverse
FFT each, so a whole z-stack costs about (planes + 2 x slabs) FFTs per source point.

Sign convention: the light travels from the condenser above the chamber down to the
objective. Defocus z > 0 means the sample lies above the focal plane, i.e. the imaged plane
is downstream of the cells, where a cell (a weak positive lens) focuses light: cells look
bright for z > 0 and dark for z < 0 and nearly vanish at z = 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft as sfft

from napari_zfocus.errors import ZFocusError


@dataclass
class OpticsParams:
    """Microscope optics.

    Parameters
    ----------
    wavelength_um
        Centre wavelength of the (filtered) lamp.
    na
        Objective numerical aperture (paper: Fluar 40x / 1.30 oil).
    condenser_na
        Condenser aperture; smaller = more coherent = more defocus contrast.
    n_medium
        Refractive index of the medium in the chamber.
    n_source_points
        Number of condenser source points summed incoherently (speed vs. smoothness of
        far-defocus blur).
    source_density
        At least this many source points per unit of ``condenser_na ** 2`` (0: exactly
        ``n_source_points``). A wide condenser sampled by few points images a defocused
        cell as several shifted copies (rings, speckles); 130 keeps the sampling of 16
        points at NA 0.35 up to any aperture (47 points at NA 0.6).
    layer_um
        Slab thickness of the multi-slice model.
    margin_um
        Padding around the field on the FFT grid, so that light scattered by cells just
        outside the field enters it and the periodic FFT boundary stays out of view.
    workers
        Threads for scipy.fft.
    """

    wavelength_um: float = 0.55
    na: float = 1.3
    condenser_na: float = 0.35
    n_medium: float = 1.333
    n_source_points: int = 16
    source_density: float = 0.0
    layer_um: float = 1.0
    margin_um: float = 6.0
    workers: int = 2

    def validate(self) -> None:
        """Raise :class:`ZFocusError` for unphysical settings."""
        if self.wavelength_um <= 0:
            raise ZFocusError(f"optics: wavelength_um must be > 0, got {self.wavelength_um}")
        if not 0 < self.na <= 1.7:
            raise ZFocusError(f"optics: na must be in (0, 1.7], got {self.na}")
        if not 0 <= self.condenser_na < self.na:
            raise ZFocusError(
                f"optics: condenser_na must be in [0, na={self.na}), got {self.condenser_na}"
            )
        if self.n_source_points < 1:
            raise ZFocusError("optics: n_source_points must be >= 1")
        if not 0 <= self.source_density <= 1e5:
            raise ZFocusError(
                f"optics: source_density must be in [0, 1e5], got {self.source_density}")
        if self.layer_um <= 0:
            raise ZFocusError(f"optics: layer_um must be > 0, got {self.layer_um}")


def source_points(
    params: OpticsParams,
    grid_shape: tuple[int, int],
    pixel_size_um: float,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Condenser source points as integer FFT-grid frequency indices ``(K, 2)`` (iy, ix).

    A sunflower (Fibonacci) layout fills the condenser disk evenly with
    ``params.n_source_points`` points (more where ``params.source_density`` asks for
    them); ``rng`` rotates it randomly. Points are snapped to the
    grid (tilted waves must be periodic on it) and duplicates removed.
    """
    n = max(params.n_source_points,
            int(np.ceil(params.source_density * params.condenser_na**2 - 1e-9)))
    radius = params.condenser_na / params.wavelength_um  # cycles/um
    k = np.arange(n) + 0.5
    r = radius * np.sqrt(k / n)
    theta = k * np.pi * (3.0 - np.sqrt(5.0))
    if rng is not None:
        theta = theta + rng.uniform(0, 2 * np.pi)
    fy, fx = r * np.sin(theta), r * np.cos(theta)
    df_y = 1.0 / (grid_shape[0] * pixel_size_um)
    df_x = 1.0 / (grid_shape[1] * pixel_size_um)
    idx = np.stack([np.round(fy / df_y), np.round(fx / df_x)], axis=1).astype(int)
    _, first = np.unique(idx, axis=0, return_index=True)
    return idx[np.sort(first)]


class Optics:
    """Precomputed frequency grids, pupil and source for one grid geometry.

    Parameters
    ----------
    params
        Optics settings.
    grid_shape
        FFT grid (field plus margin), rows x cols.
    pixel_size_um
        Sampling in the sample plane.
    rng
        Optional randomness for the source layout rotation.
    """

    def __init__(
        self,
        params: OpticsParams,
        grid_shape: tuple[int, int],
        pixel_size_um: float,
        rng: np.random.Generator | None = None,
    ) -> None:
        params.validate()
        self.params = params
        self.grid_shape = (int(grid_shape[0]), int(grid_shape[1]))
        self.pixel_size_um = float(pixel_size_um)
        fy = sfft.fftfreq(self.grid_shape[0], d=pixel_size_um).astype(np.float32)
        fx = sfft.fftfreq(self.grid_shape[1], d=pixel_size_um).astype(np.float32)
        f2 = fy[:, None] ** 2 + fx[None, :] ** 2
        k_medium = params.n_medium / params.wavelength_um
        kz2 = k_medium**2 - f2
        self.propagating = kz2 > 0
        # 2 pi kz: propagation over distance d multiplies the spectrum by exp(i d * kz2pi).
        self.kz2pi = (2 * np.pi * np.sqrt(np.clip(kz2, 0, None))).astype(np.float32)
        cutoff = min(params.na, params.n_medium) / params.wavelength_um
        nyquist = 0.5 / pixel_size_um
        self.pupil = (f2 <= min(cutoff, nyquist) ** 2) & self.propagating
        self.source = source_points(params, self.grid_shape, pixel_size_um, rng)
        self.k0 = np.float32(2 * np.pi / params.wavelength_um)
        self._layer_h = self.transfer(params.layer_um)

    @property
    def n_sources(self) -> int:
        """Number of distinct source points actually used."""
        return int(self.source.shape[0])

    def transfer(self, distance_um: float, pupil: bool = False) -> np.ndarray:
        """Angular-spectrum transfer function for ``distance_um`` (complex64, FFT layout)."""
        h = np.exp(1j * (np.float32(distance_um) * self.kz2pi)).astype(np.complex64)
        mask = self.pupil if pupil else self.propagating
        h *= mask
        return h

    def _incident(self) -> np.ndarray:
        """Tilted unit plane waves, one per source point, ``(K, rows, cols)`` complex64."""
        gh, gw = self.grid_shape
        # Separable: exp(i 2 pi (my y + mx x)) = exp(i 2 pi my y) * exp(i 2 pi mx x).
        iy = np.arange(gh)[:, None] / gh
        ix = np.arange(gw)[None, :] / gw
        wy = np.exp(2j * np.pi * (self.source[:, 0][:, None] * iy.T)).astype(np.complex64)
        wx = np.exp(2j * np.pi * (self.source[:, 1][:, None] * ix)).astype(np.complex64)
        return wy[:, :, None] * wx[:, None, :]

    def exit_spectra(self, opd: np.ndarray, absorption: np.ndarray) -> np.ndarray:
        """Spectra of the field leaving the last slab, one per source point.

        Parameters
        ----------
        opd, absorption
            ``(L, rows, cols)`` slabs in the order the light meets them
            (:func:`.sample.optical_layers`).

        Returns
        -------
        ndarray, complex64 ``(K, rows, cols)``
            FFT of the field just below the last slab.
        """
        w = self.params.workers
        field = self._incident()
        n_layers = opd.shape[0]
        for k in range(n_layers):
            t = np.exp(1j * (self.k0 * opd[k]) - absorption[k]).astype(np.complex64)
            field *= t[None]
            spec = sfft.fft2(field, axes=(-2, -1), workers=w, overwrite_x=True)
            if k == n_layers - 1:
                # Leave the last slab at its mid-plane; planes are propagated from there.
                return spec
            spec *= self._layer_h[None]
            field = sfft.ifft2(spec, axes=(-2, -1), workers=w, overwrite_x=True)
        return sfft.fft2(field, axes=(-2, -1), workers=w)  # pragma: no cover (L >= 1)

    def image_planes(
        self,
        spectra: np.ndarray,
        distances_um: np.ndarray,
        crop: tuple[slice, slice],
    ) -> np.ndarray:
        """Intensity images at the given propagation distances from the exit plane.

        Parameters
        ----------
        spectra
            Output of :meth:`exit_spectra`.
        distances_um
            Signed distance from the exit plane to each focal plane, downstream positive.
        crop
            Region of the grid to return (the camera field).

        Returns
        -------
        ndarray, float32 ``(Z, crop rows, crop cols)``
        """
        w = self.params.workers
        d = np.asarray(distances_um, dtype=np.float64).ravel()
        rows = crop[0].stop - crop[0].start
        cols = crop[1].stop - crop[1].start
        out = np.empty((len(d), rows, cols), np.float32)
        inv_k = np.float32(1.0 / spectra.shape[0])
        # Evenly spaced planes (the usual z-stack): H(d + step) = H(d) * H(step), one complex
        # multiply instead of a complex exp per plane. float32 round-off after 200 steps is
        # ~1e-5, far below the shot noise.
        even = len(d) > 2 and np.allclose(np.diff(d), d[1] - d[0], rtol=0, atol=1e-9)
        step: Any = self.transfer(float(d[1] - d[0])) if even else None
        h: Any = self.transfer(float(d[0]), pupil=True) if len(d) else None
        for i in range(len(d)):
            if i and even:
                h *= step
            elif i:
                h = self.transfer(float(d[i]), pupil=True)
            f = sfft.ifft2(spectra * h[None], axes=(-2, -1), workers=w, overwrite_x=True)
            # |f|^2 summed over source points: einsum on the float32 view (re, im pairs)
            # avoids the temporaries of f.real**2 + f.imag**2.
            v = f[:, crop[0], crop[1]].view(np.float32)
            s = np.einsum("kij,kij->ij", v, v)
            out[i] = (s[:, 0::2] + s[:, 1::2]) * inv_k
        return out
