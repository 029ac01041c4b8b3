"""Render a :class:`~.sample.Scene` at any set of defocus values.

This is the API the simulated microscope uses::

    from napari_zfocus.simulation import (
        SampleParams, OpticsParams, CameraParams, Scene, OpticalRenderer, render_planes,
        apply_camera)

    rng = np.random.default_rng(0)
    scene = Scene.random(SampleParams(n_cells=15), rng, shape=(256, 256), pixel_size_um=0.24)
    renderer = OpticalRenderer(OpticsParams())            # keeps FFT grids/pupil between calls
    z = np.arange(-25, 25.01, 0.25)                # defocus, um (z > 0: sample above focus)
    intensity = renderer.render(scene, z)          # float32 (Z, Y, X), background ~ 1.0
    frame = apply_camera(intensity[100], CameraParams(), rng)   # uint16 (Y, X)
    scene.grow(0.1, rng)                           # 6 minutes later: re-render
    prepared = renderer.prepare(scene)             # multi-slice once for this scene state,
    frame_z = prepared.render([1.3])               # then any defocus costs one plane each

Defocus is measured from the floor-cell layer (``scene.focus_height_um`` above the floor);
slice i of a stack with in-focus index f lies at ``z = (i - f) * z_step_um``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from napari_zfocus.simulation.optics import Optics, OpticsParams
from napari_zfocus.simulation.sample import Scene, optical_layers


def grid_for(
    shape: tuple[int, int], pixel_size_um: float, margin_um: float
) -> tuple[tuple[int, int], tuple[int, int]]:
    """FFT grid size and the field's origin on it for a camera field plus margin.

    The grid is rounded up to a fast FFT length (scipy.fft.next_fast_len).
    """
    m = int(np.ceil(margin_um / pixel_size_um))
    gh = sfft.next_fast_len(shape[0] + 2 * m, real=False)
    gw = sfft.next_fast_len(shape[1] + 2 * m, real=False)
    return (gh, gw), ((gh - shape[0]) // 2, (gw - shape[1]) // 2)


class OpticalRenderer:
    """Renders scenes with one optics setting; caches the grid-dependent precomputation.

    Parameters
    ----------
    params
        Optics settings (condenser NA, number of source points, ...).
    rng
        Optional randomness for the source layout (fixed once per renderer).
    """

    def __init__(self, params: OpticsParams | None = None,
                 rng: np.random.Generator | None = None) -> None:
        self.params = params or OpticsParams()
        self.params.validate()
        self._rng_seed = None if rng is None else int(rng.integers(2**32))
        self._optics: Optics | None = None
        self._key: tuple | None = None

    def optics_for(self, scene: Scene) -> tuple[Optics, tuple[int, int]]:
        """The (cached) :class:`Optics` for the scene's field and the field origin."""
        grid, origin = grid_for(scene.shape, scene.pixel_size_um, self.params.margin_um)
        key = (grid, scene.pixel_size_um)
        if self._optics is None or key != self._key:
            rng = None if self._rng_seed is None else np.random.default_rng(self._rng_seed)
            self._optics = Optics(self.params, grid, scene.pixel_size_um, rng)
            self._key = key
        return self._optics, origin

    def prepare(self, scene: Scene) -> PreparedScene:
        """Run the multi-slice part once: the exit-plane spectra of ``scene`` as it is now.

        Re-rendering the same (unchanged) scene at other defocus values then costs only
        the per-plane work (:meth:`PreparedScene.render`). Call again after the scene
        changed (``scene.version`` tells).
        """
        optics, origin = self.optics_for(scene)
        layer_um = self.params.layer_um
        opd, absorb, edges = optical_layers(scene, optics.grid_shape, origin, layer_um)
        crop = (slice(origin[0], origin[0] + scene.shape[0]),
                slice(origin[1], origin[1] + scene.shape[1]))
        return PreparedScene(
            optics=optics,
            spectra=optics.exit_spectra(opd, absorb),
            # Exit plane = mid-plane of the lowest slab.
            exit_height_um=float(edges[-1] + 0.5 * layer_um),
            focus_height_um=float(scene.focus_height_um),
            crop=crop,
            version=scene.version,
        )

    def render(self, scene: Scene, z_um: np.ndarray | list[float] | float) -> np.ndarray:
        """Noise-free bright-field intensity of ``scene`` at each defocus in ``z_um``.

        Parameters
        ----------
        scene
            The sample.
        z_um
            Defocus values in um (scalar or 1-D); z > 0: sample above the focal plane.

        Returns
        -------
        ndarray, float32 ``(Z, rows, cols)``
            Intensity relative to the unobstructed illumination (empty field = 1.0).
        """
        return self.prepare(scene).render(z_um)


@dataclass
class PreparedScene:
    """Exit-plane spectra of one scene state (see :meth:`OpticalRenderer.prepare`)."""

    optics: Optics
    spectra: np.ndarray  # complex64 (K, grid rows, grid cols)
    exit_height_um: float
    focus_height_um: float
    crop: tuple[slice, slice]
    version: int  # scene.version it was made from

    def render(self, z_um: np.ndarray | list[float] | float) -> np.ndarray:
        """float32 ``(Z, rows, cols)`` intensity at defocus ``z_um`` (empty field = 1.0)."""
        z = np.atleast_1d(np.asarray(z_um, dtype=np.float64))
        # The focal plane lies at focus_height - z; distance downstream of the exit plane.
        distances = z + self.exit_height_um - self.focus_height_um
        return self.optics.image_planes(self.spectra, distances, self.crop)


def render_planes(
    scene: Scene,
    z_um: np.ndarray | list[float] | float,
    params: OpticsParams | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """One-shot :meth:`OpticalRenderer.render` (use a :class:`OpticalRenderer` for repeated calls).

    Returns float32 ``(Z, rows, cols)`` intensity, empty field = 1.0.
    """
    return OpticalRenderer(params, rng).render(scene, z_um)
