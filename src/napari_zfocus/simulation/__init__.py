"""Physically grounded bright-field simulator of yeast in a microfluidic chamber (no torch).

Stacks and datasets (for training and testing the z-position CNN)::

    from napari_zfocus.simulation import SimulationParams, simulate_stack, simulate_dataset
    sim = simulate_stack(SimulationParams(n_cells=40), seed=1)   # uint16 (31, 320, 320)
    sim.focus_index, sim.z_um                                     # ground truth
    simulate_dataset("sim_data", n_stacks=100, seed=0)           # TIFFs + annotations.csv
    simulate_stack(SimulationParams.broad(), seed=1)   # or PRESETS["broad"](): rods, debris,
                                                       # chambers and optics of every lab

One evolving scene rendered at any defocus (for the simulated microscope)::

    scene = Scene.random(SampleParams(n_cells=15), rng, shape=(256, 256), pixel_size_um=0.24)
    renderer = OpticalRenderer(OpticsParams())
    planes = renderer.render(scene, np.arange(-25, 25.01, 0.25))  # float32, background 1
    frame = apply_camera(planes[100], CameraParams(), rng)          # uint16
    scene.grow(0.25, rng)                                            # 15 min of growth

Modules: :mod:`.sample` (cells, pillars, chamber, growth; :mod:`.rods`, :mod:`.debris`),
:mod:`.knobs` (per-stack values and ranges), :mod:`.optics` (multi-slice
angular spectrum, pupil, Koehler source), :mod:`.render` (scene -> intensity planes),
:mod:`.camera` (vignetting, noise, 16 bit), :mod:`.simulated_stack` (:func:`simulate_stack`),
:mod:`.dataset` (:func:`simulate_dataset`).

Convention: defocus z in um, z > 0 = sample above the focal plane; z = 0 = focal plane
through the floor-cell layer; slice i of a stack lies at ``(i - focus_index) * z_step_um``.
"""

from __future__ import annotations

from napari_zfocus.simulation.camera import CameraParams, apply_camera, vignetting_map
from napari_zfocus.simulation.dataset import simulate_dataset, stack_seed
from napari_zfocus.simulation.debris import Debris
from napari_zfocus.simulation.optics import Optics, OpticsParams
from napari_zfocus.simulation.render import OpticalRenderer, PreparedScene, render_planes
from napari_zfocus.simulation.sample import Cells, SampleParams, Scene, optical_layers
from napari_zfocus.simulation.simulated_stack import (
    PRESETS,
    SimulatedStack,
    SimulationParams,
    simulate_stack,
)

__all__ = [
    "PRESETS",
    "CameraParams",
    "Cells",
    "Debris",
    "Optics",
    "OpticsParams",
    "PreparedScene",
    "OpticalRenderer",
    "SampleParams",
    "Scene",
    "SimulatedStack",
    "SimulationParams",
    "apply_camera",
    "optical_layers",
    "render_planes",
    "simulate_dataset",
    "simulate_stack",
    "stack_seed",
    "vignetting_map",
]
