"""The annotation dock's controls: layout only (no behaviour; the dock connects them)."""

from __future__ import annotations

from qtpy.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from napari_zfocus._qt._forms import float_spin

KEYS_HELP = "keys: f mark \u00b7 Enter confirm \u00b7 n next unmarked \u00b7 u undo"


def _size_spin(value: float):
    return float_spin(0.0001, 1000.0, value, step=0.01, decimals=4, suffix=" um")


def _row(*widgets: QWidget) -> QHBoxLayout:
    row = QHBoxLayout()
    for widget in widgets:
        row.addWidget(widget)
    return row


class AnnotationControls(QWidget):
    """The stack list with its navigation, and the current stack's fields and actions."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # Tells napari's dock that the stack list takes the height (no stretch below it).
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._build_stacks(), 1)
        layout.addWidget(self._build_current())
        keys = QLabel(KEYS_HELP)
        keys.setStyleSheet("color: #9a9a9a")
        layout.addWidget(keys)

    def _build_stacks(self) -> QGroupBox:
        box = QGroupBox("Stacks")
        layout = QVBoxLayout(box)
        self.open_folder_button = QPushButton("Open folder\u2026")
        self.open_folder_button.setToolTip(
            "A dataset folder: stacks (.tif) with or without annotations.csv"
        )
        self.open_files_button = QPushButton("Open stacks\u2026")
        self.use_layers_button = QPushButton("Use Image layers")
        self.use_layers_button.setToolTip(
            "Annotate the 3-D Image layers now open (saved as TIFF into a folder if needed)"
        )
        layout.addLayout(
            _row(self.open_folder_button, self.open_files_button, self.use_layers_button)
        )
        self.folder_label = QLabel("no dataset open")
        self.folder_label.setWordWrap(True)
        layout.addWidget(self.folder_label)
        self.counts_label = QLabel("0 / 0 marked")
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setMaximumHeight(10)
        counts = _row(self.counts_label)
        counts.addWidget(self.progress_bar, 1)
        layout.addLayout(counts)
        self.stack_list = QListWidget()
        self.stack_list.setMinimumHeight(140)
        layout.addWidget(self.stack_list, 1)
        self.prev_button = QPushButton("\u25c0 Prev")
        self.next_button = QPushButton("Next \u25b6")
        self.next_unmarked_button = QPushButton("Next unmarked (n)")
        layout.addLayout(_row(self.prev_button, self.next_button, self.next_unmarked_button))
        return box

    def _build_current(self) -> QGroupBox:
        box = QGroupBox("Current stack")
        layout = QVBoxLayout(box)
        self.stack_label = QLabel("\u2014")
        self.stack_label.setWordWrap(True)
        layout.addWidget(self.stack_label)
        form = QFormLayout()
        self.z_step_spin = _size_spin(1.0)
        self.pixel_size_spin = _size_spin(0.24)
        form.addRow("z-step", self.z_step_spin)
        form.addRow("pixel size", self.pixel_size_spin)
        layout.addLayout(form)
        self.suggestion_label = QLabel("suggestion: \u2014")
        layout.addWidget(self.suggestion_label)
        self.mark_button = QPushButton("Mark slice (f)")
        self.confirm_button = QPushButton("Confirm (Enter)")
        self.undo_button = QPushButton("Undo (u)")
        self.unmark_button = QPushButton("Unmark")
        layout.addLayout(
            _row(self.mark_button, self.confirm_button, self.undo_button, self.unmark_button)
        )
        self.advance_box = QCheckBox("go to the next unmarked stack after marking")
        self.advance_box.setChecked(True)
        self.wheel_box = QCheckBox("mouse wheel scrolls z (Ctrl+wheel always does)")
        self.wheel_box.setChecked(True)
        layout.addWidget(self.advance_box)
        layout.addWidget(self.wheel_box)
        self.model_button = QPushButton("Load model\u2026")
        self.model_button.setToolTip("Suggest the slice whose predicted z is nearest 0")
        self.base_model_button = QPushButton("Use base model")
        self.base_model_button.setToolTip(
            "Suggest with the packaged base model: the slice whose predicted z is nearest 0")
        self.model_label = QLabel("suggestions: bright-field sign flip")
        self.model_label.setWordWrap(True)
        model_row = _row(self.model_button, self.base_model_button)
        model_row.addWidget(self.model_label, 1)
        layout.addLayout(model_row)
        return box

    def current_stack_fields(self) -> tuple[QWidget, ...]:
        """The controls that need an open stack."""
        return (self.mark_button, self.confirm_button, self.unmark_button, self.z_step_spin,
                self.pixel_size_spin, self.prev_button, self.next_button,
                self.next_unmarked_button)
