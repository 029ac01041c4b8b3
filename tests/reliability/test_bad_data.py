"""Every bad data input is refused up front, naming the file, and touches nothing.

A hostile user hands the commands truncated stacks (ImageJ, OME, plain, compressed, a
folder with a cut slice), empty and non-TIFF files, RGB / 1-bit / complex / NaN pixels,
wrong dimensions, constant stacks, pixel sizes the model cannot use, and annotations.csv
files with bad rows or paths leading out of the dataset folder. Each is refused (exit 2,
one line naming the file, no traceback; never a silently wrong answer) and the dataset
stays byte for byte as it was.
"""

from __future__ import annotations

import json
import math
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import tifffile
from _reliability import Snapshot, assert_refused, run_cli

from _tiny import write_noise_dataset, write_untrained_model
from napari_zfocus.errors import StackError, ZFocusError
from napari_zfocus.validation import check_number

HEADER = "stack,focus_index,z_step_um,pixel_size_um\n"
#: The TINY model sees 12 um at 0.24 um/px: 64 px images at 0.24 um/px cover its field.
PX = 0.24


def _imagej(path: Path, data: np.ndarray, **kw: object) -> Path:
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / PX, 1 / PX),
                     metadata={"axes": "ZYX" if data.ndim == 3 else "YX", "unit": "um",
                               "spacing": 1.0}, **kw)
    return path


def _cut(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One of every bad file (and good references), written once for the module."""
    d = tmp_path_factory.mktemp("bad_data")
    rng = np.random.default_rng(0)
    noise = rng.integers(100, 4000, (7, 64, 64), dtype=np.uint16)
    f: dict[str, Path] = {"model": write_untrained_model(d / "tiny.zfm")}
    f["stack"] = _imagej(d / "stack.tif", noise)
    f["image"] = _imagej(d / "image.tif", noise[0])
    tifffile.imwrite(d / "ome.ome.tif", noise, ome=True,
                     metadata={"axes": "ZYX", "PhysicalSizeX": PX, "PhysicalSizeZ": 1.0})
    tifffile.imwrite(d / "plain.tif", noise)
    _imagej(d / "zlib.tif", noise, compression="zlib")
    for name in ("stack", "ome.ome", "plain", "zlib", "image"):
        f[f"cut_{name}"] = _cut(d / f"{name}.tif", d / f"cut_{name}.tif")
    f["cut_tail"] = _cut(f["stack"], d / "cut_tail.tif", 0.9)  # last slice cut short
    folder = d / "slices"
    folder.mkdir()
    for i, plane in enumerate(noise):
        tifffile.imwrite(folder / f"z_{i}.tif", plane)
    _cut(folder / "z_3.tif", folder / "z_3.tif")
    f["cut_folder"] = folder
    f["empty"] = d / "empty.tif"
    f["empty"].write_bytes(b"")
    f["text"] = d / "text.tif"
    f["text"].write_text("stack,focus_index\n")
    tifffile.imwrite(d / "rgb.tif", rng.integers(0, 255, (64, 64, 3), np.uint8),
                     photometric="rgb")
    tifffile.imwrite(d / "rgb_stack.tif", rng.integers(0, 255, (5, 64, 64, 3), np.uint8),
                     photometric="rgb")
    tifffile.imwrite(d / "bool.tif", rng.random((5, 64, 64)) > 0.5)
    tifffile.imwrite(d / "bool2d.tif", rng.random((64, 64)) > 0.5)
    tifffile.imwrite(d / "complex.tif", (rng.random((5, 64, 64)) + 1j).astype(np.complex64))
    nan = rng.random((64, 64)).astype(np.float32) + 1
    nan[32, 32] = np.nan
    _imagej(d / "nan2d.tif", nan)
    inf = rng.random((5, 64, 64)).astype(np.float32) + 1
    inf[2, 3, 3] = np.inf
    _imagej(d / "inf_stack.tif", inf)
    tifffile.imwrite(d / "oned.tif", rng.integers(0, 100, 64, np.uint16))
    tifffile.imwrite(d / "two_channels.tif", rng.integers(0, 100, (5, 2, 64, 64), np.uint16),
                     imagej=True, metadata={"axes": "ZCYX"})
    tifffile.imwrite(d / "constant.tif", np.full((7, 64, 64), 1000, np.uint16))
    tifffile.imwrite(d / "blank.tif", np.zeros((7, 64, 64), np.uint16))
    tifffile.imwrite(d / "same.tif", np.stack([noise[0]] * 7))
    tifffile.imwrite(d / "two_slices.tif", noise[:2])
    for px, name in ((1000.0, "px_1000"), (5.0, "px_5"), (0.002, "px_0.002")):
        tifffile.imwrite(d / f"{name}.tif", rng.integers(100, 4000, (300, 300), np.uint16),
                         imagej=True, resolution=(1 / px, 1 / px), metadata={"unit": "um"})
    tifffile.imwrite(d / "small.tif", noise[0, :20, :20], imagej=True,
                     resolution=(1 / PX, 1 / PX), metadata={"unit": "um"})
    for name in ("rgb", "rgb_stack", "bool", "bool2d", "complex", "nan2d", "inf_stack", "oned",
                 "two_channels", "constant", "blank", "same", "two_slices", "px_1000", "px_5",
                 "px_0.002", "small"):
        f[name] = d / f"{name}.tif"
    return f


# --- bad files, every command that reads them --------------------------------------------

#: (command, file key, extra flags, words the one line must hold besides the file name).
FILE_CASES = [
    ("predict", "cut_stack", [], "truncated"),  # was read as a 2-D image, confidence 0.55
    ("predict", "cut_stack", ["--slice", "1"], "truncated"),
    ("predict", "cut_ome.ome", ["--slice", "1"], ""),
    ("predict", "cut_plain", ["--slice", "1", "--pixel-size", "0.24"], ""),
    ("predict", "cut_image", [], ""),
    ("predict", "cut_tail", ["--slice", "6"], "truncated"),
    ("suggest", "cut_stack", [], "truncated"),
    ("suggest", "cut_ome.ome", [], ""),
    ("suggest", "cut_plain", [], ""),
    ("suggest", "cut_zlib", [], ""),
    ("suggest", "cut_tail", [], "truncated"),
    ("suggest", "cut_folder", [], "z_3.tif"),
    ("predict", "empty", ["--pixel-size", "0.24"], "not a readable TIFF"),
    ("suggest", "empty", [], "not a readable TIFF"),
    ("suggest", "text", [], "not a readable TIFF"),
    ("predict", "rgb", [], "RGB"),
    ("suggest", "rgb_stack", [], "RGB"),
    ("predict", "bool2d", ["--pixel-size", "0.24"], "1-bit"),
    ("suggest", "bool", [], "1-bit"),
    ("suggest", "complex", [], "complex"),
    ("predict", "complex", ["--slice", "0", "--pixel-size", "0.24"], "complex"),
    ("predict", "nan2d", [], "NaN"),
    ("suggest", "inf_stack", [], "NaN or infinite"),
    ("predict", "inf_stack", ["--slice", "2"], "NaN or infinite"),
    ("predict", "oned", ["--pixel-size", "0.24"], "axes"),
    ("suggest", "oned", [], "axes"),
    ("suggest", "two_channels", [], "channel"),
    ("predict", "two_channels", ["--slice", "0"], "channel"),
    ("suggest", "image", [], "2-D image"),
    ("suggest", "two_slices", [], "at least 3 slices"),
    ("suggest", "constant", [], "no contrast"),  # used to name a slice
    ("suggest", "blank", [], "no contrast"),
    ("suggest", "same", [], "no contrast change along z"),
    ("predict", "stack", [], "--slice N (0..6)"),
    ("predict", "stack", ["--slice", "7"], "--slice 7 is out of range"),
    ("predict", "image", ["--slice", "1"], "--slice 1"),
    ("predict", "small", [], "smaller than the model's field"),
    # pixel size against the model's 0.24 um/px: at most 2x coarser, 100x finer
    ("predict", "px_5", [], "pixel size 5 um/px"),  # was answered with confidence 0.40
    # beyond any microscope's pixel (metadata checked like --pixel-size), naming the field
    ("predict", "px_1000", [], "pixel size 1000 um from its ImageJ X/YResolution metadata"),
    ("predict", "px_0.002", [], "pixel size 0.002 um from its ImageJ"),
    ("predict", "image", ["--pixel-size", "0.5"], "2.08x coarser"),
    ("predict", "missing", [], "no such file"),
]


@pytest.mark.parametrize(("command", "key", "extra", "words"), FILE_CASES,
                         ids=[f"{c} {k} {' '.join(e)}".strip() for c, k, e, _ in FILE_CASES])
def test_bad_file_is_refused_naming_it(files: dict[str, Path], command: str, key: str,
                                       extra: list[str], words: str) -> None:
    path = files.get(key, files["model"].parent / "missing.tif")
    snap = Snapshot(files["model"].parent)
    argv = [command, files["model"], path] if command == "predict" else [command, path]
    line = assert_refused(run_cli(*argv, *extra), path.name)
    assert words in line
    snap.assert_unchanged()


def test_pixel_size_limits_name_the_model_and_factor(files: dict[str, Path]) -> None:
    line = assert_refused(run_cli("predict", files["model"], files["px_5"]), "px_5.tif")
    assert "the model's 0.24 um/px" in line and "2x upsampling" in line and "100x" in line


def test_downsampling_camera_pixels_still_works(files: dict[str, Path], tmp_path: Path) -> None:
    """60 nm camera pixels to the model's 0.24 um/px (4x down) is normal use."""
    image = tmp_path / "camera.tif"
    data = np.random.default_rng(1).integers(100, 4000, (256, 256), np.uint16)
    tifffile.imwrite(image, data, imagej=True, resolution=(1 / 0.06, 1 / 0.06),
                     metadata={"unit": "um"})
    result = run_cli("predict", files["model"], image, "--json")
    assert result.code == 0, result.err
    assert '"pixel_size_um": 0.06' in result.out
    result = run_cli("predict", files["model"], files["stack"], "--slice", "6")
    assert result.code == 0, result.err  # the last slice, by its positive index


# --- the reader paths of the widgets ------------------------------------------------------


@pytest.mark.parametrize("key", ["cut_stack", "cut_ome.ome", "cut_tail", "cut_folder"])
def test_napari_reader_refuses_a_truncated_stack(files: dict[str, Path], key: str) -> None:
    from napari_zfocus._reader import get_reader

    reader = get_reader(str(files[key]))
    assert reader is not None
    with pytest.raises(StackError) as info:
        reader(str(files[key]))
    message = str(info.value)
    assert "\n" not in message and (files[key].name in message or "z_3.tif" in message)


def test_annotation_suggestion_refuses_bad_stacks(files: dict[str, Path]) -> None:
    from napari_zfocus.annotation.slice_suggestion import suggest_slice

    with pytest.raises(StackError, match="cut_stack.tif: file is truncated"):
        suggest_slice(files["cut_stack"], "cut_stack.tif", 1.0, PX)
    with pytest.raises(StackError, match="constant.tif: no contrast"):
        suggest_slice(files["constant"], "constant.tif", 1.0, PX)


# --- annotations.csv ----------------------------------------------------------------------


@pytest.fixture
def ds(tmp_path: Path) -> Path:
    """A valid 2-stack dataset (7 slices of 64 px at 0.24 um/px, focus 3)."""
    return write_noise_dataset(tmp_path / "ds", 2, (7, 64, 64), 3, pixel_size_um=PX)


def _rows(ds: Path, *rows: str) -> Path:
    csv = ds / "annotations.csv"
    csv.write_text(HEADER + "".join(r + "\n" for r in rows))
    return csv


#: (rows of annotations.csv, words naming the problem). Each leaves s0/s1 untouched.
CSV_CASES = [
    ((), "0 annotated stack"),  # header only: metrics over nothing
    (("../../x.tif,3,1.0,0.24",), "line 2"),
    (("sub/../../s0.tif,3,1.0,0.24",), "must not leave the dataset folder"),
    (("/etc/passwd,3,1.0,0.24",), "must be relative"),
    (("C:/data/s0.tif,3,1.0,0.24",), "must be relative"),
    (("s0.tif,7,1.0,0.24",), "focus_index 7 out of range"),
    (("s0.tif,-1,1.0,0.24",), "focus_index must be an integer >= 0"),
    (("s0.tif,2.5,1.0,0.24",), "focus_index must be an integer"),
    (("s0.tif,3,0,0.24",), "z_step_um must be a positive number of um within 0.01..100"),
    (("s0.tif,3,1000,0.24",), "z_step_um"),
    (("s0.tif,3,1e-9,0.24",), "z_step_um"),
    (("s0.tif,3,nan,0.24",), "z_step_um"),
    (("s0.tif,3,1.0,0",), "pixel_size_um must be a positive number of um within 0.01..100"),
    (("s0.tif,3,1.0,500",), "pixel_size_um"),
    (("s0.tif,3,1.0,inf",), "pixel_size_um"),
    (("s0.tif,3,1.0,5",), "pixel size 5 um/px is"),  # valid row, too coarse for the model
    (("s0.tif,3,100,0.24", "s1.tif,3,100,0.24"), "only 1 of its 7 slices"),  # absurd steps
    (("s0.tif,3,1.0,0.24", "s0.tif,3,1.0,0.24"), "duplicate stack"),
    (("s0.tif,3,1.0",), "expected 4 fields"),
    (("nope.tif,3,1.0,0.24",), "stack file not found"),
    # float() takes underscores and non-ASCII digits: 1_0 was slice 10, 0_5 a 5 um step
    (("s0.tif,1_0,1.0,0.24",), "focus_index must be an integer >= 0, got '1_0'"),
    (("s0.tif,3,0_5,0.24",), "z_step_um must be a positive number of um within 0.01..100, "
                             "got '0_5'"),
    (("s0.tif,3,1.0,0.2_4",), "pixel_size_um"),
    (("s0.tif,\u0664,1.0,0.24",), "focus_index"),  # Arabic-Indic 4
    (("s0.tif,3,1.0 um,0.24",), "z_step_um"),
    (("s\x000.tif,3,1.0,0.24",), "contains a NUL character"),  # was an internal error
]


@pytest.mark.parametrize(("rows", "words"), CSV_CASES, ids=[w for _, w in CSV_CASES])
def test_bad_annotations_are_refused_by_eval(files: dict[str, Path], ds: Path,
                                             rows: tuple[str, ...], words: str) -> None:
    csv = _rows(ds, *rows)
    snap = Snapshot(ds)
    line = assert_refused(run_cli("eval", files["model"], ds, "--no-progress"), ds.name)
    assert words in line
    assert "annotations.csv" in line or "s0.tif" in line
    snap.assert_unchanged()
    assert csv.exists()


@pytest.mark.parametrize("rows", [(), ("../x.tif,3,1.0,0.24",), ("s0.tif,3,1.0,1000",)],
                         ids=["header only", "escape", "pixel size"])
def test_bad_annotations_are_refused_by_train(ds: Path, rows: tuple[str, ...]) -> None:
    _rows(ds, *rows)
    out = ds.parent / "m.zfm"
    snap = Snapshot(ds)
    assert_refused(run_cli("train", ds, "--out", out, "--steps", "1", "--no-progress"),
                   "annotations.csv")
    snap.assert_unchanged()
    assert not out.exists()


def test_symlink_out_of_the_folder_is_refused(files: dict[str, Path], ds: Path) -> None:
    os.symlink(files["stack"], ds / "link.tif")  # a real stack, but outside the dataset
    _rows(ds, "link.tif,3,1.0,0.24")
    snap = Snapshot(ds)
    line = assert_refused(run_cli("eval", files["model"], ds, "--no-progress"),
                          "annotations.csv", "line 2")
    assert "points outside the folder" in line
    snap.assert_unchanged()


def test_truncated_stack_in_a_dataset_is_refused(files: dict[str, Path], ds: Path) -> None:
    _cut(ds / "s1.tif", ds / "s1.tif")
    snap = Snapshot(ds)
    line = assert_refused(run_cli("eval", files["model"], ds, "--no-progress"), "annotations.csv")
    assert "s1.tif" in line and "truncated" in line
    assert_refused(run_cli("train", ds, "--out", ds.parent / "m.zfm", "--steps", "1",
                           "--no-progress"), "s1.tif")
    snap.assert_unchanged()


@pytest.mark.parametrize(("kind", "words"), [("folder", "is a folder, not a file"),
                                              ("fifo", "is a named pipe (FIFO)")])
def test_annotations_csv_that_is_not_a_file_says_what_it_is(
        files: dict[str, Path], ds: Path, kind: str, words: str) -> None:
    """Not "not found" (it exists): the line says what is there instead."""
    csv = ds / "annotations.csv"
    csv.unlink()
    if kind == "folder":
        csv.mkdir()
    else:
        os.mkfifo(csv)
    line = assert_refused(run_cli("eval", files["model"], ds, "--no-progress"), csv)
    assert words in line and "not found" not in line


@pytest.mark.parametrize("command", ["train", "eval", "eval --baseline-fit"])
def test_a_file_given_as_the_dataset_folder_is_named_a_file(
        files: dict[str, Path], ds: Path, command: str) -> None:
    """``zfocus train ds/annotations.csv``: it exists, it is a file, not a missing folder."""
    csv = ds / "annotations.csv"
    argv = {"train": ["train", csv, "--out", ds.parent / "m.zfm", "--steps", "1"],
            "eval": ["eval", files["model"], csv],
            "eval --baseline-fit": ["eval", files["model"], ds, "--baselines",
                                    "--baseline-fit", csv]}[command]
    snap = Snapshot(ds)
    line = assert_refused(run_cli(*argv), csv, "is a file, not a folder")
    assert "not found" not in line
    if command.endswith("fit"):
        assert "--baseline-fit" in line
    snap.assert_unchanged()


def test_writing_annotations_refuses_what_reading_refuses(tmp_path: Path) -> None:
    from napari_zfocus.data import Annotation, write_annotations
    from napari_zfocus.errors import DatasetError

    for bad in (Annotation("../x.tif", 1, 1.0, PX), Annotation("x.tif", 1, 1000.0, PX),
                Annotation("x.tif", 1, 1.0, 0.0), Annotation("/abs/x.tif", 1, 1.0, PX)):
        with pytest.raises(DatasetError, match="refusing to write"):
            write_annotations(tmp_path, [bad])
    assert not (tmp_path / "annotations.csv").exists()


# --- simulate never writes a dataset the other commands reject ----------------------------


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--slices", "1"], "--slices"),
        (["--slices", "2"], "--slices"),
        (["--focus-index", "31"], "--focus-index"),
        (["--condenser-na", "1.35"], "--condenser-na"),
        (["--pixel-size", "50"], "--pixel-size"),
        (["--cells", "0"], "--cells"),
    ],
    ids=["1 slice", "2 slices", "focus outside", "condenser NA", "pixel size", "no cells"],
)
def test_simulate_refuses_an_unusable_dataset(tmp_path: Path, flags: list[str],
                                              named: str) -> None:
    out = tmp_path / "sim"
    assert_refused(run_cli("simulate", out, "--stacks", "1", "--quiet", *flags), named)
    assert not out.exists()


# --- data the hostile tester found answered (or hung on) -----------------------------------


@contextmanager
def _no_hang(seconds: int = 30) -> Iterator[None]:
    """Fail instead of hanging forever if a command blocks (opening a FIFO does)."""

    def fail(signum: int, frame: object) -> None:
        raise TimeoutError(f"blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files whose pixels or metadata are odd but readable."""
    d = tmp_path_factory.mktemp("odd_data")
    rng = np.random.default_rng(3)
    noise = rng.integers(100, 4000, (7, 64, 64)).astype(np.float64)
    f = {"model": write_untrained_model(d / "tiny.zfm")}
    for name, data in (("huge_values", noise * 1e296), ("huge_image", noise[0] * 1e296)):
        f[name] = d / f"{name}.ome.tif"  # finite float64 values
        tifffile.imwrite(f[name], data, ome=True, metadata={
            "axes": "ZYX"[3 - data.ndim:], "PhysicalSizeX": PX, "PhysicalSizeY": PX})
    f["blank_image"] = _imagej(d / "blank_image.tif", np.full((64, 64), 7, np.uint16))
    f["zero_image"] = _imagej(d / "zero_image.tif", np.zeros((64, 64), np.float32))
    f["negative_image"] = _imagej(d / "negative_image.tif", -noise[0].astype(np.float32))
    f["e37_image"] = _imagej(d / "e37_image.tif", (noise[0] * 1e34).astype(np.float32))
    tifffile.imwrite(d / "spacing_1e30.tif", noise.astype(np.uint16), imagej=True,
                     resolution=(1 / PX, 1 / PX),
                     metadata={"axes": "ZYX", "unit": "um", "spacing": 1e30})
    tifffile.imwrite(d / "res_1e9.tif", noise.astype(np.uint16), imagej=True,
                     resolution=(1e-9, 1e-9), metadata={"axes": "ZYX", "unit": "um"})
    for name, axes, data in (("anisotropic", "ZYX", noise), ("anisotropic_2d", "YX", noise[0])):
        tifffile.imwrite(d / f"{name}.ome.tif", data.astype(np.uint16), ome=True,
                         metadata={"axes": axes, "PhysicalSizeX": PX, "PhysicalSizeY": 1.2,
                                   "PhysicalSizeZ": 1.0})
    # 72 dpi in centimetres (what image editors write): a print setting, not a pixel size
    tifffile.imwrite(d / "print_cm.tif", noise[0].astype(np.uint16), resolution=(28.35, 28.35),
                     resolutionunit=3)
    os.mkfifo(d / "fifo.tif")
    for name in ("spacing_1e30", "res_1e9", "anisotropic.ome", "anisotropic_2d.ome",
                 "print_cm", "fifo"):
        f[name] = d / f"{name}.tif"
    return f


#: (command, file key, extra flags, words the one line must hold besides the file name).
ODD_CASES = [
    # float64 beyond float32: was 3 stderr lines (a RuntimeWarning) and "NaN or infinite"
    ("suggest", "huge_values", [], "values up to 4e+299, which overflow float32"),
    ("predict", "huge_image", [], "overflow float32"),
    # a blank frame has no z; suggest refused it, predict answered -3.5 um
    ("predict", "blank_image", [], "no contrast: the image is blank or constant"),
    ("predict", "zero_image", [], "no contrast"),
    # file metadata is checked like the flags (was reported as 1e+30 um, or "no contrast")
    ("suggest", "spacing_1e30", [], "z-step 1e+30 um from its ImageJ spacing metadata is "
                                    "outside 0.01..100 um; give the z-step explicitly"),
    ("suggest", "res_1e9", [], "pixel size 1e+09 um from its ImageJ X/YResolution metadata"),
    ("predict", "res_1e9", ["--slice", "0"], "--pixel-size"),
    # non-square pixels were silently read as square
    ("suggest", "anisotropic.ome", [], "pixels are not square: X 0.24 um, Y 1.2 um"),
    ("predict", "anisotropic_2d.ome", [], "not square"),
    ("predict", "anisotropic_2d.ome", ["--pixel-size", "0.24"], "not square"),
    # a FIFO hung the command forever
    ("suggest", "fifo", [], "not a regular file"),
    ("predict", "fifo", ["--pixel-size", "0.24"], "not a regular file"),
]


@pytest.mark.parametrize(("command", "key", "extra", "words"), ODD_CASES,
                         ids=[f"{c} {k} {' '.join(e)}".strip() for c, k, e, _ in ODD_CASES])
def test_odd_data_is_refused_naming_the_file(odd: dict[str, Path], command: str, key: str,
                                             extra: list[str], words: str) -> None:
    path = odd[key]
    snap = Snapshot(path.parent)
    argv = [command, odd["model"], path] if command == "predict" else [command, path]
    with _no_hang():
        line = assert_refused(run_cli(*argv, *extra), path.name)
    assert words in line
    assert "NaN" not in line
    snap.assert_unchanged()


def test_a_print_resolution_is_not_a_pixel_size(odd: dict[str, Path]) -> None:
    line = assert_refused(run_cli("predict", odd["model"], odd["print_cm"]), "print_cm.tif")
    assert "pixel size unknown" in line and "--pixel-size" in line
    result = run_cli("predict", odd["model"], odd["print_cm"], "--pixel-size", "0.24", "--json")
    assert result.code == 0, result.err


def test_a_flag_overrides_bad_metadata(odd: dict[str, Path]) -> None:
    """The file's absurd size is not checked when the user gives the size."""
    result = run_cli("suggest", odd["spacing_1e30"], "--z-step", "1", "--json")
    assert result.code == 0, result.err
    assert '"z_step_um": 1.0' in result.out
    result = run_cli("predict", odd["model"], odd["res_1e9"], "--slice", "0",
                     "--pixel-size", "0.24", "--json")
    assert result.code == 0, result.err


@pytest.mark.parametrize("key", ["negative_image", "e37_image"])
def test_finite_negative_or_large_values_are_read(odd: dict[str, Path], key: str) -> None:
    """Background-subtracted (negative) and huge-but-finite float32 images get a finite z;
    1e37 used to overflow the normalisation into NaN, read as z = -3.5 um."""
    result = run_cli("predict", odd["model"], odd[key], "--json")
    assert result.code == 0, result.err
    assert math.isfinite(json.loads(result.out.splitlines()[-1])["z_um"])


def test_symlink_alias_of_an_annotated_stack_is_refused(files: dict[str, Path],
                                                        ds: Path) -> None:
    """Two names of one stack with two focus indices: one stack cannot have both."""
    os.symlink("s0.tif", ds / "same.tif")
    _rows(ds, "s0.tif,3,1.0,0.24", "s1.tif,3,1.0,0.24", "same.tif,5,1.0,0.24")
    snap = Snapshot(ds)
    line = assert_refused(run_cli("eval", files["model"], ds, "--no-progress"),
                          "annotations.csv", "line 4", "line 2", "same.tif", "s0.tif")
    assert "duplicate stack" in line
    snap.assert_unchanged()


def test_symlink_loop_and_fifo_stacks_are_refused_by_line(files: dict[str, Path],
                                                          ds: Path) -> None:
    os.symlink("loop.tif", ds / "loop.tif")
    os.mkfifo(ds / "fifo.tif")
    for name, words in (("loop.tif", "symlink loop"), ("fifo.tif", "not a regular file")):
        _rows(ds, "s0.tif,3,1.0,0.24", f"{name},3,1.0,0.24")
        snap = Snapshot(ds)
        for command in (["eval", files["model"], ds, "--no-progress"],
                        ["train", ds, "--out", ds.parent / "m.zfm", "--steps", "1",
                         "--no-progress"]):
            with _no_hang():
                line = assert_refused(run_cli(*command), "annotations.csv", "line 3", name)
            assert words in line
        snap.assert_unchanged()
        assert not (ds.parent / "m.zfm").exists()


@pytest.mark.parametrize("text", ["1_0", "0_5", "\u0664", "1.0um", "0x10", "1,5", "--1", ""])
def test_numbers_must_be_plain_decimal_text(text: str) -> None:
    with pytest.raises(ZFocusError, match="z_step_um must be"):
        check_number(text, "z_step_um", lo=0.01, hi=100)


def test_plain_numbers_still_parse() -> None:
    for text, value in ((" 1.5 ", 1.5), ("1e3", 1000.0), (".5", 0.5), ("5.", 5.0),
                        ("+3", 3.0), ("-2E-3", -0.002)):
        assert check_number(text, "x") == value


@pytest.mark.parametrize("flag", [["--z-step", "0_5"], ["--pixel-size", "0_24"]])
def test_underscored_flag_is_refused(files: dict[str, Path], flag: list[str]) -> None:
    assert_refused(run_cli("suggest", files["stack"], *flag), flag[0], flag[1])
