"""Rod-shaped cells: spherocylinders (capsules) like fission yeast or large bacteria.

A rod is a row of :class:`~.cells.Cells` with ``rod`` set: ``a`` is its half length cap to
cap, ``b = c`` its radius, ``angle`` its direction in the plane. It lies flat on the floor
(or hangs from the ceiling), so its centre height is its radius plus a small gap, the same
rule as for the ellipsoidal cells. Rods have no bud and no vacuole; they grow by getting
longer (exponentially, doubling in length over one cycle) and divide in the middle
(fission), which is what :func:`elongate_rods` and :func:`divide_rods` do during
:meth:`Scene.grow <.sample.Scene.grow>`.

Their optical thickness profile is :func:`capsule_half_thickness` (used by :mod:`.slabs`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from napari_zfocus.simulation.cells import Cells
    from napari_zfocus.simulation.sample import SampleParams, Scene

__all__ = ["capsule_half_thickness", "divide_rods", "elongate_rods", "make_rods"]

#: A rod is at least this many times as long as it is wide (shorter is an ellipsoid).
_MIN_ASPECT = 1.2


def make_rods(
    cells: Cells, which: np.ndarray, params: SampleParams, rng: np.random.Generator
) -> None:
    """Turn the cells selected by the boolean mask ``which`` into rods, in place.

    Length and width are drawn uniformly from ``params.rod_length_um`` and
    ``params.rod_width_um``; the cell-cycle phase (how far a rod is from dividing) is
    uniform, and the index excess and absorption stay those drawn for the cell.
    """
    k = int(np.count_nonzero(which))
    if k == 0:
        return
    width = rng.uniform(*params.rod_width_um, k)
    length = np.maximum(rng.uniform(*params.rod_length_um, k), _MIN_ASPECT * width)
    cells.rod[which] = True
    cells.a[which] = 0.5 * length
    cells.b[which] = cells.c[which] = 0.5 * width
    cells.vac[which] = 0.0
    cells.bud[which] = 0.0
    cells.phase[which] = rng.uniform(0.0, 1.0, k)


def capsule_half_thickness(
    along: np.ndarray, across: np.ndarray, a: float, b: float, c: float
) -> np.ndarray:
    """Half the vertical thickness of a lying spherocylinder at in-plane offsets (um).

    ``along`` / ``across``: offsets from the centre along and across the rod axis;
    ``a``: half length cap to cap; ``b``: radius; ``c``: vertical semi-axis of the cross
    section (``c = b``: round). The axis segment has half length ``a - b``; a point at
    distance ``d`` from it sees a chord of half length ``c * sqrt(1 - d^2 / b^2)``.
    """
    s = np.clip(np.abs(along) - (a - b), 0.0, None)
    d2 = (s * s + across * across) / (b * b)
    return c * np.sqrt(np.clip(1.0 - d2, 0.0, None))


def elongate_rods(cells: Cells, phase_step: np.ndarray) -> None:
    """Grow the rods' length by ``2 ** phase_step`` (exponential elongation), in place."""
    if cells.rod.any():
        # The radius stays; the whole length (so the half length a) grows.
        cells.a = np.where(cells.rod, cells.a * np.exp2(phase_step), cells.a)


def divide_rods(scene: Scene, rng: np.random.Generator) -> None:
    """Rods at the end of their cycle (or longer than the longest rod) split in two.

    Each daughter is half as long and lies where its half of the mother was, turned by a
    few degrees (daughters do not stay perfectly aligned).
    """
    cells = scene.cells
    longest = 0.5 * scene.params.rod_length_um[1]
    ready = np.flatnonzero(cells.rod & ((cells.phase >= 1.0) | (cells.a > longest)))
    if ready.size == 0:
        return
    half = 0.5 * cells.a[ready]
    ca, sa = np.cos(cells.angle[ready]), np.sin(cells.angle[ready])
    kids = cells.take(ready)
    kids.x, kids.y = kids.x + half * ca, kids.y + half * sa
    kids.a = np.maximum(half, _MIN_ASPECT * kids.b)
    kids.angle = kids.angle + rng.normal(0.0, 0.1, ready.size)
    kids.phase = rng.uniform(-0.2, 0.0, ready.size)
    cells.x[ready] -= half * ca
    cells.y[ready] -= half * sa
    cells.a[ready] = kids.a
    cells.angle[ready] += rng.normal(0.0, 0.1, ready.size)
    cells.phase[ready] = 0.0
    scene.cells = cells.concat(kids)
