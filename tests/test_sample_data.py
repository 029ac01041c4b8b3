"""napari's sample data entries read the shipped stacks offline, with their physical scale."""

from __future__ import annotations

from napari_zfocus._sample_data import sample_annotated_set, sample_data_dir, sample_stack


def test_sample_data_folder_is_found_without_symlinks():
    folder = sample_data_dir()
    assert (folder / "yeast_stack.tif").is_file()
    assert (folder / "annotated_set" / "annotations.csv").is_file()


def test_sample_stack_and_annotated_set_layers():
    ((data, kwargs, kind),) = sample_stack()
    assert kind == "image" and data.ndim == 3 and data.shape[0] == 31
    assert kwargs["scale"][0] == 1.0 and kwargs["scale"][1] > 0
    layers = sample_annotated_set()
    assert len(layers) == 4
    assert all("focus_index" in kw["metadata"] and kw["metadata"]["dataset"] for _, kw, _ in layers)
