"""napari sample data: simulated bright-field z-stacks shipped in ``sample_data/``.

Both entries work offline and read small files that ship with the package (regenerate them
with ``python docs/scripts/make_sample_data.py``). Layers carry their physical scale
(z um, y um, x um) and, for the annotated set, the dataset folder and true focus index in
their metadata so the annotation widget can open the same set.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from napari_zfocus.data import read_dataset, read_stack

SAMPLE_STACK = "yeast_stack.tif"
SAMPLE_SET = "annotated_set"


def sample_data_dir() -> Path:
    """Folder holding the shipped sample data.

    A wheel carries it inside the package (``napari_zfocus/sample_data``, copied there at
    build time); an editable install or a source checkout reads the repository's top-level
    ``sample_data/`` (no symlink, so Windows checkouts work too).
    """
    packaged = Path(str(resources.files("napari_zfocus").joinpath("sample_data")))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "sample_data"


def _stack_layer(path: Path, name: str, **metadata) -> tuple:
    stack = read_stack(path)
    meta = {"path": str(path), "z_step_um": stack.z_step_um, "pixel_size_um": stack.pixel_size_um}
    meta.update(metadata)
    scale = (stack.z_step_um or 1.0, stack.pixel_size_um or 1.0, stack.pixel_size_um or 1.0)
    # Start on the middle slice: the first slice of a through-focus stack is far from focus.
    return (
        stack.to_numpy(),
        {"name": name, "scale": scale, "metadata": meta, "colormap": "gray"},
        "image",
    )


def sample_stack() -> list[tuple]:
    """One simulated bright-field yeast z-stack (31 slices, 1 um step, 0.24 um/px)."""
    path = sample_data_dir() / SAMPLE_STACK
    return [_stack_layer(path, "simulated yeast stack")]


def sample_annotated_set() -> list[tuple]:
    """The small annotated set: one Image layer per stack, annotations in the metadata."""
    dataset = read_dataset(sample_data_dir() / SAMPLE_SET)
    return [
        _stack_layer(
            dataset.stack_path(a),
            Path(a.stack).stem,
            dataset=str(dataset.root),
            focus_index=a.focus_index,
        )
        for a in dataset.annotations
    ]
