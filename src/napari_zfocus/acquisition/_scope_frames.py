"""Camera frames of the simulated multi-position scope: scenes, fluorescence, empty fields.

Bright-field frames come from a position's
:class:`~napari_zfocus.live.simulated_microscope.SimulatedMicroscope` (its plane cache and
its renderer's camera). The rest is cheap and needs no new optics: the fluorescence
look-alike is derived from the in-focus bright-field plane, and empty fields, fluorescence
and fault frames go through the pattern renderer's camera model (shot noise, read noise,
offset, 16 bit).
"""

from __future__ import annotations

import numpy as np

from napari_zfocus.live.scenes import PatternRenderer
from napari_zfocus.live.simulated_microscope import SimulatedMicroscope

BIMODAL_SEPARATION_UM = 10.0  # second plane of a bimodal fault frame, above the first
BLANK_ADU = 100  # value of every pixel of a blank fault frame (a camera offset)
EMPTY_BF_LEVEL = 0.25  # intensity of an empty field in bright field (fraction of full well)
FL_BACKGROUND = 0.02  # fluorescence background, fraction of full well
FL_CELLS = 0.45  # in-focus fluorescence of the brightest cells, fraction of full well
FL_SIGMA0_UM = 0.36  # in-focus blur (Gaussian sigma) of the fluorescence image
FL_BLUR_PER_UM = 0.2  # growth of that sigma per um of |defocus| (about a 0.4 NA cone)


class FrameMaker:
    """Makes the scope's uint16 frames of one camera shape.

    Parameters
    ----------
    shape, pixel_size_um
        Camera frame.
    fl_exposure_ms
        Exposure at which fluorescence has its nominal brightness (it scales with exposure).
    seed
        Seed of the camera noise of the frames no scene renders.
    """

    def __init__(self, shape: tuple[int, int], pixel_size_um: float, fl_exposure_ms: float,
                 seed: int) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.pixel_size_um = float(pixel_size_um)
        self.fl_exposure_ms = float(fl_exposure_ms)
        self._camera = PatternRenderer(self.shape, pixel_size_um).camera
        self._rng = np.random.default_rng(seed)
        fy = np.fft.fftfreq(self.shape[0])[:, None]
        fx = np.fft.rfftfreq(self.shape[1])[None, :]
        self._f2 = (fy**2 + fx**2).astype(np.float32)
        # Spectrum of each scene's fluorescent cell map, with the scene time it shows.
        self._cells: dict[SimulatedMicroscope, tuple[float, np.ndarray]] = {}

    def blank(self) -> np.ndarray:
        """A constant frame (a dead camera or a shutter that did not open)."""
        return np.full(self.shape, BLANK_ADU, np.uint16)

    def empty(self, channel: str, exposure_ms: float) -> np.ndarray:
        """A field without cells: dim and nearly uniform, with camera noise."""
        level = EMPTY_BF_LEVEL if channel == "BF" else FL_BACKGROUND * self._gain(exposure_ms)
        return self._camera(np.full(self.shape, level, np.float32), self._rng)

    def scene(self, mic: SimulatedMicroscope, defocus_um: float, channel: str,
              exposure_ms: float, bimodal: bool = False) -> np.ndarray:
        """``mic``'s scene at ``defocus_um`` in ``channel`` ("BF" or "FL").

        ``bimodal`` mixes in equal parts the plane ``BIMODAL_SEPARATION_UM`` above.
        """
        if channel == "BF":
            if not bimodal:
                return mic.image_at(defocus_um)
            upper = mic.intensity_at(defocus_um + BIMODAL_SEPARATION_UM)
            return mic.renderer.camera(0.5 * (mic.intensity_at(defocus_um) + upper), self._rng)
        fl = self.fluorescence(mic, defocus_um)
        if bimodal:
            fl = 0.5 * (fl + self.fluorescence(mic, defocus_um + BIMODAL_SEPARATION_UM))
        return self._camera(fl * self._gain(exposure_ms), self._rng)

    def _gain(self, exposure_ms: float) -> float:
        return float(exposure_ms) / self.fl_exposure_ms

    def fluorescence(self, mic: SimulatedMicroscope, defocus_um: float) -> np.ndarray:
        """Noise-free fluorescence look-alike (float32, fraction of full well).

        The cells are where the in-focus bright-field plane departs from 1, the intensity
        of an empty field in both renderers (not from its mean: in a crowded field the mean
        is the cells' level). That map is blurred by a Gaussian whose width grows with
        ``|defocus|`` (total light is kept, so defocused cells get dimmer and wider) on a
        dark background. The map is made once per scene (per ``scene_time_s``).
        """
        sigma = (FL_SIGMA0_UM + FL_BLUR_PER_UM * abs(defocus_um)) / self.pixel_size_um
        kernel = np.exp(np.float32(-2.0 * (np.pi * sigma) ** 2) * self._f2)
        blurred = np.fft.irfft2(self._cell_spectrum(mic) * kernel, s=self.shape)
        return (FL_BACKGROUND + FL_CELLS * blurred).astype(np.float32)

    def _cell_spectrum(self, mic: SimulatedMicroscope) -> np.ndarray:
        """FFT of the cell map (0..1) of ``mic``'s current scene."""
        cached = self._cells.get(mic)
        due = mic.clock.now() - mic.scene_time_s >= mic.settings.rerender_every_s
        if cached is not None and not due and cached[0] == mic.scene_time_s:
            return cached[1]
        plane = mic.intensity_at(0.0)  # moves the scene on first when it is due
        cells = np.abs(plane - np.float32(1.0))
        cells /= max(float(np.percentile(cells, 99.5)), 1e-6)
        np.clip(cells, 0.0, 1.0, out=cells)
        spectrum = np.fft.rfft2(cells)
        self._cells[mic] = (mic.scene_time_s, spectrum)
        return spectrum
