"""Renderers of an evolving sample at any defocus, for the simulated microscope.

A renderer turns "the sample at time t, seen at these defocus values" into noise-free
intensity planes, and turns one intensity plane into a camera frame. The simulated
microscope calls ``render_planes`` rarely (a fine z-stack every few simulated minutes)
and ``camera`` for every frame, so only ``camera`` must be fast.

* :class:`SimulatorRenderer` uses the project's bright-field simulator
  (:mod:`napari_zfocus.simulation`): growing yeast population, realistic optics. The
  default.
* :class:`PatternRenderer` is a cheap analytic stand-in (blurred blobs whose contrast
  flips through focus). Tests and benchmarks of the control loop use it where optical
  realism is not the point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:  # the simulator is imported only when a SimulatorRenderer is made
    from napari_zfocus.simulation.camera import CameraParams
    from napari_zfocus.simulation.optics import OpticsParams
    from napari_zfocus.simulation.sample import SampleParams


class SceneRenderer(Protocol):
    """What :class:`~napari_zfocus.live.simulated_microscope.SimulatedMicroscope` needs."""

    shape: tuple[int, int]
    pixel_size_um: float

    def render_planes(self, z_um: np.ndarray, t_s: float) -> np.ndarray:
        """Noise-free float32 intensity (Z, Y, X) of the sample at time ``t_s``.

        ``z_um`` is the defocus of each plane: sample z minus focal-plane z (positive:
        the sample lies above the focal plane).
        """
        ...

    def camera(self, intensity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One noisy uint16 camera frame of a (Y, X) intensity plane."""
        ...


class PatternRenderer:
    """Analytic test pattern: soft disks ("cells") blurred by defocus.

    The blur grows with ``|z|`` and the contrast of the cells changes sign through
    focus (dark below, bright above, faint at focus), roughly like bright-field images
    of yeast. The population grows (doubling every ``doubling_time_h``, up to
    ``max_cells``) and drifts sideways, so cells move in and out of the field.

    Parameters
    ----------
    shape, pixel_size_um
        Frame size and pixel size.
    n_cells, max_cells, doubling_time_h
        Initial population, cap, and doubling time.
    cell_radius_um
        Radius of a cell.
    lateral_speed_um_h
        Speed of the sideways drift of the whole population.
    full_well_e, read_noise_e, offset_adu
        Camera model: background level in electrons, read noise, offset.
    seed
        Seed of the cell layout.
    """

    def __init__(
        self,
        shape: tuple[int, int] = (256, 256),
        pixel_size_um: float = 0.24,
        *,
        n_cells: int = 15,
        max_cells: int = 400,
        doubling_time_h: float = 3.0,
        cell_radius_um: float = 2.5,
        lateral_speed_um_h: float = 5.0,
        full_well_e: float = 3000.0,
        read_noise_e: float = 3.0,
        offset_adu: float = 100.0,
        seed: int = 0,
    ) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.pixel_size_um = float(pixel_size_um)
        self.n_cells = int(n_cells)
        self.max_cells = int(max_cells)
        self.doubling_time_h = float(doubling_time_h)
        self.cell_radius_um = float(cell_radius_um)
        self.full_well_e = float(full_well_e)
        self.read_noise_e = float(read_noise_e)
        self.offset_adu = float(offset_adu)
        rng = np.random.default_rng(seed)
        h_um = self.shape[0] * self.pixel_size_um
        w_um = self.shape[1] * self.pixel_size_um
        # Cells live on a torus twice the field, so the drift carries them in and out.
        self._world_um = np.array([2 * h_um, 2 * w_um])
        self._pos_um = rng.uniform(0, 1, (self.max_cells, 2)) * self._world_um
        # First n_cells near the field centre-ish; later cells bud next to earlier ones.
        self._pos_um[: self.n_cells] = (
            rng.uniform(0.25, 0.75, (self.n_cells, 2)) * np.array([h_um, w_um])
        )
        for i in range(self.n_cells, self.max_cells):
            parent = rng.integers(0, i)
            self._pos_um[i] = self._pos_um[parent] + rng.normal(0, 2 * self.cell_radius_um, 2)
        angle = rng.uniform(0, 2 * np.pi)
        self._velocity_um_s = lateral_speed_um_h / 3600.0 * np.array([np.sin(angle), np.cos(angle)])

    def n_cells_at(self, t_s: float) -> int:
        """Population size at time ``t_s``."""
        n = self.n_cells * 2.0 ** (max(t_s, 0.0) / (self.doubling_time_h * 3600.0))
        return int(min(self.max_cells, n))

    def _mask(self, t_s: float) -> np.ndarray:
        """Soft cell mask (Y, X) in 0..1 at time ``t_s``."""
        h, w = self.shape
        n = self.n_cells_at(t_s)
        pos = (self._pos_um[:n] + self._velocity_um_s * t_s) % self._world_um
        yy = (np.arange(h) + 0.5) * self.pixel_size_um
        xx = (np.arange(w) + 0.5) * self.pixel_size_um
        mask = np.zeros(self.shape, np.float32)
        r = self.cell_radius_um
        for cy, cx in pos:
            if cy > yy[-1] + 2 * r or cx > xx[-1] + 2 * r:
                continue  # outside the field (the world is larger than the field)
            d2 = (yy[:, None] - cy) ** 2 + (xx[None, :] - cx) ** 2
            np.maximum(mask, np.clip(1.0 - (np.sqrt(d2) - r) / 0.5, 0.0, 1.0), out=mask)
        return mask

    def render_planes(self, z_um: np.ndarray, t_s: float) -> np.ndarray:
        """Blurred, contrast-modulated cell mask at each defocus (float32 (Z, Y, X))."""
        z = np.asarray(z_um, dtype=np.float64).ravel()
        spectrum = np.fft.rfft2(self._mask(t_s))
        fy = np.fft.fftfreq(self.shape[0])[:, None]
        fx = np.fft.rfftfreq(self.shape[1])[None, :]
        f2 = fy**2 + fx**2
        out = np.empty((z.size, *self.shape), np.float32)
        for k, zk in enumerate(z):
            sigma_px = np.hypot(0.6, 0.8 * zk / self.pixel_size_um * 0.25)  # blur ~ |z|
            gaussian = np.exp(-2 * (np.pi * sigma_px) ** 2 * f2)
            blurred = np.fft.irfft2(spectrum * gaussian, s=self.shape)
            contrast = 0.35 * zk / (abs(zk) + 1.5) - 0.1 * np.exp(-0.5 * zk**2)
            out[k] = 1.0 + contrast * blurred
        return out

    def camera(self, intensity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Shot noise, read noise and offset; 16-bit."""
        electrons = rng.poisson(np.clip(intensity, 0, None) * self.full_well_e)
        adu = electrons + rng.normal(self.offset_adu, self.read_noise_e, intensity.shape)
        return np.clip(adu, 0, 65535).astype(np.uint16)


class SimulatorRenderer:
    """The project's bright-field simulator (:mod:`napari_zfocus.simulation`) over time.

    Holds one :class:`~napari_zfocus.simulation.sample.Scene` (yeast in a microfluidic
    chamber with pillars) that grows and drifts sideways as simulated time passes
    (:meth:`Scene.grow`: ~15 cells become hundreds in ~24 h, colonies float in and out).
    The exit-plane spectra of a scene are cached per scene version, so rendering more
    planes of the same scene costs only the propagation to each plane.

    Parameters
    ----------
    shape, pixel_size_um
        Camera field.
    n_cells, ceiling_fraction
        Initial population in the field, fraction stuck to the chamber ceiling.
    doubling_h
        Cell-cycle time of uncrowded cells.
    sample, optics, camera
        Full simulator settings (override ``n_cells``/``ceiling_fraction`` when given).
    seed
        Seed of the scene, its growth and the source layout.
    """

    def __init__(
        self,
        shape: tuple[int, int] = (256, 256),
        pixel_size_um: float = 0.24,
        *,
        n_cells: int = 15,
        ceiling_fraction: float = 0.1,
        doubling_h: float = 2.0,
        sample: SampleParams | None = None,
        optics: OpticsParams | None = None,
        camera: CameraParams | None = None,
        seed: int = 0,
    ) -> None:
        from napari_zfocus.simulation.camera import CameraParams
        from napari_zfocus.simulation.optics import OpticsParams
        from napari_zfocus.simulation.render import OpticalRenderer
        from napari_zfocus.simulation.sample import SampleParams, Scene

        self.shape = (int(shape[0]), int(shape[1]))
        self.pixel_size_um = float(pixel_size_um)
        self.doubling_h = float(doubling_h)
        self._rng = np.random.default_rng(seed)
        params = sample or SampleParams(n_cells=n_cells, ceiling_fraction=ceiling_fraction)
        self.scene = Scene.random(params, self._rng, self.shape, self.pixel_size_um)
        self._optical = OpticalRenderer(optics or OpticsParams(), self._rng)
        self._camera_params = camera or CameraParams()
        self._t_s = 0.0
        self._cache_key: tuple | None = None
        self._cache: tuple | None = None

    def advance(self, t_s: float) -> None:
        """Grow the scene up to simulated time ``t_s`` (never backwards)."""
        dt = t_s - self._t_s
        if dt > 0:
            self.scene.grow(dt / 3600.0, self._rng, doubling_h=self.doubling_h)
            self._t_s = t_s

    def _spectra(self) -> tuple:
        """Exit-plane spectra of the current scene (cached per scene version)."""
        from napari_zfocus.simulation.sample import optical_layers

        key = (id(self.scene), self.scene.version)
        if key != self._cache_key:
            optics, origin = self._optical.optics_for(self.scene)
            layer_um = self._optical.params.layer_um
            opd, absorb, edges = optical_layers(self.scene, optics.grid_shape, origin, layer_um)
            spectra = optics.exit_spectra(opd, absorb)
            # Exit plane = mid-plane of the lowest slab (as simulation.render.OpticalRenderer).
            exit_h = edges[-1] + 0.5 * layer_um
            crop = (
                slice(origin[0], origin[0] + self.shape[0]),
                slice(origin[1], origin[1] + self.shape[1]),
            )
            self._cache, self._cache_key = (optics, spectra, exit_h, crop), key
        assert self._cache is not None  # filled above on the first call
        return self._cache

    def render_planes(self, z_um: np.ndarray, t_s: float) -> np.ndarray:
        """Noise-free float32 intensity (Z, Y, X) of the scene at ``t_s``, defocus ``z_um``."""
        self.advance(t_s)
        optics, spectra, exit_h, crop = self._spectra()
        z = np.atleast_1d(np.asarray(z_um, np.float64))
        distances = z + exit_h - self.scene.focus_height_um
        return optics.image_planes(spectra, distances, crop)

    def camera(self, intensity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The simulator's camera model (vignetting, shot and read noise, 16-bit)."""
        from napari_zfocus.simulation.camera import apply_camera

        return apply_camera(intensity, self._camera_params, rng)

    def n_cells_in_field(self) -> int:
        """Cells whose centre lies in the camera field now."""
        return self.scene.n_in_field()
