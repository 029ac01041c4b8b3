"""Debris: small particles in the chamber (dust, precipitates, beads, cell fragments).

Real chambers are never clean: sub-micron to micron-sized particles float in the medium
or have settled on the floor or stuck to the ceiling. They are either strongly absorbing
(dark specks: dust, carbon, precipitates) or of high refractive index (bright-dark rings:
silica, polystyrene beads, lipid droplets), and they defocus very differently from cells
(a point scatterer has no in-focus minimum of contrast), which is exactly what a focus
model must learn to ignore.

:func:`random_debris` draws them for a :class:`~.sample.Scene`; :mod:`.slabs` rasterises
them. Debris are not cells: they never enter the focus definition (the floor-cell layer),
do not grow and stay where they are while the scene grows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from napari_zfocus.simulation.sample import Scene

__all__ = ["Debris", "random_debris"]

_FIELDS = ("x", "y", "z", "r", "dn", "mu")

#: Where the particles are: settled on the floor, stuck to the ceiling, or suspended in
#: the medium (the rest).
_FLOOR, _CEILING = 0.4, 0.2
#: Half of the particles absorb strongly (amplitude attenuation per um of path: 0.3..2,
#: i.e. a 1 um speck passes 2 % .. 55 % of the light) with a modest index excess; the other
#: half are nearly transparent with a high index excess (n ~ 1.43..1.59 in water).
_ABSORBING = 0.5
_ABSORBING_MU = (0.3, 2.0)
_ABSORBING_DN = (0.02, 0.1)
_HIGH_INDEX_DN = (0.1, 0.25)
_HIGH_INDEX_MU = (0.0, 0.005)


@dataclass
class Debris:
    """Spherical particles, structure of arrays (um): centre ``x, y`` in field coordinates,
    centre height ``z`` above the floor, radius ``r``, index excess ``dn`` and amplitude
    absorption ``mu`` per um."""

    x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    z: np.ndarray = field(default_factory=lambda: np.zeros(0))
    r: np.ndarray = field(default_factory=lambda: np.zeros(0))
    dn: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mu: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, index: np.ndarray) -> Debris:
        """The particles selected by a boolean mask or an index array (a copy)."""
        return Debris(**{k: getattr(self, k)[index] for k in _FIELDS})


def random_debris(scene: Scene, rng: np.random.Generator) -> Debris:
    """Draw the scene's debris: ``params.debris_per_100um2`` over the field and its margin.

    Diameters are log-uniform in ``params.debris_diameter_um`` (many small, few large);
    particles inside a pillar are dropped.
    """
    p = scene.params
    h, w = scene.field_um
    m = scene.margin_um
    n = int(rng.poisson(p.debris_per_100um2 * (h + 2 * m) * (w + 2 * m) / 100.0))
    lo, hi = p.debris_diameter_um
    r = 0.5 * np.exp(rng.uniform(np.log(lo), np.log(hi), n))
    where = rng.random(n)
    height = p.chamber_height_um
    z = np.where(where < _FLOOR, r,
                 np.where(where < _FLOOR + _CEILING, height - r, rng.uniform(r, height - r)))
    absorbing = rng.random(n) < _ABSORBING
    debris = Debris(
        x=rng.uniform(-m, w + m, n),
        y=rng.uniform(-m, h + m, n),
        z=z,
        r=r,
        dn=np.where(absorbing, rng.uniform(*_ABSORBING_DN, n), rng.uniform(*_HIGH_INDEX_DN, n)),
        mu=np.where(absorbing, rng.uniform(*_ABSORBING_MU, n), rng.uniform(*_HIGH_INDEX_MU, n)),
    )
    keep = np.ones(n, dtype=bool)
    for px, py in scene.pillars:
        keep &= np.hypot(debris.x - px, debris.y - py) > 0.5 * p.pillar_diameter_um + debris.r
    return debris.take(keep)
