"""Per-frame work of the live dock: estimates always, moves only with autofocus on."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from _microscope_fakes import FakeMicroscope

from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.autofocus import LiveAutofocus
from napari_zfocus.live.controller import ControllerSettings
from napari_zfocus.live.microscope import Frame


@dataclass
class FakePrediction:
    z_um: float
    confidence: float = 0.9
    bimodal: bool = False
    softmax: np.ndarray = None  # type: ignore[assignment]


class TruthPredictor:
    """Reads the true defocus from the frame's pixel (the fake scope writes it there)."""

    def __init__(self) -> None:
        self.fail = False

    def predict(self, image: np.ndarray, pixel_size_um: float) -> FakePrediction:
        if self.fail:
            raise RuntimeError("model exploded")
        return FakePrediction(float(image[0, 1]) - 1000.0)


class OffsetScope(FakeMicroscope):
    """Sample in focus at z = 5 um; the stage starts at 0 (5 um defocus)."""

    def __init__(self) -> None:
        super().__init__(limits=(-50.0, 50.0))
        self.sample_z = 5.0

    def snap(self) -> Frame:
        self.t += 0.05
        image = np.zeros((4, 4), np.float32)
        image[0, 1] = 1000.0 + self.sample_z - self.z
        return Frame(image, self.t, self.z, {"sample_z_um": self.sample_z})


def test_autofocus_off_never_moves_even_when_locked() -> None:
    scope = OffsetScope()
    live = LiveAutofocus(TruthPredictor(), scope)
    live.lock(0.0)
    for _ in range(5):
        out = live(scope.snap())
    assert scope.z == 0.0
    assert out.decision is None and out.autofocus is False
    assert out.estimate_um == 5.0
    assert out.locked_um == 0.0
    assert out.focus_z_um == 5.0 == out.sample_z_um  # stage + estimate: the sample's z
    assert out.sample_z_um == 5.0


def test_autofocus_on_moves_stage_to_the_sample() -> None:
    scope = OffsetScope()
    live = LiveAutofocus(TruthPredictor(), scope, ControllerSettings(max_step_um=2.0))
    live.lock(0.0)
    live.set_autofocus(True)
    moves = [live(scope.snap()).decision.move_um for _ in range(6)]
    assert moves[0] == 2.0  # clamped to max step
    assert abs(scope.z - 5.0) <= ControllerSettings().dead_band_um
    assert moves[-1] == 0.0  # inside the dead band: hold


def test_unlocked_autofocus_holds_and_reports_estimate() -> None:
    scope = OffsetScope()
    live = LiveAutofocus(TruthPredictor(), scope, autofocus=True)
    out = live(scope.snap())
    assert out.decision is not None and out.decision.reason == "not_locked"
    assert math.isnan(out.locked_um)
    assert out.prediction is not None and out.estimate_um == 5.0
    assert scope.z == 0.0


def test_model_error_is_reported_not_raised() -> None:
    scope = OffsetScope()
    predictor = TruthPredictor()
    live = LiveAutofocus(predictor, scope)
    predictor.fail = True
    out = live(scope.snap())
    assert out.prediction is None and "model exploded" in out.message
    live.set_autofocus(True)
    out = live(scope.snap())
    assert out.prediction is None and "model exploded" in out.message


def test_settings_replaced_and_validated() -> None:
    live = LiveAutofocus(TruthPredictor(), OffsetScope())
    live.set_settings(ControllerSettings(dead_band_um=2.0))
    assert live.controller.settings.dead_band_um == 2.0
    bad = ControllerSettings()
    bad.gain = 5.0
    with pytest.raises(ZFocusError, match="gain"):
        live.set_settings(bad)
    assert live.controller.settings.dead_band_um == 2.0  # the old settings stay


def test_signals_announce_lock_autofocus_settings_and_messages_without_qt(tmp_path) -> None:
    scope = OffsetScope()
    live = LiveAutofocus(TruthPredictor(), scope)
    seen: list[tuple] = []
    live.locked.connect(lambda z: seen.append(("locked", z)))
    live.unlocked.connect(lambda: seen.append(("unlocked",)))
    live.autofocus_changed.connect(lambda on: seen.append(("autofocus", on)))
    live.settings_changed.connect(lambda s: seen.append(("settings", s.dead_band_um)))
    live.message.connect(lambda kind, text: seen.append((kind, text)))
    live.lock(0.0)
    live.set_autofocus(True)
    live.set_settings(ControllerSettings(dead_band_um=2.0))
    live.unlock()
    live(scope.snap())
    log = tmp_path / "log.csv"
    live.run_command(lambda lv: lv.export_log(log))
    assert log.read_text().startswith("index,")
    assert seen == [("locked", 0.0), ("autofocus", True), ("settings", 2.0), ("unlocked",),
                    ("info", f"Decision log saved to {log}")]


def test_refused_commands_become_error_messages_and_a_failed_lock_unlocks(tmp_path) -> None:
    scope = OffsetScope()
    predictor = TruthPredictor()
    live = LiveAutofocus(predictor, scope)
    seen: list[tuple] = []
    live.unlocked.connect(lambda: seen.append(("unlocked",)))
    live.locked.connect(lambda z: seen.append(("locked", z)))
    live.message.connect(lambda kind, text: seen.append((kind, text)))
    bad = ControllerSettings()
    bad.gain = 5.0
    live.run_command(lambda lv: lv.set_settings(bad))  # refused, reported, not raised
    assert seen[-1][0] == "error" and "gain" in seen[-1][1]
    (tmp_path / "a_file").write_text("x")
    target = tmp_path / "a_file" / "log.csv"  # its folder is a file: cannot be written
    live.run_command(lambda lv: lv.export_log(target))
    assert seen[-1][0] == "error" and str(target) in seen[-1][1]
    predictor.fail = True  # no estimate: locking on "the current estimate" must fail
    with pytest.raises(ZFocusError):
        live.lock()
    assert seen[-1] == ("unlocked",) and math.isnan(live.locked_um)
    with pytest.raises(RuntimeError):  # not a user error: it ends the loop, as before
        live.run_command(lambda lv: (_ for _ in ()).throw(RuntimeError("bug")))


def test_load_predictor_describes_the_model(tmp_path) -> None:
    pytest.importorskip("torch")
    from _tiny import write_untrained_model
    from napari_zfocus.live.autofocus import load_predictor
    from napari_zfocus.live.headless import demo_model_path

    path = write_untrained_model(tmp_path / "m.zfm")
    predictor, text = load_predictor(path)
    assert text.startswith("m.zfm: ") and "bins of" in text
    assert text.endswith("confidence not calibrated, no out-of-distribution check")
    assert predictor.config.n_bins > 0
    _, shipped = load_predictor(demo_model_path())  # the demo model holds unlike frames
    assert shipped.endswith("calibrated confidence and out-of-distribution check")
    bad = tmp_path / "bad.zfm"
    bad.write_bytes(b"not a model")
    with pytest.raises(ZFocusError, match="bad.zfm"):
        load_predictor(bad)
