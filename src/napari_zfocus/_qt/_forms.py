"""Form helpers shared by every dock: spin boxes, file rows. One way to build a field."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QWidget,
)


def float_spin(
    lo: float,
    hi: float,
    value: float,
    *,
    step: float = 0.1,
    decimals: int = 2,
    suffix: str = "",
    special: str = "",
    tooltip: str = "",
) -> QDoubleSpinBox:
    """A floating-point field that applies on Enter or the arrows, not on every keystroke.

    Parameters
    ----------
    lo, hi, value
        Range and start value (the box clamps what the user types to the range).
    step, decimals, suffix
        Arrow step, shown decimals, unit text such as ``" um"``.
    special
        Text shown at the minimum instead of the number (``"unknown"``, ``"auto"``).
    tooltip
        Hover help.
    """
    box = QDoubleSpinBox()
    box.setDecimals(decimals)  # before the range and value: they are rounded to it
    return _configure(box, lo, hi, value, step, suffix, special, tooltip)


def int_spin(
    lo: int, hi: int, value: int, *, step: int = 1, suffix: str = "", special: str = "",
    tooltip: str = "",
) -> QSpinBox:
    """An integer field with the same behaviour as :func:`float_spin`."""
    return _configure(QSpinBox(), lo, hi, value, step, suffix, special, tooltip)


def choice_combo(labels: Iterable[str], *, tooltip: str = "") -> QComboBox:
    """A drop-down of ``labels`` in order (index ``i`` is the ``i``-th label)."""
    combo = QComboBox()
    for label in labels:
        combo.addItem(label)
    if tooltip:
        combo.setToolTip(tooltip)
    return combo


def _configure(
    box: Any, lo: float, hi: float, value: float, step: float, suffix: str, special: str,
    tooltip: str,
) -> Any:
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setValue(value)
    if suffix:
        box.setSuffix(suffix)
    if special:
        box.setSpecialValueText(special)
    if tooltip:
        box.setToolTip(tooltip)
    # Typing "1.5" must not apply "1" first: settings may drive a stage.
    box.setKeyboardTracking(False)
    return box


def with_browse(edit: QLineEdit, on_browse: Callable[[], None]) -> QWidget:
    """A path field with a "..." button beside it."""
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(edit, 1)
    button = QToolButton()
    button.setText("\u2026")
    button.clicked.connect(on_browse)
    row.addWidget(button)
    return box


def folder_row(edit: QLineEdit, title: str) -> QHBoxLayout:
    """``edit`` and a "Browse..." button that picks a folder into it (a folder dialog
    titled ``title``, opened at the folder already typed)."""

    def choose() -> None:
        folder = QFileDialog.getExistingDirectory(edit, title, edit.text())
        if folder:
            edit.setText(folder)

    browse = QPushButton("Browse...")
    browse.clicked.connect(choose)
    row = QHBoxLayout()
    row.addWidget(edit)
    row.addWidget(browse)
    return row
