"""Per-stack knobs of the simulator: a fixed value or a range drawn anew for every stack.

:func:`draw` draws one knob; :func:`draw_sample` draws the sample knobs of a stack
(cell size, index excess and absorption, chamber height, rods, debris, pillars) into the
overrides of its :class:`~.sample.SampleParams`. All of them draw from the stack's
``features`` stream, never from the streams that existed before them, so a stack that uses
none of them is bit-identical to one simulated before they existed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from napari_zfocus.errors import ZFocusError

if TYPE_CHECKING:
    from napari_zfocus.simulation.simulated_stack import SimulationParams

__all__ = ["CELL_SPREAD", "FEATURES", "Range", "bounds", "draw", "draw_sample"]

#: A fixed value or a (low, high) range drawn per stack.
Range = float | tuple[float, float]

#: Features a stack may have or lack (``SimulationParams.feature_probability`` keys):
#: rods (its ``rod_fraction``), debris (its ``debris_per_100um2``), growth (its
#: ``grow_hours``) and the PDMS pillars.
FEATURES = ("rods", "debris", "growth", "pillars")

#: The cells of one stack vary by +-20 % around the stack's typical diameter, index excess
#: and absorption (about the spread of the default ranges), clipped to the knob's range:
#: one culture is fairly uniform, cultures differ.
CELL_SPREAD = 0.2

#: Per-stack cell knobs of SimulationParams, and whether each is drawn log-uniformly
#: (absorption spans more than a decade).
_CELL_KNOBS = (("cell_diameter_um", False), ("cell_dn", False),
               ("cell_absorption_per_um", True))


def bounds(value: Range) -> tuple[float, float]:
    """``(low, high)`` of a knob (``low == high`` for a fixed value)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ZFocusError(f"simulation: a range needs 2 values, got {value!r}")
        return float(value[0]), float(value[1])
    return float(value), float(value)


def draw(value: Range, rng: np.random.Generator, log: bool = False) -> float:
    """One value of a knob: fixed, uniform in its range, or log-uniform (``log``)."""
    lo, hi = bounds(value)
    if lo == hi:
        return lo
    if log and lo > 0:
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return float(rng.uniform(lo, hi))


def _around(typical: float, value: Range) -> tuple[float, float]:
    """The per-cell range of a stack: +-CELL_SPREAD around ``typical``, inside ``value``."""
    lo, hi = bounds(value)
    return max(lo, typical * (1.0 - CELL_SPREAD)), min(hi, typical * (1.0 + CELL_SPREAD))


def draw_sample(
    params: SimulationParams, rng: np.random.Generator, drawn: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, bool]]:
    """Draw a stack's sample knobs.

    Parameters
    ----------
    params
        The simulation settings (knobs that are ``None`` or 0 draw nothing).
    rng
        The stack's ``features`` stream.
    drawn
        The stack's record of drawn values; every knob drawn here is added to it.

    Returns
    -------
    overrides : dict
        Fields of ``params.sample`` to replace for this stack.
    present : dict
        For each feature of ``params.feature_probability``: whether this stack has it.
    """
    present = {f: bool(rng.random() < params.feature_probability[f])
               for f in FEATURES if f in params.feature_probability}
    over: dict[str, Any] = {}
    for name, log in _CELL_KNOBS:
        value = getattr(params, name)
        if value is not None:
            drawn[name] = draw(value, rng, log=log)
            over[name] = _around(drawn[name], value)
    for name, feature in (("rod_fraction", "rods"), ("debris_per_100um2", "debris")):
        value = getattr(params, name)
        if bounds(value)[1] > 0:
            drawn[name] = draw(value, rng) if present.get(feature, True) else 0.0
            over[name] = drawn[name]
    if not present.get("pillars", True):
        over["pillar_pitch_um"] = 0.0
    if "pillars" in present:
        drawn["pillars"] = present["pillars"]
    if params.chamber_height_um is not None:
        drawn["chamber_height_um"] = max(draw(params.chamber_height_um, rng),
                                         _tallest(params, over))
        over["chamber_height_um"] = drawn["chamber_height_um"]
    return over, present


def _tallest(params: SimulationParams, over: dict[str, Any]) -> float:
    """Height of the tallest thing that must fit the chamber (a cell is at most its
    diameter tall, a rod its width): a chamber lower than its cells would squash them."""
    sample = params.sample
    tallest = over.get("cell_diameter_um", sample.cell_diameter_um)[1]
    if over.get("rod_fraction", sample.rod_fraction) > 0:
        tallest = max(tallest, sample.rod_width_um[1])
    if over.get("debris_per_100um2", sample.debris_per_100um2) > 0:
        tallest = max(tallest, sample.debris_diameter_um[1])
    return float(tallest)
