"""Fakes for the acquisition autofocus tests: a controllable drift and a truthful model."""

from __future__ import annotations

import gc
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from napari_zfocus.acquisition.simulated_scope import simulated_waits
from napari_zfocus.live.mmcore import make_simulated_mmcore
from napari_zfocus.live.scenes import PatternRenderer
from napari_zfocus.live.simulated_microscope import (
    SimClock,
    SimulatedMicroscope,
    SimulatedMicroscopeSettings,
)

SHAPE = (32, 40)


class FunctionDrift:
    """Sample z (um) as any function of time (s): the tests choose the drift exactly."""

    def __init__(self, z_of_t: Callable[[float], float]) -> None:
        self.z_of_t = z_of_t

    def sample_z_um(self, t_s: Any) -> float:
        return float(self.z_of_t(float(t_s)))


@dataclass
class FakePrediction:
    z_um: float
    z_argmax_um: float
    confidence: float
    bimodal: bool = False
    entropy: float = math.nan


class TruthModel:
    """Reads the true defocus of the simulated core (sample z - stage z) plus an error.

    ``script`` (optional) returns, for the n-th call, a replacement prediction or an
    exception to raise: faults on demand.
    """

    def __init__(self, sim: SimulatedMicroscope, core: Any, noise_um: float = 0.0,
                 confidence: float = 0.9, seed: int = 0,
                 script: Callable[[int], Any] | None = None) -> None:
        self.sim, self.core = sim, core
        self.noise_um, self.confidence = noise_um, confidence
        self.rng = np.random.default_rng(seed)
        self.script = script
        self.calls = 0

    def predict(self, image: np.ndarray, pixel_size_um: float) -> FakePrediction:
        n = self.calls
        self.calls += 1
        if self.script is not None:
            out = self.script(n)
            if isinstance(out, BaseException):
                raise out
            if out is not None:
                return out
        z = self.sim.sample_z_um() - float(self.core.getZPosition())
        if self.noise_um:
            z += float(self.rng.normal(0, self.noise_um))
        return FakePrediction(z, z, self.confidence)


def timed_sim(drift: FunctionDrift, shape: tuple[int, int] = SHAPE) -> SimulatedMicroscope:
    """A cheap simulated microscope (pattern renderer) on a simulated clock."""
    return SimulatedMicroscope(
        SimulatedMicroscopeSettings(shape=shape), drift=drift,  # type: ignore[arg-type]
        renderer=PatternRenderer(shape), clock=SimClock(),
    )


@contextmanager
def no_waits(sim: SimulatedMicroscope, core: Any) -> Iterator[Any]:
    """MDA runs on ``core`` wait on ``sim``'s simulated clock, not in real time (the
    simulated scope's helper, which needs only a ``clock`` and a ``core``)."""
    with simulated_waits(SimpleNamespace(clock=sim.clock, core=core)) as engine:  # type: ignore[arg-type]
        yield engine


@contextmanager
def simulated_core(sim: SimulatedMicroscope, **kwargs: Any) -> Iterator[Any]:
    """A UniMMCore over ``sim``, torn down (and checked for leftover threads) after."""
    threads_before = {t.ident for t in threading.enumerate()}
    core = make_simulated_mmcore(sim, exposure_ms=0.0, **kwargs)
    try:
        yield core
    finally:
        core.unloadAllDevices()
        del core
        gc.collect()
        leftover = [t for t in threading.enumerate()
                    if t.ident not in threads_before and t.is_alive()]
        assert leftover == []
