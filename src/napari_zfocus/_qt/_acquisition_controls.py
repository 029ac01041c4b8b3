"""The acquisition dock's form: core and model rows, focus channel, method, buttons.

:class:`AcquisitionControls` builds the widgets onto the dock (as attributes of the dock,
where scripts and tests find them), wires them to the dock's commands, fills the focus
channel combos from a core's config groups, and reads the fields as
:class:`~napari_zfocus.acquisition.settings.AutofocusSettings`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
)

from napari_zfocus._qt._acquisition_plots import RefocusView
from napari_zfocus._qt._forms import float_spin, with_browse
from napari_zfocus.acquisition.settings import POLICIES, AutofocusSettings

if TYPE_CHECKING:
    from napari_zfocus._qt.acquisition_widget import AcquisitionAutofocusWidget

#: The group entry that keeps the acquisition's own channel for the focus frame.
CURRENT_CHANNEL = "(current channel)"
#: Methods a user chooses from here ("none" only records: the command line offers it).
DOCK_METHODS = ("zfocus", "scan")
#: Preset names taken as the bright-field focus channel when the core has one.
BRIGHT_FIELD_NAMES = ("bf", "brightfield", "bright field", "bright-field", "dic", "phase")


def bright_field_preset(presets: list[str], current: str) -> str:
    """The preset to focus with by default: a bright-field one, else the current one."""
    for preset in presets:
        if preset.strip().lower() in BRIGHT_FIELD_NAMES:
            return preset
    return current if current in presets else (presets[0] if presets else "")


class AcquisitionControls:
    """Builds and reads the acquisition dock's controls.

    Parameters
    ----------
    dock
        The dock the widgets are put on.
    """

    def __init__(self, dock: AcquisitionAutofocusWidget) -> None:
        self.dock = dock
        self._core: Any = None
        self._shown: tuple[Any, ...] = ()

    def build(self) -> None:
        """Lay the dock out and connect its controls."""
        dock = self.dock
        layout = QVBoxLayout(dock)
        layout.addWidget(self._source_box())
        layout.addWidget(self._settings_box())
        layout.addLayout(self._buttons())
        dock.state_label = QLabel("Not installed.")
        dock.state_label.setWordWrap(True)
        dock.state_label.setToolTip("Installed, every acquisition of this core refocuses "
                                    "before each position and time point")
        layout.addWidget(dock.state_label)
        dock.view = RefocusView()
        layout.addWidget(dock.view)
        layout.addStretch(1)
        for label in (dock.core_label, dock.model_label, dock.state_label):
            # Texts that arrive later must wrap, not widen the dock.
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            label.setMinimumWidth(200)

    def _source_box(self) -> QGroupBox:
        dock = self.dock
        box = QGroupBox("Microscope and model")
        form = QFormLayout(box)
        dock.core_label = QLabel("-")
        dock.core_label.setWordWrap(True)
        dock.model_edit = QLineEdit()
        dock.model_edit.setPlaceholderText("demo model")
        dock.model_edit.setToolTip("Model file (.zfm); empty: the demo model shipped with zfocus")
        dock.model_edit.editingFinished.connect(self._on_model_edited)
        dock.model_label = QLabel("no model loaded")
        dock.model_label.setWordWrap(True)
        form.addRow("core", dock.core_label)
        form.addRow("model", with_browse(dock.model_edit, self.choose_model))
        form.addRow("", dock.model_label)
        return box

    def _settings_box(self) -> QGroupBox:
        dock = self.dock
        box = QGroupBox("Focus frame and corrections")
        form = QFormLayout(box)
        defaults = AutofocusSettings()
        dock.group_combo = QComboBox()
        dock.group_combo.setToolTip("Config group of the focus channel")
        dock.group_combo.currentTextChanged.connect(self._fill_presets)
        dock.preset_combo = QComboBox()
        dock.preset_combo.setToolTip("Preset of the focus frame (bright field); the "
                                     "acquisition's channels are restored after it")
        dock.exposure = float_spin(0.0, 10_000.0, 0.0, step=5.0, decimals=1, suffix=" ms",
                                   special="preset's", tooltip="Exposure of the focus frame")
        dock.method_combo = QComboBox()
        dock.method_combo.addItems(list(DOCK_METHODS))
        dock.method_combo.setToolTip("zfocus: one frame read by the model; scan: a z-scan "
                                     "scored by sharpness (many frames)")
        dock.policy_combo = QComboBox()
        dock.policy_combo.addItems(list(POLICIES))
        dock.policy_combo.setToolTip("No usable estimate: hold the last correction, skip the "
                                     "position at this time point, or scan")
        dock.max_step = float_spin(0.1, 50.0, defaults.max_step_um, step=0.5, suffix=" um",
                                   tooltip="Largest focus move of one correction")
        form.addRow("focus group", dock.group_combo)
        form.addRow("focus preset", dock.preset_combo)
        form.addRow("focus exposure", dock.exposure)
        form.addRow("method", dock.method_combo)
        form.addRow("if no estimate", dock.policy_combo)
        form.addRow("max step", dock.max_step)
        dock.settings_box = box
        return box

    def _buttons(self) -> QVBoxLayout:
        dock = self.dock
        rows = QVBoxLayout()
        install_row, demo_row = QHBoxLayout(), QHBoxLayout()
        dock.install_button = QPushButton("Install")
        dock.install_button.setToolTip("Refocus in every acquisition of this core")
        dock.install_button.clicked.connect(dock.install)
        dock.remove_button = QPushButton("Remove")
        dock.remove_button.setToolTip("Give the core its previous acquisition engine back")
        dock.remove_button.clicked.connect(dock.remove)
        install_row.addWidget(dock.install_button)
        install_row.addWidget(dock.remove_button)
        dock.demo_button = QPushButton("Run demo acquisition")
        dock.demo_button.setToolTip("A simulated 4-position, 2 h time-lapse (BF + FL) with "
                                    "the autofocus, on a simulated clock")
        dock.demo_button.clicked.connect(dock.run_demo)
        dock.cancel_button = QPushButton("Cancel")
        dock.cancel_button.clicked.connect(dock.cancel_demo)
        demo_row.addWidget(dock.demo_button)
        demo_row.addWidget(dock.cancel_button)
        rows.addLayout(install_row)
        rows.addLayout(demo_row)
        return rows

    # -- focus channel ---------------------------------------------------------------

    def fill_channels(self, core: Any) -> None:
        """Offer ``core``'s config groups; pick its channel group and a bright-field preset."""
        self._core = core
        combo = self.dock.group_combo
        groups = [str(g) for g in core.getAvailableConfigGroups()]
        channel_group = str(core.getChannelGroup() or "")
        combo.blockSignals(True)
        combo.clear()
        combo.addItems([*groups, CURRENT_CHANNEL])
        combo.blockSignals(False)
        start = channel_group if channel_group in groups else (groups[0] if groups else "")
        combo.setCurrentText(start or CURRENT_CHANNEL)
        self._fill_presets(combo.currentText())

    def _fill_presets(self, group: str) -> None:
        combo = self.dock.preset_combo
        combo.clear()
        core = self._core
        if core is None or not group or group == CURRENT_CHANNEL:
            combo.setEnabled(False)
            return
        presets = [str(p) for p in core.getAvailableConfigs(group)]
        combo.addItems(presets)
        combo.setCurrentText(bright_field_preset(presets, str(core.getCurrentConfig(group))))
        combo.setEnabled(bool(presets))

    # -- reading ---------------------------------------------------------------------

    def settings(self) -> AutofocusSettings:
        """Autofocus settings from the fields (validated: raises ZFocusError)."""
        dock = self.dock
        group = dock.group_combo.currentText()
        preset = dock.preset_combo.currentText()
        use_group = bool(group) and group != CURRENT_CHANNEL
        exposure = dock.exposure.value()
        settings = AutofocusSettings(
            focus_group=group if use_group else None,
            focus_preset=(preset or None) if use_group else None,
            focus_exposure_ms=exposure if exposure > 0 else None,
            method=dock.method_combo.currentText(),
            policy=dock.policy_combo.currentText(),
            max_step_um=dock.max_step.value(),
        )
        settings.validate()
        return settings

    # -- state -----------------------------------------------------------------------

    def show_state(
        self, *, ready: bool, installed: bool, running: bool, demo: bool, simulated: bool,
        frames: int, settings: AutofocusSettings | None, waiting: bool,
    ) -> None:
        """Buttons and the state line for this state (nothing is redrawn when unchanged).

        ``ready``: the core is there; ``demo``: the demo worker runs; ``simulated``: the
        dock owns a simulated plate; ``waiting``: an install waits for the model.
        """
        state = (ready, installed, running, demo, simulated, frames, waiting)
        if state == self._shown:
            return
        self._shown = state
        dock = self.dock
        dock.install_button.setEnabled(ready and not installed and not running)
        dock.remove_button.setEnabled(installed and not running)
        dock.demo_button.setVisible(simulated)
        dock.cancel_button.setVisible(simulated)
        dock.demo_button.setEnabled(ready and not running and not demo)
        dock.cancel_button.setEnabled(demo)
        dock.settings_box.setEnabled(not installed)  # settings change only while removed
        if waiting:
            text = "Waiting for the model\u2026"
        elif not ready:
            text = "Waiting for the microscope core\u2026"
        elif running:
            text = f"Acquisition running: {frames} frames" + (
                ", refocusing with the autofocus." if installed else
                " (without the autofocus: install it before the next one).")
        elif settings is None:
            text = "Not installed: acquisitions of this core run without the autofocus."
        else:
            text = self._installed_text(settings, frames)
        dock.state_label.setText(text)

    @staticmethod
    def _installed_text(s: AutofocusSettings, frames: int) -> str:
        channel = f"{s.focus_group}/{s.focus_preset}" if s.focus_group else "current channel"
        text = (f"Installed: {s.method} on {channel}, if no estimate {s.policy}, max step "
                f"{s.max_step_um:g} um.")
        return text + (f" Last acquisition: {frames} frames." if frames else "")

    # -- model file ------------------------------------------------------------------

    def _on_model_edited(self) -> None:
        text = self.dock.model_edit.text().strip()
        if text != self.dock.model_source:
            self.dock.load_model(text or None)

    def choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.dock, "Load model", "", "zfocus models (*.zfm);;All files (*)"
        )
        if path:
            self.dock.model_edit.setText(path)
            self.dock.load_model(path)
