"""Training on stacks of several condenser apertures: labels in the reference's units,
refusals before any training, and ``zfocus eval`` reading each stack at its aperture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _defocus_data import LEARNABLE, write_defocus_dataset
from napari_zfocus.cli import main
from napari_zfocus.data import read_dataset, write_annotations
from napari_zfocus.errors import DatasetError
from napari_zfocus.inspection.evaluation import evaluate
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.inference import Predictor
from napari_zfocus.model.io import load_model, save_model
from napari_zfocus.model.network import build_network
from napari_zfocus.training.data_plan import check_dataset_fits
from napari_zfocus.training.dataset_cache import load_stack_cached

RUN = ["--steps", "2", "--batch", "4", "--threads", "1", "--no-progress"]
MODEL = ["--pixel-size-um", "1", "--field-um", "32", "--z-range", "-5", "5"]


def with_apertures(folder: Path, apertures: list[str | None]) -> Path:
    """Give the dataset's stacks these ``condenser_na`` cells (None: no cell)."""
    dataset = read_dataset(folder, check_stacks=False)
    for a, na in zip(dataset.annotations, apertures, strict=True):
        a.extra.pop("condenser_na", None)
        if na is not None:
            a.extra["condenser_na"] = na
    write_annotations(folder, dataset.annotations)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("aperture")
    return {
        "mixed": with_apertures(write_defocus_dataset(d / "mixed", 4), ["0.3", "0.5", "0.4",
                                                                         "0.45"]),
        "missing": with_apertures(write_defocus_dataset(d / "missing", 3), ["0.3", None, "0.5"]),
        "dir": d,
    }


def test_labels_are_the_defocus_in_the_references_units(data) -> None:
    dataset = read_dataset(data["mixed"])
    config = ModelConfig(**LEARNABLE, reference_condenser_na=0.4)
    first, second = dataset.annotations[:2]  # apertures 0.3 and 0.5
    z = np.arange(11) - 5.0
    assert np.allclose(load_stack_cached(dataset, first, config).z_um, z * 0.75)
    assert np.allclose(load_stack_cached(dataset, second, config).z_um, z * 1.25)
    plain = ModelConfig(**LEARNABLE)
    assert np.allclose(load_stack_cached(dataset, second, plain).z_um, z)


def test_a_stack_without_its_aperture_is_refused_before_training(data, tmp_path, capsys):
    dataset = read_dataset(data["missing"])
    with pytest.raises(DatasetError, match=r"annotations.csv: d01.tif: no condenser_na"):
        check_dataset_fits(dataset, dataset.annotations,
                           ModelConfig(**LEARNABLE, reference_condenser_na=0.4))
    out = tmp_path / "m.zfm"
    code = main(["train", str(data["missing"]), "--out", str(out),
                 "--reference-condenser-na", "0.4", *MODEL, *RUN])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "d01.tif: no condenser_na" in err[0]
    assert not out.exists() and not Path(str(out) + ".ckpt").exists()
    # Without the reference the column is not needed.
    assert main(["train", str(data["missing"]), "--out", str(out), *MODEL, *RUN]) == 0


def test_the_model_records_its_reference_and_fine_tuning_keeps_it(data, tmp_path, capsys):
    out = tmp_path / "ref.zfm"
    assert main(["train", str(data["mixed"]), "--out", str(out), "--json",
                 "--reference-condenser-na", "0.4", *MODEL, *RUN]) == 0
    capsys.readouterr()
    assert load_model(out).config.reference_condenser_na == 0.4
    tuned = tmp_path / "tuned.zfm"
    assert main(["train", str(data["mixed"]), "--out", str(tuned), "--from", str(out),
                 *RUN]) == 0
    assert load_model(tuned).config.reference_condenser_na == 0.4
    code = main(["train", str(data["mixed"]), "--out", str(tmp_path / "x.zfm"), "--from",
                 str(out), "--reference-condenser-na", "0.5", *RUN])
    err = capsys.readouterr().err
    assert code == 2 and "--reference-condenser-na 0.5: the start model ref.zfm has " \
                          "reference_condenser_na 0.4" in err
    code = main(["train", str(data["mixed"]), "--out", str(tmp_path / "y.zfm"), "--from",
                 str(_plain(tmp_path)),
                 "--reference-condenser-na", "0.4", *RUN])
    assert code == 2 and "reference_condenser_na none" in capsys.readouterr().err


def _plain(folder: Path) -> Path:
    torch.manual_seed(0)
    config = ModelConfig(**LEARNABLE)
    return save_model(folder / "plain.zfm", build_network(config), config)


def test_evaluation_reads_each_stack_at_its_own_aperture(data, tmp_path) -> None:
    torch.manual_seed(0)
    config = ModelConfig(**LEARNABLE, reference_condenser_na=0.4)
    path = save_model(tmp_path / "ref.zfm", build_network(config), config)
    predictor = Predictor.from_file(path)
    dataset = read_dataset(data["mixed"])
    result = evaluate(predictor, dataset)
    rows = result.per_image
    for a, gain in zip(dataset.annotations, (0.75, 1.25, 1.0, 1.125), strict=True):
        mine = rows["stack"] == a.stack
        stack = dataset.open_stack(a).to_numpy()
        own = [p.z_um for p in predictor.predict_batch(list(stack), a.pixel_size_um)]
        assert np.allclose(rows["z_pred_um"][mine], np.asarray(own) / gain, atol=1e-5)
        assert np.allclose(rows["z_true_um"][mine], np.arange(11) - 5.0)  # true distances


def test_an_aperture_the_model_cannot_read_is_refused_before_any_image(data, tmp_path) -> None:
    torch.manual_seed(0)
    config = ModelConfig(**LEARNABLE, reference_condenser_na=0.4)
    predictor = Predictor.from_file(save_model(tmp_path / "ref.zfm", build_network(config),
                                               config))
    folder = with_apertures(write_defocus_dataset(tmp_path / "far", 3), ["0.4", "0.5", "0.95"])
    events: list = []
    with pytest.raises(DatasetError, match=r"annotations.csv: d02.tif: condenser aperture "
                                           r"0.95 is 2.37x its reference 0.4"):
        evaluate(predictor, read_dataset(folder), progress=events.append)
    assert events == []  # checked before the first stack was read


def test_rescale_sets_a_referenced_model_to_an_aperture_without_stacks(data, tmp_path, capsys):
    torch.manual_seed(0)
    config = ModelConfig(**LEARNABLE, reference_condenser_na=0.4)
    model = save_model(tmp_path / "ref.zfm", build_network(config), config)
    out = tmp_path / "at05.zfm"
    assert main(["rescale", str(model), "--condenser-na", "0.5", "--out", str(out),
                 "--json"]) == 0
    facts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert facts["gain"] == 1.25 and facts["condenser_na"] == 0.5
    assert facts["reference_condenser_na"] == 0.4 and facts["stacks"] == 0
    assert facts["measured_gain"] is None and facts["applied"] is True
    loaded = load_model(out)
    assert loaded.distance_scale.gain == 1.25
    assert loaded.distance_scale.fitted["source"] == "condenser aperture"
    refusals = [
        ([str(_plain(tmp_path)), "--condenser-na", "0.5"], "trained without a reference"),
        ([str(model)], "give z-stacks"),
        ([str(model), str(data["mixed"] / "d00.tif"), "--condenser-na", "0.5"], "not both"),
        ([str(model), "--condenser-na", "0.9"], "0.9 is 2.25x its reference 0.4"),
    ]
    for argv, message in refusals:
        target = tmp_path / "never.zfm"
        code = main(["rescale", *argv, "--out", str(target)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and message in err[0], err
        assert not target.exists()
