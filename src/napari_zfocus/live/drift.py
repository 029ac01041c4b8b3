"""Thermal focus drift of a sample over a long time-lapse.

Wei & Roberts (2018) saw the focus drift 40 um over a 24 h experiment while the incubator
temperature swung by 3 C. The model here is the sum of

* a slow thermal term proportional to the temperature change: a smooth warm-up over the
  experiment plus a small periodic ripple (air conditioning cycling), scaled so that the
  warm-up alone moves the sample by ``total_drift_um``;
* a slow random wander (a few random low-frequency sinusoids, so that it is a smooth,
  deterministic function of time that can be sampled at any time in any order);
* rare sudden jumps of 0.5-2 um (the sample or the stage settling), a Poisson process.

Positive values move the sample UP (away from the objective).

Anything with ``sample_z_um(t)`` is a :class:`Drift`; :class:`SumDrift` adds drifts (a
drift shared by every position of a plate plus each position's own wander).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from napari_zfocus.errors import ZFocusError


@dataclass
class DriftSettings:
    """Parameters of :class:`ThermalDrift` (distances in um, times in s)."""

    total_drift_um: float = 40.0
    duration_s: float = 24 * 3600.0
    temperature_swing_c: float = 3.0
    ripple_fraction: float = 0.1  # ripple amplitude as a fraction of the swing
    ripple_period_s: float = 3600.0
    wander_um: float = 0.3  # rms of the slow random wander
    wander_period_s: float = 1800.0  # shortest period of the wander
    jump_rate_per_h: float = 0.5
    jump_min_um: float = 0.5
    jump_max_um: float = 2.0

    def validate(self) -> None:
        """Raise :class:`ZFocusError` on an impossible setting."""
        if not (self.duration_s > 0 and np.isfinite(self.duration_s)):
            raise ZFocusError(f"drift duration must be positive, got {self.duration_s} s")
        if not np.isfinite(self.total_drift_um):
            raise ZFocusError(
                f"total drift must be a finite number of um, got {self.total_drift_um}"
            )
        if self.temperature_swing_c <= 0:
            raise ZFocusError(
                f"temperature swing must be positive, got {self.temperature_swing_c} C"
            )
        if self.wander_um < 0 or self.jump_rate_per_h < 0:
            raise ZFocusError("wander and jump rate must not be negative")
        if not 0 <= self.jump_min_um <= self.jump_max_um:
            raise ZFocusError(
                "jump sizes must satisfy 0 <= min <= max, got "
                f"{self.jump_min_um}..{self.jump_max_um} um"
            )


class ThermalDrift:
    """Sample z position over time: ``sample_z_um(t)``, deterministic for a given seed.

    Parameters
    ----------
    settings
        Drift parameters; default: the paper's 40 um over 24 h.
    seed
        Seed of the wander and the jumps.
    """

    def __init__(self, settings: DriftSettings | None = None, seed: int = 0) -> None:
        self.settings = settings or DriftSettings()
        self.settings.validate()
        self._rng = np.random.default_rng(seed)
        s = self.settings
        # Wander: 6 sinusoids with periods between 1x and 4x wander_period_s. The sum of
        # n unit sinusoids with random phases has rms sqrt(n/2); scale to wander_um.
        n = 6
        self._w_freq = 1.0 / (s.wander_period_s * self._rng.uniform(1.0, 4.0, n))
        self._w_phase = self._rng.uniform(0, 2 * np.pi, n)
        self._w_amp = s.wander_um / np.sqrt(n / 2.0)
        # Jumps are drawn lazily, in time order, as later times are asked for.
        self._jump_times = np.empty(0)
        self._jump_steps: list[float] = []
        self._jump_cumsum = np.empty(0)
        self._jumps_until = 0.0

    @property
    def um_per_c(self) -> float:
        """Thermal coefficient: sample displacement per degree of warming."""
        return self.settings.total_drift_um / self.settings.temperature_swing_c

    def temperature_change_c(self, t_s: np.ndarray | float) -> np.ndarray:
        """Temperature above the start, C: a smooth warm-up plus a periodic ripple."""
        s = self.settings
        t = np.asarray(t_s, dtype=np.float64)
        frac = np.clip(t / s.duration_s, 0.0, 1.0)
        warm_up = 0.5 * (1.0 - np.cos(np.pi * frac))  # 0 -> 1 over the experiment, smooth
        ripple = s.ripple_fraction * np.sin(2 * np.pi * t / s.ripple_period_s)
        return s.temperature_swing_c * (warm_up + ripple)

    def _extend_jumps(self, t_max: float) -> None:
        s = self.settings
        if s.jump_rate_per_h <= 0 or t_max <= self._jumps_until:
            return
        mean_gap = 3600.0 / s.jump_rate_per_h
        times: list[float] = self._jump_times.tolist()
        t = times[-1] if times else 0.0
        while t <= t_max:
            t += self._rng.exponential(mean_gap)
            times.append(t)
            sign = self._rng.choice((-1.0, 1.0))
            self._jump_steps.append(sign * self._rng.uniform(s.jump_min_um, s.jump_max_um))
        self._jump_times = np.asarray(times)
        self._jump_cumsum = np.cumsum(self._jump_steps)
        self._jumps_until = t

    def jumps_um(self, t_s: np.ndarray | float) -> np.ndarray:
        """Sum of all jumps that happened up to ``t_s``."""
        t = np.asarray(t_s, dtype=np.float64)
        if self.settings.jump_rate_per_h <= 0:
            return np.zeros_like(t)
        self._extend_jumps(float(np.max(t)) if t.size else 0.0)
        idx = np.searchsorted(self._jump_times, t, side="right")
        padded = np.concatenate(([0.0], self._jump_cumsum))
        return padded[idx]

    def jump_times_s(self, until_s: float) -> np.ndarray:
        """Times of the jumps up to ``until_s`` (for plots and tests)."""
        self._extend_jumps(until_s)
        return self._jump_times[self._jump_times <= until_s].copy()

    def wander_um(self, t_s: np.ndarray | float) -> np.ndarray:
        """Slow random wander, zero at t = 0."""
        t = np.asarray(t_s, dtype=np.float64)[..., None]
        phase = 2 * np.pi * self._w_freq * t + self._w_phase
        return self._w_amp * (np.sin(phase) - np.sin(self._w_phase)).sum(axis=-1)

    def sample_z_um(self, t_s: np.ndarray | float) -> np.ndarray | float:
        """Sample position at time ``t_s`` relative to t = 0, um (float for a scalar time)."""
        z = (
            self.um_per_c * self.temperature_change_c(t_s)
            + self.wander_um(t_s)
            + self.jumps_um(t_s)
        )
        return float(z) if np.ndim(z) == 0 else z


class Drift(Protocol):
    """A sample z position over time (what the simulated microscope needs of a drift)."""

    def sample_z_um(self, t_s: np.ndarray | float) -> np.ndarray | float:
        """Sample position at time ``t_s`` relative to t = 0, um (float for a scalar time)."""
        ...


class SumDrift:
    """The sum of several drifts, e.g. a shared thermal drift plus one position's own wander.

    Parameters
    ----------
    drifts
        The drifts to add (at least one).
    """

    def __init__(self, *drifts: Drift) -> None:
        if not drifts:
            raise ZFocusError("SumDrift needs at least one drift")
        self.drifts = drifts

    def sample_z_um(self, t_s: np.ndarray | float) -> np.ndarray | float:
        """Sum of the drifts at ``t_s``, um (float for a scalar time)."""
        z = np.zeros(np.shape(t_s))
        for drift in self.drifts:
            z = z + np.asarray(drift.sample_z_um(t_s), np.float64)
        return float(z) if np.ndim(z) == 0 else z
