"""Models that read distances as at a reference condenser aperture (model/aperture.py)."""

from __future__ import annotations

import numpy as np
import pytest

from _tiny import TINY
from napari_zfocus.data import Annotation
from napari_zfocus.errors import DatasetError, ZFocusError
from napari_zfocus.model.aperture import (
    aperture_distance_scale,
    label_scale,
    predictor_at_stack_aperture,
    stack_condenser_na,
)
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.inference import Predictor
from napari_zfocus.model.io import load_model, save_model
from napari_zfocus.model.network import build_network


def _annotation(na: str | None = None) -> Annotation:
    return Annotation("s7.tif", 10, 1.0, 0.24, extra={} if na is None else {"condenser_na": na})


def test_a_stacks_aperture_is_read_from_its_column_or_refused_by_name() -> None:
    assert stack_condenser_na(_annotation("0.35")) == 0.35
    assert stack_condenser_na(_annotation()) is None
    assert stack_condenser_na(_annotation("  ")) is None  # an empty cell: not given
    for bad in ("wide", "nan", "0", "2.5", "-0.3"):
        with pytest.raises(DatasetError, match=r"data/annotations.csv: s7.tif: condenser_na"):
            stack_condenser_na(_annotation(bad), "data/annotations.csv")


def test_labels_scale_by_the_stacks_aperture_over_the_reference() -> None:
    plain = ModelConfig(**TINY)
    referenced = ModelConfig(**TINY, reference_condenser_na=0.4)
    assert label_scale(plain, _annotation("0.5")) == 1.0  # true distances: column unused
    assert label_scale(plain, _annotation()) == 1.0
    assert label_scale(referenced, _annotation("0.5")) == pytest.approx(1.25)
    assert label_scale(referenced, _annotation("0.3")) == pytest.approx(0.75)
    with pytest.raises(DatasetError, match="s7.tif: no condenser_na.*aperture 0.4"):
        label_scale(referenced, _annotation())


def test_the_reference_is_checked_stored_and_left_out_when_unset() -> None:
    assert "reference_condenser_na" not in ModelConfig(**TINY).to_dict()
    config = ModelConfig(**TINY, reference_condenser_na=0.4)
    assert ModelConfig.from_dict(config.to_dict()).reference_condenser_na == 0.4
    for bad in (0.0, 1.7, "0.4", True, float("nan")):
        with pytest.raises(ZFocusError, match="reference_condenser_na"):
            ModelConfig(**TINY, reference_condenser_na=bad)


def test_an_aperture_sets_the_gain_within_the_range_a_file_may_hold() -> None:
    config = ModelConfig(**TINY, reference_condenser_na=0.4)
    scale = aperture_distance_scale(config, 0.5)
    assert scale.gain == pytest.approx(1.25)
    assert scale.fitted == {"source": "condenser aperture", "condenser_na": 0.5,
                            "reference_condenser_na": 0.4}
    with pytest.raises(ZFocusError, match="m.zfm: condenser aperture 0.9 is 2.25x"):
        aperture_distance_scale(config, 0.9, "m.zfm")
    with pytest.raises(ZFocusError, match="m.zfm: was trained without a reference"):
        aperture_distance_scale(ModelConfig(**TINY), 0.5, "m.zfm")


@pytest.fixture(scope="module")
def referenced_model(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    config = ModelConfig(**TINY, reference_condenser_na=0.4)
    path = tmp_path_factory.mktemp("aperture") / "ref.zfm"
    return save_model(path, build_network(config), config)


def test_the_reference_survives_the_model_file_and_a_stack_is_read_at_its_aperture(
        referenced_model) -> None:
    loaded = load_model(referenced_model)
    assert loaded.config.reference_condenser_na == 0.4
    predictor = Predictor.from_file(referenced_model)
    image = np.random.default_rng(1).integers(100, 4000, (60, 60)).astype(np.uint16)
    own = predictor.predict(image, 0.24)
    at_half = predictor_at_stack_aperture(predictor, _annotation("0.5"))
    assert at_half is not predictor and at_half.net is predictor.net  # shared, not reloaded
    read = at_half.predict(image, 0.24)
    assert read.z_um == pytest.approx(own.z_um / 1.25)
    assert read.confidence == pytest.approx(own.confidence)  # the model's own units
    assert predictor.gain == 1.0  # the original is untouched
    # No column: the predictor itself; a model of true distances ignores the column.
    assert predictor_at_stack_aperture(predictor, _annotation()) is predictor
    plain = predictor.with_distance_scale(None)
    plain.config = ModelConfig(**TINY)
    assert predictor_at_stack_aperture(plain, _annotation("0.5")) is plain
    with pytest.raises(DatasetError, match="^d/annotations.csv: s7.tif: condenser aperture "
                                           "0.95 is 2.37x its reference 0.4"):
        predictor_at_stack_aperture(predictor, _annotation("0.95"), "d/annotations.csv")
