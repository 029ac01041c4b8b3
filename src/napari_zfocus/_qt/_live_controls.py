"""The live dock's form: source and model rows, buttons, controller fields, file dialogs.

:class:`LiveControls` builds the widgets onto the dock (as attributes of the dock, where
scripts and tests find them), wires them to the dock's commands, and reads the controller
fields as :class:`~napari_zfocus.live.controller.ControllerSettings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_error, show_warning
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
)

from napari_zfocus._qt._forms import float_spin
from napari_zfocus._qt._live_display import LiveReadout
from napari_zfocus.live.controller import ControllerSettings
from napari_zfocus.live.microscope_factory import load_mm_config

if TYPE_CHECKING:
    from napari_zfocus._qt.live_widget import LiveAutofocusWidget

#: Default z limits of the dock's fields, um (the microscope's own limits apply as well).
Z_LIMITS_UM = (-200.0, 200.0)


class LiveControls:
    """Builds and reads the live dock's controls.

    Parameters
    ----------
    dock
        The live dock the widgets are put on.
    """

    def __init__(self, dock: LiveAutofocusWidget) -> None:
        self.dock = dock

    def build(self) -> None:
        """Lay the dock out and connect its controls."""
        dock = self.dock
        layout = QVBoxLayout(dock)
        layout.addWidget(self._source_box())
        layout.addLayout(self._buttons())
        layout.addWidget(self._settings_box())
        dock.readout = LiveReadout(dock.viewer)
        dock.labels = dock.readout.labels
        dock.softmax = dock.readout.softmax
        dock.trace = dock.readout.trace
        layout.addWidget(dock.readout)
        dock.save_log_button = QPushButton("Save decision log (CSV)...")
        dock.save_log_button.clicked.connect(self.choose_log_path)
        layout.addWidget(dock.save_log_button)
        layout.addStretch(1)

    def _source_box(self) -> QGroupBox:
        dock = self.dock
        source = QGroupBox("Microscope and model")
        form = QGridLayout(source)
        dock.scope_label = QLabel(dock._scope_text())
        dock.scope_label.setWordWrap(True)
        dock.mm_button = QPushButton("Load Micro-Manager config...")
        dock.mm_button.clicked.connect(self.choose_mm_config)
        dock.model_label = QLabel("no model loaded")
        dock.model_label.setWordWrap(True)
        dock.model_button = QPushButton("Load model...")
        dock.model_button.clicked.connect(self.choose_model)
        # Texts that arrive later (a model loading in a worker) must not widen the dock
        # after the first frame has been fitted to the canvas: they wrap instead.
        for label in (dock.scope_label, dock.model_label):
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            label.setMinimumWidth(200)
        form.addWidget(dock.scope_label, 0, 0)
        form.addWidget(dock.mm_button, 0, 1)
        form.addWidget(dock.model_label, 1, 0)
        form.addWidget(dock.model_button, 1, 1)
        return source

    def _buttons(self) -> QHBoxLayout:
        dock = self.dock
        buttons = QHBoxLayout()
        dock.start_button = QPushButton("Start live")
        dock.start_button.setCheckable(True)
        dock.start_button.toggled.connect(
            lambda on: dock.start_live() if on else dock.stop_live()
        )
        dock.lock_button = QPushButton("Lock focus")
        dock.lock_button.setCheckable(True)
        dock.lock_button.toggled.connect(
            lambda on: dock._submit(lambda live: live.lock() if on else live.unlock())
        )
        dock.autofocus_box = QCheckBox("Autofocus")
        dock.autofocus_box.setToolTip("Move the focus drive to hold the locked estimate")
        dock.autofocus_box.toggled.connect(
            lambda on: dock._submit(lambda live: live.set_autofocus(on))
        )
        buttons.addWidget(dock.start_button)
        buttons.addWidget(dock.lock_button)
        buttons.addWidget(dock.autofocus_box)
        return buttons

    def _settings_box(self) -> QGroupBox:
        dock = self.dock
        settings = QGroupBox("Controller")
        form = QFormLayout(settings)
        d = ControllerSettings()
        dock.dead_band = float_spin(0.0, 20.0, d.dead_band_um, step=0.1, suffix=" um")
        dock.gain = float_spin(0.05, 1.0, d.gain, step=0.05)
        dock.max_step = float_spin(0.1, 50.0, d.max_step_um, step=0.5, suffix=" um")
        dock.min_conf = float_spin(0.0, 1.0, d.min_confidence, step=0.05)
        lo, hi = Z_LIMITS_UM
        dock.z_min = float_spin(-10000.0, 10000.0, lo, step=10.0, decimals=1, suffix=" um")
        dock.z_max = float_spin(-10000.0, 10000.0, hi, step=10.0, decimals=1, suffix=" um")
        for label, box in (
            ("dead band", dock.dead_band),
            ("gain", dock.gain),
            ("max step", dock.max_step),
            ("min confidence", dock.min_conf),
            ("z min", dock.z_min),
            ("z max", dock.z_max),
        ):
            form.addRow(label, box)
            box.valueChanged.connect(dock._on_settings_changed)
        return settings

    def settings(self) -> ControllerSettings:
        """Controller settings from the fields (validated: raises ZFocusError)."""
        dock = self.dock
        settings = ControllerSettings(
            dead_band_um=dock.dead_band.value(),
            gain=dock.gain.value(),
            max_step_um=dock.max_step.value(),
            min_confidence=dock.min_conf.value(),
            z_limits_um=(dock.z_min.value(), dock.z_max.value()),
        )
        settings.validate()
        return settings

    @staticmethod
    def set_checked(button: Any, checked: bool) -> None:
        """Set a toggle's state without running its handler."""
        button.blockSignals(True)
        button.setChecked(checked)
        button.blockSignals(False)

    # -- file dialogs ------------------------------------------------------------------
    def choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.dock, "Load model", "", "zfocus models (*.zfm);;All files (*)"
        )
        if path:
            self.dock.load_model(path)

    def choose_mm_config(self) -> None:
        try:
            import pymmcore_plus  # noqa: F401
        except ImportError:
            show_error("Micro-Manager support needs pymmcore-plus: pip install pymmcore-plus")
            return
        path, _ = QFileDialog.getOpenFileName(
            self.dock, "Micro-Manager configuration", "",
            "Micro-Manager config (*.cfg);;All files (*)",
        )
        if path:
            self.load_micro_manager(path)

    def load_micro_manager(self, path: str | Path) -> None:
        """Load a Micro-Manager configuration in a worker; the dock uses (and closes) it."""
        dock = self.dock
        dock.mm_button.setEnabled(False)
        dock.scope_label.setText(f"Loading {Path(path).name}...")

        def finished() -> None:
            dock.scope_label.setText(dock._scope_text())
            dock._update_state()

        dock.start_worker(
            load_mm_config, str(path),
            progress={"desc": "Loading Micro-Manager config"},
            returned=lambda scope: dock.set_microscope(scope, owned=True),
            errored=dock._on_worker_error,
            finished=finished,
        )

    def choose_log_path(self) -> None:
        if self.dock.live is None:
            show_warning("No decisions yet: start live view first.")
            return
        path, _ = QFileDialog.getSaveFileName(
            self.dock, "Save decision log", "decisions.csv", "CSV (*.csv)"
        )
        if path:
            self.dock.save_decision_log(path)
