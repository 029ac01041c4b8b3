"""A dock's model slot: the newest request wins, a failed load keeps the old model."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from qtpy.QtWidgets import QLabel

from napari_zfocus._qt._dock import ZFocusDock
from napari_zfocus._qt._model_slot import ModelSlot
from napari_zfocus.errors import ZFocusError

WAIT_MS = 30_000  # generous: the machine is shared; waits end as soon as the state is reached


class Recorder:
    """A dock, its model label and slot, and what the slot's callbacks were told."""

    def __init__(self, qtbot, *, pixel_size: bool = False) -> None:
        self.dock = ZFocusDock(None)
        qtbot.addWidget(self.dock)
        self.label = QLabel(self.dock)
        self.changed: list[object] = []
        self.settled = 0
        self.failures: list[str] = []
        self.slot = ModelSlot(
            self.dock, self.label, changed=lambda: self.changed.append(self.slot.predictor),
            settled=self._settle, failed=self.failures.append, pixel_size=pixel_size,
        )

    def _settle(self) -> None:
        self.settled += 1


def gated(gate: threading.Event, predictor: object, description: str) -> tuple[object, str]:
    """A load that waits for ``gate`` (so the test orders the results)."""
    if not gate.wait(WAIT_MS / 1000):
        raise TimeoutError("gate never opened")
    return predictor, description


def broken(exc: BaseException) -> tuple[object, str]:
    raise exc


@pytest.fixture
def rec(qtbot) -> Recorder:
    return Recorder(qtbot)


class Model:
    """A stand-in model (the label names its type when no description is given)."""


def ended(rec: Recorder, worker) -> bool:
    """True once ``worker`` has finished (all of its signals delivered to the slot)."""
    return worker not in rec.dock.lifecycle.workers


def test_only_the_newest_load_counts(qtbot, rec):
    old_gate, new_gate = threading.Event(), threading.Event()
    old, new = Model(), Model()
    first = rec.slot.load(gated, old_gate, old, "old.zfm", name="old.zfm", what="/m/old.zfm")
    assert rec.slot.loading and rec.label.text() == "old.zfm: loading\u2026"
    second = rec.slot.load(gated, new_gate, new, "new.zfm", name="new.zfm", what="/m/new.zfm")
    try:
        old_gate.set()  # the replaced load ends first: ignored, nothing settles
        qtbot.waitUntil(lambda: ended(rec, first), timeout=WAIT_MS)
        assert rec.slot.predictor is None and rec.slot.worker is second
        assert rec.label.text() == "new.zfm: loading\u2026" and rec.settled == 0
    finally:
        new_gate.set()
    qtbot.waitUntil(lambda: not rec.slot.loading, timeout=WAIT_MS)
    assert rec.slot.predictor is new and rec.label.text() == rec.slot.text == "new.zfm"
    assert rec.changed == [new] and rec.settled == 1 and rec.failures == []


@pytest.mark.parametrize(("exc", "message"), [
    (ValueError("bad bytes"), "/m/bad.zfm: cannot load the model (ValueError: bad bytes)"),
    (ZFocusError("bad.zfm: not a model file"), "bad.zfm: not a model file"),
])
def test_a_failed_load_is_reported_and_keeps_the_old_model(qtbot, rec, exc, message):
    kept = Model()
    rec.slot.set(kept, "kept.zfm")
    assert rec.settled == 1 and rec.changed == [kept]
    rec.slot.load(broken, exc, name="bad.zfm", what="/m/bad.zfm")
    assert rec.label.text() == "bad.zfm: loading\u2026"
    qtbot.waitUntil(lambda: not rec.slot.loading, timeout=WAIT_MS)
    assert rec.failures == [message]
    assert rec.slot.predictor is kept and rec.label.text() == "kept.zfm"
    assert rec.settled == 2 and rec.changed == [kept]  # settled (pending work may run), unchanged


def test_set_replaces_a_load_still_running(qtbot, rec):
    gate = threading.Event()
    mine = Model()
    loading = rec.slot.load(gated, gate, Model(), "file.zfm", name="file.zfm", what="file.zfm")
    try:
        rec.slot.set(mine)
        assert not rec.slot.loading and rec.settled == 1
        assert rec.slot.predictor is mine and rec.label.text() == "Model"  # its type's name
    finally:
        gate.set()
    qtbot.waitUntil(lambda: ended(rec, loading), timeout=WAIT_MS)
    assert rec.slot.predictor is mine and rec.label.text() == "Model"
    assert rec.changed == [mine] and rec.settled == 1


def test_the_label_can_show_the_model_pixel_size(qtbot):
    rec = Recorder(qtbot, pixel_size=True)
    rec.slot.set(SimpleNamespace(config=SimpleNamespace(pixel_size_um=0.24)), "m.zfm")
    assert rec.label.text() == "m.zfm (0.24 um/px)"
    rec.slot.set(Model(), "oracle")  # no config: nothing to add
    assert rec.label.text() == "oracle"


def test_a_load_ending_after_the_dock_closed_is_ignored(qtbot, rec):
    gate = threading.Event()
    loading = rec.slot.load(gated, gate, Model(), "file.zfm", name="file.zfm", what="file.zfm")
    rec.dock.shutdown()
    gate.set()
    qtbot.waitUntil(lambda: ended(rec, loading), timeout=WAIT_MS)
    assert rec.slot.predictor is None and rec.changed == [] and rec.settled == 0
