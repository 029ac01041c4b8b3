"""The independent waveorder test world (benchmarks/worlds): stacks, physics signature, files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_zfocus.data import read_dataset, read_stack
from napari_zfocus.errors import ZFocusError

# The worlds are a package of benchmarks/, which is not installed.
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from worlds import waveorder_world as ww
from worlds.phantoms import Body, Scene, cell_mask

PX = ww.PIXEL_UM


def _sparse_scene() -> Scene:
    """Three yeast cells on the floor and one stuck to the ceiling (centre 4.2 um high)."""
    floor = [(5.0, 5.0, 2.0), (14.0, 6.0, 2.2), (6.0, 14.0, 1.8)]
    bodies = [Body(x, y, 0.9 * a, a, 0.95 * a, 0.9 * a, 0.3, 0.04, 2e-4) for x, y, a in floor]
    bodies.append(Body(14.5, 14.5, ww.CHAMBER_UM - 1.8, 2.0, 1.9, 1.8, 0.0, 0.04, 2e-4))
    return Scene(bodies, [0.9 * a for _, _, a in floor], n_cells=4, n_ceiling=1)


def _signal(stack: ww.WorldStack, size: int, *, floor: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per slice, averaged over the floor (or ceiling) cells: (centre - surroundings) /
    surroundings, the surroundings being a ring around the cell (the illumination is
    uneven), and the std inside the cell over the surroundings."""
    shape = (size, size)
    others = cell_mask(stack.scene, shape, PX, scale=1.3)
    data = stack.data.astype(float) - ww.OFFSET_ADU
    signal, spread = [], []
    for body in stack.scene.bodies:
        if body.dn <= 0 or (body.z < ww.CHAMBER_UM / 2) != floor:
            continue
        alone = Scene([body], [], 0, 0)
        ring = cell_mask(alone, shape, PX, scale=2.2) & ~cell_mask(alone, shape, PX, scale=1.6)
        around = data[:, ring & ~others].mean(axis=1)
        centre = data[:, cell_mask(alone, shape, PX, scale=0.4)].mean(axis=1)
        signal.append(centre / around - 1)
        spread.append(data[:, cell_mask(alone, shape, PX, scale=1.3)].std(axis=1) / around)
    return np.mean(signal, axis=0), np.mean(spread, axis=0)


def test_stack_is_uint16_and_a_function_of_its_seed():
    a = ww.simulate_stack(7, size=48, n_slices=11)
    assert a.data.shape == (11, 48, 48) and a.data.dtype == np.uint16
    lo, hi = ww.focus_range(11)
    assert lo <= a.focus_index <= hi and ww.focus_range(31) == (10, 20)
    assert abs(a.drawn["focus_true"] - a.focus_index) <= 0.5  # annotated to the nearest slice
    assert ww.CONDENSER_NA[0] <= a.drawn["condenser_na"] <= ww.CONDENSER_NA[1]
    assert a.data.min() > 0 and a.data.max() < 65535
    np.testing.assert_array_equal(a.data, ww.simulate_stack(7, size=48, n_slices=11).data)
    assert not np.array_equal(a.data, ww.simulate_stack(8, size=48, n_slices=11).data)


def test_transfer_functions_are_odd_and_even_in_defocus():
    """log_intensity computes them at |defocus| only; waveorder itself agrees at -defocus."""
    import torch
    from waveorder.models import isotropic_thin_3d

    d = np.array([0.5, 3.0, 12.0])
    h_abs, h_phase = ww.transfer_functions((32, 32), 0.4, d)
    a, p = isotropic_thin_3d.calculate_transfer_function(
        (32, 32), PX, torch.as_tensor(-d, dtype=torch.float32), ww.WAVELENGTH_UM, ww.N_MEDIA,
        0.4, ww.NA_DETECTION)
    assert float(p.imag.abs().max()) < 1e-5 and float(a.imag.abs().max()) < 1e-5
    np.testing.assert_allclose(p.real.numpy()[..., :17], -h_phase, atol=1e-5)
    np.testing.assert_allclose(a.real.numpy()[..., :17], h_abs, atol=1e-5)
    assert np.abs(h_phase).max() > 0.1  # not trivially zero


def test_sharing_far_slabs_between_whole_steps_is_close_to_exact():
    scene = _sparse_scene()
    steps, phase, absorb = ww._slabs(scene, 48, 0.3)
    planes = ((np.arange(15) - 7) * 2)[:, None] + steps[None, :]
    exact = ww.log_intensity(phase, absorb, planes, 0.35, far_um=np.inf)
    shared = ww.log_intensity(phase, absorb, planes, 0.35)
    rms = np.sqrt((exact**2).mean(axis=(1, 2)))
    assert np.all(np.sqrt(((shared - exact) ** 2).mean(axis=(1, 2))) < 0.03 * rms)
    near = (np.abs(planes) * ww.SLAB_UM <= ww.FAR_UM).all(axis=1)  # no slab shared: exact
    assert near.sum() >= 2
    np.testing.assert_allclose(shared[near], exact[near], atol=1e-6)


def test_cells_are_bright_below_dark_above_and_faint_at_the_annotated_focus(monkeypatch):
    """The sign convention: z > 0 (sample above the focal plane) makes denser-than-medium
    cells converging lenses imaged downstream: bright centres; z < 0 dark ones."""
    monkeypatch.setattr(ww, "draw_scene", lambda rng, field_um: _sparse_scene())
    size = 80
    for seed in (0, 1):
        stack = ww.simulate_stack(seed, size=size, n_slices=21)
        f = stack.focus_index
        signal, spread = _signal(stack, size, floor=True)
        assert signal[f + 3] > 0.05 and signal[f - 3] < -0.05
        # Within +/-4 slices (farther out, a wide condenser washes all contrast out).
        window = slice(f - 4, f + 5)
        assert abs(int(np.argmin(spread[window])) - 4) <= 1
        assert abs(int(np.argmin(np.abs(signal[window]))) - 4) <= 1
        # The ceiling cell, 4.2 - 1.8 = 2.4 um above the floor cells' middle, is in focus
        # when the floor is 2.4 um BELOW the focal plane: z = -2.4 um.
        ceiling, _ = _signal(stack, size, floor=False)
        expected = stack.drawn["focus_true"] - (4.2 - stack.scene.focus_height())
        assert abs(int(np.argmin(np.abs(ceiling[window]))) + f - 4 - expected) <= 1


def test_dataset_is_readable_and_never_overwritten(tmp_path, capsys):
    out = tmp_path / "world"
    ww.write_world_dataset(out, 2, seed=3, size=32)
    dataset = read_dataset(out)
    assert [a.stack for a in dataset.annotations] == ["stack_000.tif", "stack_001.tif"]
    for a in dataset.annotations:
        assert 10 <= a.focus_index <= 20
        assert a.z_step_um == 1.0 and a.pixel_size_um == pytest.approx(0.24)
        assert {"condenser_na", "photons", "n_cells", "focus_true"} <= set(a.extra)
        assert dataset.open_stack(a).data.shape == (31, 32, 32)
    # Stack i depends on (seed, i, size) only, not on how many stacks were asked for.
    first = ww.simulate_stack(np.random.SeedSequence(3, spawn_key=(0,)), size=32)
    np.testing.assert_array_equal(np.asarray(read_stack(out / "stack_000.tif").data), first.data)
    world = json.loads((out / "world.json").read_text())
    assert world["name"] == "waveorder" and world["waveorder_version"].startswith("3.")

    with pytest.raises(ZFocusError, match="not empty"):
        ww.write_world_dataset(out, 1, seed=4, size=32)
    assert ww.main([str(out), "--stacks", "1", "--size", "32"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert len(read_dataset(out).annotations) == 2  # untouched
    assert ww.main([str(out), "--stacks", "1", "--size", "32", "--overwrite"]) == 0
    assert len(read_dataset(out).annotations) == 1


def test_fixed_condenser_aperture_keeps_the_scene_of_a_seed(tmp_path, capsys):
    """``--condenser-na A`` is one microscope's Koehler setting: every stack gets ``A``,
    and a seed still draws the same scene and focus (only the optics differ)."""
    out = tmp_path / "lab"
    assert ww.main([str(out), "--stacks", "2", "--size", "32", "--seed", "3",
                    "--condenser-na", "0.4"]) == 0
    dataset = read_dataset(out)
    assert [a.extra["condenser_na"] for a in dataset.annotations] == ["0.400", "0.400"]
    assert json.loads((out / "world.json").read_text())["ranges"]["condenser_na"] == [0.4, 0.4]
    drawn = ww.simulate_stack(np.random.SeedSequence(3, spawn_key=(0,)), size=32)
    fixed = ww.simulate_stack(np.random.SeedSequence(3, spawn_key=(0,)), size=32,
                              condenser_na=(0.4, 0.4))
    assert fixed.focus_index == drawn.focus_index
    assert fixed.drawn["n_cells"] == drawn.drawn["n_cells"]
    assert fixed.drawn["condenser_na"] == 0.4 != drawn.drawn["condenser_na"]

    for bad in (["0.5", "0.4"], ["0.3", "0.4", "0.5"], ["2"]):
        with pytest.raises(SystemExit):
            ww.main([str(tmp_path / "bad"), "--stacks", "1", "--condenser-na", *bad])
    assert "--condenser-na" in capsys.readouterr().err
