"""Calibration in model files: stored under the hash, applied by Predictor, old files as before."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from _model_files import read_raw, rewrite_model, write_v1_model
from _tiny import TINY, write_untrained_model
from napari_zfocus.errors import ModelFileError
from napari_zfocus.model.calibration import Calibration
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.model.inference import Predictor
from napari_zfocus.model.io import load_model, read_model_info, save_calibrated_copy
from napari_zfocus.model.network import build_network
from napari_zfocus.model.ood import fit_ood_reference, spectral_features
from napari_zfocus.model.preprocess import prepare
from napari_zfocus.model.readout import readout

N_BINS = ModelConfig(**TINY).n_bins


def _image(seed: int, smooth: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.normal(1000.0, 50.0, (60, 60))
    if smooth:  # a world of large blobs instead of pixel noise
        from scipy.ndimage import gaussian_filter

        img = 1000.0 + 20 * gaussian_filter(rng.normal(0.0, 50.0, (60, 60)), 4.0)
    return img.astype(np.float32)


def _calibration(config: ModelConfig, temperature: float = 0.5) -> Calibration:
    """A calibration whose OOD reference is pixel noise at every z."""
    x = torch.cat([prepare(_image(s), 0.24, config) for s in range(150)])
    z = np.linspace(-5, 5, 150)
    ood = fit_ood_reference(spectral_features(x), z, config.bin_centres_um)
    return Calibration(temperature, 1.5, -0.2, ood, fitted={"images": 150})


@pytest.fixture
def calibrated(tmp_path: Path) -> Path:
    plain = write_untrained_model(tmp_path / "plain.zfm")
    return save_calibrated_copy(plain, _calibration(ModelConfig(**TINY)),
                                tmp_path / "calibrated.zfm")


def test_calibration_is_stored_applied_and_weights_kept(calibrated, tmp_path) -> None:
    loaded = load_model(calibrated)
    assert loaded.calibration is not None and loaded.calibration.temperature == 0.5
    assert loaded.calibration.ood is not None and loaded.info["calibrated"]
    assert read_model_info(calibrated)[2]["calibrated"]
    _, plain_t = read_raw(tmp_path / "plain.zfm")
    _, cal_t = read_raw(calibrated)
    assert all(torch.equal(plain_t[k], cal_t[k]) for k in plain_t)  # bit for bit

    predictor = Predictor.from_file(calibrated, device="cpu")
    plain = Predictor.from_file(tmp_path / "plain.zfm", device="cpu")
    p, q = predictor.predict(_image(1), 0.24), plain.predict(_image(1), 0.24)
    assert p.calibrated and not q.calibrated and predictor.calibrated
    assert p.z_um == q.z_um  # calibration changes the confidence, never the estimate
    want = loaded.calibration.confidence(p.softmax, p.z_um, p.bin_centres_um)
    assert p.confidence == pytest.approx(float(want)) and p.confidence != q.confidence
    assert p.to_dict()["calibrated"] is True and "ood_score" in p.to_dict()
    [b] = predictor.predict_batch([_image(1)], 0.24)
    assert b.confidence == pytest.approx(p.confidence) and b.ood_score == pytest.approx(
        p.ood_score)
    # Tiles read the calibrated confidence too.
    fm = predictor.predict_tiles(np.tile(_image(2), (2, 2)), 0.24)
    r = readout(fm.softmax.reshape(-1, N_BINS), fm.bin_centres_um)
    assert np.allclose(fm.confidence.ravel(),
                       loaded.calibration.confidence(fm.softmax.reshape(-1, N_BINS), r.z_um,
                                                     fm.bin_centres_um))


def test_an_image_unlike_the_reference_is_flagged(calibrated) -> None:
    predictor = Predictor.from_file(calibrated, device="cpu")
    own = predictor.predict_batch([_image(s) for s in range(200, 230)], 0.24)
    assert np.mean([p.ood for p in own]) <= 0.1
    other = predictor.predict(_image(7, smooth=True), 0.24)
    assert other.ood and other.ood_score > 1 and other.flagged


def test_uncalibrated_models_behave_as_before(tmp_path) -> None:
    torch.manual_seed(3)
    config = ModelConfig(**TINY)
    for path in (write_untrained_model(tmp_path / "new.zfm"),
                 write_v1_model(tmp_path / "v1.zfm", build_network(config), config)):
        loaded = load_model(path)
        assert loaded.calibration is None and not loaded.info["calibrated"]
        p = Predictor.from_file(path, device="cpu").predict(_image(4), 0.24)
        old = readout(p.softmax, p.bin_centres_um)  # mass within +/-1 bin of the mode
        assert p.confidence == pytest.approx(float(old.confidence))
        assert not p.calibrated and math.isnan(p.ood_score) and not p.ood
        assert p.flagged == (p.confidence < 0.3)


def test_a_tampered_calibration_is_refused(calibrated, tmp_path) -> None:
    meta, _ = read_raw(calibrated)
    entry = json.loads(meta["calibration"])
    hotter = json.dumps(dict(entry, temperature=5.0))
    with pytest.raises(ModelFileError, match="integrity check failed"):
        load_model(rewrite_model(calibrated, tmp_path / "t.zfm", calibration=hotter))
    with pytest.raises(ModelFileError, match="integrity check failed"):
        load_model(rewrite_model(calibrated, tmp_path / "d.zfm", drop=("calibration",)))


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "0"])
def test_a_non_finite_temperature_is_refused_in_one_line(calibrated, tmp_path, value) -> None:
    meta, _ = read_raw(calibrated)
    text = meta["calibration"].replace('"temperature": 0.5', f'"temperature": {value}')
    assert text != meta["calibration"]
    bad = rewrite_model(calibrated, tmp_path / "nan.zfm", calibration=text, reseal="v2")
    with pytest.raises(ModelFileError) as err:
        load_model(bad)
    message = str(err.value)
    assert message.startswith(str(bad)) and "\n" not in message
    assert "invalid calibration: calibration temperature must be" in message


def test_version_1_files_cannot_hold_a_calibration(calibrated, tmp_path) -> None:
    meta, _ = read_raw(calibrated)
    config = ModelConfig(**TINY)
    old = write_v1_model(tmp_path / "v1.zfm", build_network(config), config)
    bad = rewrite_model(old, tmp_path / "v1cal.zfm", calibration=meta["calibration"])
    with pytest.raises(ModelFileError, match="version 1 file cannot hold a calibration"):
        load_model(bad)


def test_a_calibration_can_be_removed_or_replaced(calibrated, tmp_path) -> None:
    gone = save_calibrated_copy(calibrated, None, tmp_path / "gone.zfm")
    assert load_model(gone).calibration is None
    again = save_calibrated_copy(gone, Calibration(2.0), tmp_path / "again.zfm")
    cal = load_model(again).calibration
    assert cal is not None and cal.temperature == 2.0 and cal.ood is None
    p = Predictor.from_file(again, device="cpu").predict(_image(5), 0.24)
    assert math.isnan(p.ood_score) and not p.ood  # calibrated, without an OOD reference
