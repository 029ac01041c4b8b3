"""Shared by test_bad_data.py and test_bad_annotations.py: one of every bad stack file,
and the small writers and guards their cases use."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tifffile

from _tiny import write_untrained_model

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


def write_bad_files(d: Path) -> dict[str, Path]:
    """One of every bad file (and good references), written in D."""
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
