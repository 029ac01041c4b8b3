"""The training dock's form: data and output paths, network and training settings.

:class:`TrainingForm` is a mixin of :class:`~napari_zfocus._qt.training_widget.TrainingWidget`:
it builds the fields (as attributes of the dock, where scripts and tests find them) and
reads them as a :class:`ModelConfig` and a validated :class:`TrainConfig`. The recipes
themselves live in :mod:`napari_zfocus.training.recipe`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
)

from napari_zfocus._qt._forms import float_spin, int_spin, with_browse
from napari_zfocus.model.config import ModelConfig
from napari_zfocus.training.recipe import build_train_config, recipe_form

if TYPE_CHECKING:
    from napari_zfocus.training.loop import TrainConfig


class TrainingForm:
    """Mixin: the form of the training dock (a QWidget subclass provides ``self``)."""

    def form_fields(self) -> tuple[Any, ...]:
        """The fields that are locked while a run is active."""
        return (self.dataset_edit, self.model_edit, self.field_spin, self.pixel_spin,
                self.bin_spin, self.zmin_spin, self.zmax_spin, self.batch_spin,
                self.steps_spin, self.minutes_spin, self.lr_spin, self.seed_spin,
                self.paper_box, self.batchnorm_box)

    def _files_box(self) -> QGroupBox:
        box = QGroupBox("Data and output")
        form = QFormLayout(box)
        self.dataset_edit = QLineEdit()
        self.dataset_edit.setPlaceholderText("folder with annotations.csv")
        form.addRow("dataset", with_browse(self.dataset_edit, self._choose_dataset))
        self.model_edit = QLineEdit()
        self.model_edit.setPlaceholderText("model.zfm")
        form.addRow("model file", with_browse(self.model_edit, self._choose_model_path))
        return box

    def _network_box(self) -> QGroupBox:
        start = ModelConfig.recommended()
        box = QGroupBox("Network input and z-bins")
        form = QFormLayout(box)
        self.field_spin = float_spin(1, 1000, start.field_um, step=1, decimals=1, suffix=" um")
        self.pixel_spin = float_spin(
            0.01, 10, start.pixel_size_um, step=0.01, decimals=3, suffix=" um",
            tooltip="paper: 0.24 um (60 nm pixels downsampled 4x)",
        )
        self.bin_spin = float_spin(0.1, 20, start.bin_um, step=0.1, decimals=2, suffix=" um")
        self.zmin_spin = float_spin(-500, 0, start.z_min_um, step=1, decimals=1, suffix=" um")
        self.zmax_spin = float_spin(0, 500, start.z_max_um, step=1, decimals=1, suffix=" um")
        self.batchnorm_box = QCheckBox("batch-norm (not in the paper; trains faster)")
        self.batchnorm_box.setChecked(start.batchnorm)
        form.addRow("field", self.field_spin)
        form.addRow("pixel size", self.pixel_spin)
        form.addRow("bin size", self.bin_spin)
        zrow = QHBoxLayout()
        zrow.addWidget(self.zmin_spin)
        zrow.addWidget(QLabel("to"))
        zrow.addWidget(self.zmax_spin)
        form.addRow("z range", zrow)
        form.addRow(self.batchnorm_box)
        return box

    def _training_box(self) -> QGroupBox:
        fast = recipe_form(paper=False)
        from napari_zfocus.training.loop import TrainConfig

        seed = TrainConfig().seed
        box = QGroupBox("Training")
        form = QFormLayout(box)
        self.batch_spin = int_spin(1, 4096, fast.batch)
        self.steps_spin = int_spin(0, 10_000_000, fast.steps, special="no limit")
        self.minutes_spin = float_spin(
            0, 100_000, fast.minutes, step=1, decimals=1, suffix=" min", special="no limit"
        )
        self.lr_spin = float_spin(1e-7, 1.0, fast.lr, step=1e-4, decimals=6)
        self.seed_spin = int_spin(0, 2**31 - 1, seed)
        self.paper_box = QCheckBox("paper recipe (batch 50, lr 1e-4, 100k steps, sd 0.1 init)")
        self.paper_box.setToolTip(
            "Wei & Roberts 2018: >100 h on a GPU. Unticked: the core's faster recipe "
            "(warm-up + cosine schedule, soft labels) for CPU budgets of minutes."
        )
        form.addRow("batch size", self.batch_spin)
        form.addRow("steps", self.steps_spin)
        form.addRow("time budget", self.minutes_spin)
        form.addRow("learning rate", self.lr_spin)
        form.addRow("seed", self.seed_spin)
        form.addRow(self.paper_box)
        self.device_label = QLabel(_device_text())
        form.addRow("device", self.device_label)
        return box

    def _choose_dataset(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Annotated dataset folder")
        if folder:
            self.dataset_edit.setText(folder)

    def _choose_model_path(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Model file to write", self.model_edit.text(), "zfocus model (*.zfm)"
        )
        if path:
            self.model_edit.setText(path)

    def _on_dataset_changed(self, text: str) -> None:
        if text and not self.model_edit.text():
            self.model_edit.setText(str(Path(text) / "model.zfm"))

    def _on_paper_toggled(self, on: bool) -> None:
        recipe = recipe_form(paper=on)
        self.batch_spin.setValue(recipe.batch)
        self.lr_spin.setValue(recipe.lr)
        self.steps_spin.setValue(recipe.steps)
        self.minutes_spin.setValue(recipe.minutes)
        self.pixel_spin.setValue(recipe.pixel_size_um)
        self.batchnorm_box.setChecked(recipe.batchnorm)

    def model_config(self) -> ModelConfig:
        """The network settings from the form (raises :class:`ZFocusError` if impossible)."""
        return ModelConfig(
            pixel_size_um=self.pixel_spin.value(),
            field_um=self.field_spin.value(),
            bin_um=self.bin_spin.value(),
            z_min_um=self.zmin_spin.value(),
            z_max_um=self.zmax_spin.value(),
            batchnorm=self.batchnorm_box.isChecked(),
        )

    def train_config(self, resume: bool = False) -> TrainConfig:
        """The training settings from the form (validated)."""
        return build_train_config(
            self.model_edit.text(),
            steps=self.steps_spin.value(),
            minutes=self.minutes_spin.value(),
            batch=self.batch_spin.value(),
            lr=self.lr_spin.value(),
            seed=self.seed_spin.value(),
            paper=self.paper_box.isChecked(),
            resume=resume,
        )


def _device_text() -> str:
    """What training will run on (the core picks CUDA when present)."""
    import torch

    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return f"CPU ({torch.get_num_threads()} threads; no CUDA GPU found)"
