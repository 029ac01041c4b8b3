"""The default simulator output is what it was before rods, debris and the broad preset.

The fingerprints below were recorded with the code before those features existed. They
are not a bare hash of the pixels: numpy picks SIMD kernels for exp / sin / cos by CPU, so
the same code rounds a few pixels 1 ADU apart on another machine (disabling AVX2 here
moved 55 of 64512 pixels by 1 ADU). Instead every stack is summed over 2 x 2 blocks per
slice, exact integers that move by a few ADU under such rounding (tolerance 16) but by
thousands when a single random number or any optics changes. On the machine they were
recorded on, the stacks were also checked bit-identical (sha256) before and after.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from napari_zfocus.simulation import SampleParams, Scene, SimulationParams, simulate_stack

BASE = SimulationParams(shape=(48, 48), n_slices=5)  # everything else default

RECORDED = {
    "seed0": dict(
        params=BASE, seed=0, focus=2,
        blocks=[1362610, 1459223, 1290964, 1322309, 1359543, 1456520, 1286876, 1329357,
                1375659, 1451584, 1277176, 1335190, 1408696, 1436723, 1256128, 1346471,
                1429576, 1437881, 1258498, 1347412],
        cells=[92, 573.9733207207668, 216.96192274139926, 218.7040981404508],
        drawn={"n_cells": 253, "ceiling_fraction": 0.09490114571564942,
               "condenser_na": 0.4083513882974738, "photons": 1298.4669165778319,
               "read_noise_e": 3.4033936313173654, "vignetting": 0.2120095243968207,
               "tilt_x": 0.0014175748558008152, "tilt_y": -0.0020561060116574305},
    ),
    "seed1": dict(
        params=BASE, seed=1, focus=2,
        blocks=[2006545, 2113412, 1838054, 2010215, 1991511, 2095441, 1845157, 2025259,
                1971526, 2087920, 1843227, 2037606, 1965756, 2088867, 1842822, 2038776,
                1944598, 2079632, 1836368, 2037675],
        cells=[99, 484.06623267096217, 228.70167567681526, 238.0735635786157],
        drawn={"n_cells": 122, "ceiling_fraction": 0.05230065641192875,
               "condenser_na": 0.39676777982959416, "photons": 1946.1287529360154,
               "read_noise_e": 1.9358750533386433, "vignetting": 0.25314457217603625,
               "tilt_x": -0.00019388385128007524, "tilt_y": 0.0008047072312678252},
    ),
    # Growth runs the colony code that rods now share.
    "grown": dict(
        params=dataclasses.replace(BASE, grow_hours=(2.0, 3.0)), seed=2, focus=2,
        blocks=[3452404, 3791925, 3387228, 3551769, 3503998, 3785831, 3360306, 3526956,
                3553800, 3753600, 3343359, 3506959, 3585247, 3728156, 3314725, 3501845,
                3604470, 3715826, 3300054, 3486507],
        cells=[29, 160.72255812086954, 62.63520926545964, 64.2294881365031],
        drawn={"n_cells": 248, "ceiling_fraction": 0.043996160510844304,
               "condenser_na": 0.3653919618473229, "photons": 3492.6869828609215,
               "read_noise_e": 3.88572470477284, "vignetting": 0.24851839348797083,
               "grow_hours": 2.6753625228443707, "tilt_x": 0.0034105716085048917,
               "tilt_y": -0.002246827345476845},
    ),
}


def block_sums(data: np.ndarray) -> np.ndarray:
    """Exact int64 sums of each slice's 2 x 2 blocks, slice by slice."""
    z, h, w = data.shape
    return data.astype(np.int64).reshape(z, 2, h // 2, 2, w // 2).sum(axis=(2, 4)).ravel()


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_default_stacks_are_unchanged(name):
    rec = RECORDED[name]
    sim = simulate_stack(rec["params"], seed=rec["seed"])
    assert sim.focus_index == rec["focus"]
    assert sim.drawn.keys() == rec["drawn"].keys()  # no new knob drawn by default
    assert sim.drawn == pytest.approx(rec["drawn"], rel=1e-12)
    c = sim.scene.cells
    assert len(c) == rec["cells"][0] and not c.rod.any() and len(sim.scene.debris) == 0
    assert [c.x.sum(), c.z.sum(), c.a.sum()] == pytest.approx(rec["cells"][1:], rel=1e-9)
    assert np.abs(block_sums(sim.data) - np.array(rec["blocks"])).max() <= 16


def test_live_scene_growth_is_unchanged():
    # What the simulated microscope does: one scene, grown in steps.
    rng = np.random.default_rng(5)
    scene = Scene.random(SampleParams(n_cells=15), rng, (64, 64), 0.24)
    for _ in range(3):
        scene.grow(0.5, rng)
    c = scene.cells
    assert len(c) == 35
    assert [c.x.sum(), c.z.sum(), c.a.sum(), scene.focus_height_um] == pytest.approx(
        [248.43336978624808, 77.36415889018814, 79.91649424773547, 2.142455818313243],
        rel=1e-9)
