"""The cells of a simulated sample as a structure of arrays (:class:`Cells`).

Also :func:`child_rng`, the separate random stream of the optional sample features.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Cells", "child_rng"]

_CELL_FIELDS = (
    "x", "y", "z", "a", "b", "c", "angle", "dn", "mu",
    "vac", "vac_dx", "vac_dy", "bud", "bud_angle", "phase", "ceiling", "rod",
)


def child_rng(rng: np.random.Generator) -> np.random.Generator:
    """A generator independent of ``rng`` that draws nothing from ``rng``'s stream.

    The optional sample features (rods, debris) draw from it, so a scene without them
    consumes exactly the random numbers it always did and stays bit-identical. Repeated
    calls give different children (the seed sequence counts them), deterministically.
    """
    spawn = getattr(rng, "spawn", None)
    if spawn is not None:
        return spawn(1)[0]
    # numpy < 1.25 has no Generator.spawn: seed the child from one draw instead (only
    # ever reached when a feature is on, so the default streams are still untouched).
    return np.random.default_rng(int(rng.integers(2**63)))  # pragma: no cover


@dataclass
class Cells:
    """Structure of arrays, one entry per cell (lengths in um, angles in rad).

    ``x, y``: centre in field coordinates; ``z``: centre height above the floor;
    ``a, b, c``: semi-axes (a along ``angle``, c vertical); ``dn``: index excess; ``mu``:
    amplitude absorption per um; ``vac``: vacuole radius as a fraction of ``min(a, b)``
    (0 = none) at offset ``(vac_dx, vac_dy)`` (fractions of a, b); ``bud``: bud radius as a
    fraction of the mother's (0 = none) in direction ``bud_angle``; ``phase``: cell-cycle
    progress 0..1 (division at 1); ``ceiling``: stuck to the ceiling; ``rod``: a rod
    (spherocylinder, :mod:`.rods`) instead of an ellipsoid, with ``a`` its half length cap to
    cap and ``b = c`` its radius.
    """

    x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    z: np.ndarray = field(default_factory=lambda: np.zeros(0))
    a: np.ndarray = field(default_factory=lambda: np.zeros(0))
    b: np.ndarray = field(default_factory=lambda: np.zeros(0))
    c: np.ndarray = field(default_factory=lambda: np.zeros(0))
    angle: np.ndarray = field(default_factory=lambda: np.zeros(0))
    dn: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mu: np.ndarray = field(default_factory=lambda: np.zeros(0))
    vac: np.ndarray = field(default_factory=lambda: np.zeros(0))
    vac_dx: np.ndarray = field(default_factory=lambda: np.zeros(0))
    vac_dy: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bud: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bud_angle: np.ndarray = field(default_factory=lambda: np.zeros(0))
    phase: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ceiling: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    rod: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, index: np.ndarray) -> Cells:
        """Return the cells selected by a boolean mask or an index array."""
        return Cells(**{k: getattr(self, k)[index] for k in _CELL_FIELDS})

    def concat(self, other: Cells) -> Cells:
        """Return these cells followed by ``other``."""
        return Cells(
            **{k: np.concatenate([getattr(self, k), getattr(other, k)]) for k in _CELL_FIELDS}
        )

    @property
    def radius(self) -> np.ndarray:
        """Mean lateral radius of each cell body, um."""
        return 0.5 * (self.a + self.b)

    def bud_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Centres (x, y) of the buds (meaningful where ``bud > 0``)."""
        r = self.radius * (1.0 + 0.85 * self.bud)
        return self.x + r * np.cos(self.bud_angle), self.y + r * np.sin(self.bud_angle)
