"""The focus record inside OME-TIFF files written by a real pymmcore-plus MDA."""

from __future__ import annotations

import gc
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymmcore_plus")
ome_types = pytest.importorskip("ome_types")
tifffile = pytest.importorskip("tifffile")
useq = pytest.importorskip("useq")

from napari_zfocus.acquisition.ome_focus_record import (
    NAMESPACE,
    read_focus_record,
    write_focus_record,
)
from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.drift import DriftSettings, ThermalDrift
from napari_zfocus.live.mmcore import make_simulated_mmcore
from napari_zfocus.live.scenes import PatternRenderer
from napari_zfocus.live.simulated_microscope import (
    SimClock,
    SimulatedMicroscope,
    SimulatedMicroscopeSettings,
)

SHAPE = (24, 32)


@pytest.fixture(scope="module")
def core():
    drift = ThermalDrift(DriftSettings(total_drift_um=0, wander_um=0, jump_rate_per_h=0))
    sim = SimulatedMicroscope(SimulatedMicroscopeSettings(shape=SHAPE), drift=drift,
                              renderer=PatternRenderer(SHAPE), clock=SimClock())
    core = make_simulated_mmcore(sim, exposure_ms=1.0, z_limits_um=(-50.0, 50.0))
    yield core
    core.unloadAllDevices()
    del core  # a core with unloaded devices must not outlive the interpreter
    gc.collect()


def _run(core, seq: useq.MDASequence, output: Path) -> list[dict]:
    """Run ``seq`` to ``output``; one frame dict per event, with made-up focus values."""
    core.mda.run(seq, output=str(output))
    return [
        {"index": dict(event.index),
         "zfocus": {"decision": "moved", "estimate_um": 0.25 * k - 1.0, "frames": k % 3,
                    "position": event.pos_name or ""}}
        for k, event in enumerate(seq.iter_events())
    ]


def _pixels(path: Path) -> list[np.ndarray]:
    with tifffile.TiffFile(path) as tif:
        return [page.asarray() for page in tif.pages]


def _ome(path: Path):
    return ome_types.from_xml(tifffile.tiffcomment(path))


def test_single_position_record_round_trip(core, tmp_path):
    output = tmp_path / "single.ome.tif"
    seq = useq.MDASequence(time_plan={"interval": 0, "loops": 2},
                           z_plan={"range": 2, "step": 1})
    frames = _run(core, seq, output)
    assert output.is_file() and len(frames) == 6  # one file, every plane in it
    before_pixels, before = _pixels(output), _ome(output)

    assert write_focus_record(output, frames) == [output]

    assert read_focus_record(output) == frames
    after_pixels = _pixels(output)
    assert len(after_pixels) == 6
    assert all(np.array_equal(a, b) for a, b in zip(before_pixels, after_pixels, strict=True))
    ome_types.validate_xml(tifffile.tiffcomment(output))  # against the OME XSD
    after = _ome(output)
    assert after.images[0].pixels.planes == before.images[0].pixels.planes
    namespaces = [a.namespace for a in after.structured_annotations.map_annotations]
    assert namespaces.count(NAMESPACE) == 1 and "pymmcore_plus" in namespaces
    record_id = next(a.id for a in after.structured_annotations.map_annotations
                     if a.namespace == NAMESPACE)
    assert [r.id for r in after.images[0].annotation_refs] == [record_id]


def test_multi_position_frames_go_to_their_position_file(core, tmp_path):
    seq = useq.MDASequence(
        stage_positions=[useq.Position(z=0.0, name="a"), useq.Position(z=1.0, name="b")],
        time_plan={"interval": 0, "loops": 2},
    )
    frames = _run(core, seq, tmp_path / "multi.ome.tif")
    folder = tmp_path / "multi"  # pymmcore-plus 0.18.1: a folder, one file per position
    files = [folder / "multi_p000.ome.tif", folder / "multi_p001.ome.tif"]
    assert sorted(folder.iterdir()) == files
    before = [_pixels(f) for f in files]

    assert write_focus_record(tmp_path / "multi.ome.tif", frames) == files

    for p, path in enumerate(files):
        assert read_focus_record(path) == [f for f in frames if f["index"]["p"] == p]
        assert all(np.array_equal(a, b) for a, b in zip(before[p], _pixels(path), strict=True))
        ome_types.validate_xml(tifffile.tiffcomment(path))
        model = _ome(path)
        assert [len(img.annotation_refs) for img in model.images] == [int(i == p) for i in (0, 1)]
    # The folder or a single file of it are accepted as ``output`` too.
    assert write_focus_record(folder, frames[:1]) == files[:1]
    assert read_focus_record(files[0]) == frames[:1]


def test_a_new_record_replaces_the_old_one(core, tmp_path):
    output = tmp_path / "again.ome.tif"
    frames = _run(core, useq.MDASequence(time_plan={"interval": 0, "loops": 3}), output)
    write_focus_record(output, frames)
    changed = [{**f, "zfocus": {"decision": "held", "why": "second pass"}} for f in frames]
    write_focus_record(output, changed)
    assert read_focus_record(output) == changed
    annotations = _ome(output).structured_annotations.map_annotations
    assert [a.namespace for a in annotations].count(NAMESPACE) == 1


def test_json_values_are_plain_and_strict(core, tmp_path):
    output = tmp_path / "values.ome.tif"
    frames = _run(core, useq.MDASequence(time_plan={"interval": 0, "loops": 1}), output)
    frames[0]["zfocus"] = {"estimate_um": np.float32(1.5), "confidence": math.nan,
                           "planes": np.arange(3), "note": "µm <&> \"quoted\"\nline"}
    write_focus_record(output, frames)
    assert read_focus_record(output)[0]["zfocus"] == {
        "estimate_um": 1.5, "confidence": None, "planes": [0, 1, 2],
        "note": "µm <&> \"quoted\"\nline"}


def test_a_file_without_record_reads_empty(core, tmp_path):
    output = tmp_path / "none.ome.tif"
    _run(core, useq.MDASequence(time_plan={"interval": 0, "loops": 1}), output)
    assert read_focus_record(output) == []


@pytest.mark.parametrize("kind", ["plain_tiff", "text", "missing"])
def test_not_an_ome_tiff_is_a_one_line_error(tmp_path, kind):
    path = tmp_path / "x.ome.tif"
    if kind == "plain_tiff":
        tifffile.imwrite(path, np.zeros((4, 4), np.uint16), ome=False)  # not OME despite its name
    elif kind == "text":
        path.write_text("not a tiff")
    with pytest.raises(ZFocusError) as info:
        write_focus_record(path, [{"index": {"t": 0}, "zfocus": {}}])
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    expected = {"plain_tiff": "not an OME-TIFF", "text": "not a readable TIFF",
                "missing": "no OME-TIFF written there"}[kind]
    assert expected in message
    if kind != "missing":
        with pytest.raises(ZFocusError, match="^" + str(path)):
            read_focus_record(path)


@pytest.mark.parametrize("damage", ["raises", "writes_garbage"])
def test_a_failed_rewrite_leaves_the_file_unchanged(core, tmp_path, monkeypatch, damage):
    output = tmp_path / "safe.ome.tif"
    frames = _run(core, useq.MDASequence(time_plan={"interval": 0, "loops": 2}), output)
    original = output.read_bytes()
    real = tifffile.tiffcomment

    def broken(path, comment=None, **kwargs):
        if damage == "raises":
            with open(path, "r+b") as fh:  # half a write, then the disk is full
                fh.seek(100)
                fh.write(b"\0" * 64)
            raise OSError(28, "No space left on device")
        return real(path, comment=b"<OME>garbage", **kwargs)

    monkeypatch.setattr(tifffile, "tiffcomment", broken)
    with pytest.raises(ZFocusError) as info:
        write_focus_record(output, frames)
    assert str(info.value).startswith(str(output)) and "\n" not in str(info.value)
    assert output.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["safe.ome.tif"]  # no temp file left


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([{"index": {"t": -1}}], r"^frames\[0\] index 't' must be an integer >= 0"),
        ([{"index": {"t": 0}}, {"zfocus": {}}], r"^frames\[1\] must be a dict with an 'index'"),
        ([{"index": {"t": 0}, "zfocus": {"x": object()}}], r"^frames\[0\] is not JSON-able"),
        ([{"index": {"t": 0, "p": 2}}], r"no file for position p=2"),
    ],
)
def test_bad_frames_are_refused(core, tmp_path, frames, message):
    seq = useq.MDASequence(stage_positions=[useq.Position(z=0.0), useq.Position(z=1.0)])
    _run(core, seq, tmp_path / "bad.ome.tif")
    with pytest.raises(ZFocusError, match=message):
        write_focus_record(tmp_path / "bad.ome.tif", frames)
