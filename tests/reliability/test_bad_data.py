"""Every bad data file is refused up front, naming the file, and touches nothing.

A hostile user hands the commands truncated stacks (ImageJ, OME, plain, compressed, a
folder with a cut slice), empty and non-TIFF files, RGB / 1-bit / complex / NaN pixels,
wrong dimensions, constant stacks, pixel sizes the model cannot use, absurd or
non-square metadata, FIFOs and numbers that are not plain decimal text. Each is refused
(exit 2, one line naming the file, no traceback; never a silently wrong answer) and
every file stays byte for byte as it was. Bad annotations.csv files and datasets are in
test_bad_annotations.py.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from _bad_stacks import PX, _imagej, _no_hang, write_bad_files
from _reliability import Snapshot, assert_refused, run_cli

from _tiny import write_untrained_model
from napari_zfocus.errors import StackError, ZFocusError
from napari_zfocus.validation import check_number


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One of every bad file (and good references), written once for the module."""
    return write_bad_files(tmp_path_factory.mktemp("bad_data"))


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


# --- data the hostile tester found answered (or hung on) -----------------------------------


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
