"""The training dock's form: data and output paths, the start model, network and training settings.

:class:`TrainingForm` is a mixin of :class:`~napari_zfocus._qt.training_widget.TrainingWidget`:
it builds the fields (as attributes of the dock, where scripts and tests find them) and
reads them as a :class:`ModelConfig` and a validated :class:`TrainConfig`. The recipes
themselves live in :mod:`napari_zfocus.training.recipe`.

"Start from" is scratch, the packaged base model (disabled, with a tooltip, when the
package has none) or a model file. Starting from a model, the network is the start
model's (its fields show its values and are locked), the learning rate drops to the
fine-tuning rate, and the core applies the few-stack schedule.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
)

from napari_zfocus._qt._forms import choice_combo, float_spin, int_spin, with_browse
from napari_zfocus.errors import ZFocusError
from napari_zfocus.model.base_model import (
    BASE_FEATURES_SPEC,
    BASE_MODELS,
    BASE_SPEC,
    base_model_installed,
)
from napari_zfocus.model.config import IGNORED_SETTINGS, ModelConfig
from napari_zfocus.training.recipe import build_train_config, recipe_form

#: The "start from" choices: (label, what they name).
START_CHOICES = (("scratch", None), ("base model", BASE_SPEC),
                 ("base model (feature network)", BASE_FEATURES_SPEC), ("a model file", "file"))
_FILE_CHOICE = [spec for _, spec in START_CHOICES].index("file")

#: The "network" choices: (label, architecture); the first is the recommended one.
NETWORK_CHOICES = (("feature network (defocus statistics and spectrum)", "feature_mlp"),
                   ("compact CNN (3x3 stages, global pooling)", "compact_cnn"),
                   ("paper CNN (Wei & Roberts 2018)", "paper_cnn"))

if TYPE_CHECKING:
    from napari_zfocus.training.loop import TrainConfig


class TrainingForm:
    """Mixin: the form of the training dock (a QWidget subclass provides ``self``)."""

    def form_fields(self) -> tuple[Any, ...]:
        """The fields that are locked while a run is active."""
        return (self.dataset_edit, self.model_edit, self.start_combo, self.start_edit,
                self.network_combo, self.field_spin, self.pixel_spin, self.bin_spin,
                self.zmin_spin, self.zmax_spin, self.batch_spin, self.steps_spin,
                self.minutes_spin, self.lr_spin, self.seed_spin, self.paper_box,
                self.batchnorm_box, self.aperture_box, self.aperture_spin)

    def network_fields(self) -> dict[str, Any]:
        """The fields of the network, by the ``ModelConfig`` setting each one edits: the
        start model's when starting from one."""
        return {"architecture": self.network_combo, "field_um": self.field_spin,
                "pixel_size_um": self.pixel_spin, "bin_um": self.bin_spin,
                "z_min_um": self.zmin_spin, "z_max_um": self.zmax_spin,
                "batchnorm": self.batchnorm_box, "reference_condenser_na": self.aperture_box}

    def architecture(self) -> str:
        """The network chosen in the form (an entry of ``model.config.ARCHITECTURES``)."""
        return NETWORK_CHOICES[self.network_combo.currentIndex()][1]

    def _set_architecture(self, architecture: str) -> None:
        names = [name for _, name in NETWORK_CHOICES]
        self.network_combo.setCurrentIndex(names.index(architecture))

    def _files_box(self) -> QGroupBox:
        box = QGroupBox("Data and output")
        form = QFormLayout(box)
        self.dataset_edit = QLineEdit()
        self.dataset_edit.setPlaceholderText("folder with annotations.csv")
        form.addRow("dataset", with_browse(self.dataset_edit, self._choose_dataset))
        self.model_edit = QLineEdit()
        self.model_edit.setPlaceholderText("model.zfm")
        form.addRow("model file", with_browse(self.model_edit, self._choose_model_path))
        self._start_row(form)
        return box

    def _start_row(self, form: QFormLayout) -> None:
        self.start_combo = choice_combo(
            (label for label, _ in START_CHOICES),
            tooltip="scratch: random weights. A model: fine-tune it (its network is kept, at "
                    "a lower learning rate with a short warm-up). The base models are trained "
                    "on the simulator's broad mix: the compact CNN's, and the feature "
                    "network's")
        for index, (_, spec) in enumerate(START_CHOICES):
            if spec in BASE_MODELS and not base_model_installed(spec):
                self.start_combo.model().item(index).setEnabled(False)
                self.start_combo.setItemData(
                    index, "no base model is installed with this package",
                    Qt.ItemDataRole.ToolTipRole)
        self.start_edit = QLineEdit()
        self.start_edit.setPlaceholderText("model.zfm to start from")
        self.start_edit.setEnabled(False)
        form.addRow("start from", self.start_combo)
        form.addRow("start model", with_browse(self.start_edit, self._choose_start_model))
        self.start_combo.currentIndexChanged.connect(self._on_start_changed)
        self.start_edit.editingFinished.connect(self._show_start_network)

    def _network_box(self) -> QGroupBox:
        start = ModelConfig.recommended()
        box = QGroupBox("Network input and z-bins")
        form = QFormLayout(box)
        self.network_combo = choice_combo(
            (label for label, _ in NETWORK_CHOICES),
            tooltip="feature network at 0.48 um/px: fixed defocus statistics and the power "
                    "spectrum read by a small network, the most accurate for the same CPU "
                    "time (README, Benchmarks); compact CNN at 0.6 um/px: a small CNN; paper "
                    "CNN at 1.2 um/px: the paper's network on a CPU budget")
        form.addRow("network", self.network_combo)
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
        form.addRow("condenser", self._aperture_row())
        self._set_architecture(start.architecture)
        self.network_combo.currentIndexChanged.connect(self._on_network_changed)
        return box

    def _aperture_row(self) -> QHBoxLayout:
        """Stacks of several condenser apertures: learn distances as at a reference one."""
        tip = ("For stacks taken at several condenser apertures (each stack's in the "
               "condenser_na column of annotations.csv): the model learns distances as at "
               "this aperture, so every stack teaches one scale; the inspection dock's "
               "Rescale tab (or 'zfocus rescale --condenser-na') then sets a microscope's. "
               "Off: true distances, for stacks of one setting.")
        self.aperture_box = QCheckBox("several apertures: read as at NA")
        self.aperture_box.setToolTip(tip)
        self.aperture_spin = float_spin(0.01, 1.6, 0.4, step=0.05, decimals=2, tooltip=tip)
        self.aperture_box.toggled.connect(lambda _on: self.lock_network())
        row = QHBoxLayout()
        row.addWidget(self.aperture_box)
        row.addWidget(self.aperture_spin)
        return row

    def _on_network_changed(self, _index: int = 0) -> None:
        """A network from scratch starts at its own CPU-budget input setting."""
        if self.start_combo.currentIndex() == 0 and not self.paper_box.isChecked():
            preset = ModelConfig.for_architecture(self.architecture())
            self.pixel_spin.setValue(preset.pixel_size_um)
            self.batchnorm_box.setChecked(preset.batchnorm)
        self.lock_network()

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

    def _choose_start_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Model file to start from", "", "zfocus model (*.zfm);;All (*)"
        )
        if path:
            self.start_combo.setCurrentIndex(_FILE_CHOICE)
            self.start_edit.setText(path)
            self._show_start_network()

    def start_spec(self) -> str | None:
        """What the run starts from: ``None`` (scratch), a base's word or a model file.

        Raises
        ------
        ZFocusError
            "a model file" chosen without one.
        """
        spec = START_CHOICES[self.start_combo.currentIndex()][1]
        if spec != "file":
            return spec
        text = self.start_edit.text().strip()
        if not text:
            raise ZFocusError("start model: choose the model file to start from")
        return text

    def _on_start_changed(self, _index: int = 0) -> None:
        spec = START_CHOICES[self.start_combo.currentIndex()][1]
        self.lr_spin.setValue(recipe_form(self.paper_box.isChecked(),
                                          fine_tune=spec is not None).lr)
        self._show_start_network()
        self.lock_network()

    def lock_network(self) -> None:
        """The network fields follow the start model: locked unless from scratch (and
        everything while a run is active, when the start choice itself is locked)."""
        idle = self.start_combo.isEnabled()
        spec = START_CHOICES[self.start_combo.currentIndex()][1]
        self.start_edit.setEnabled(idle and spec == "file")
        ignored = IGNORED_SETTINGS[self.architecture()]
        for setting, widget in self.network_fields().items():
            widget.setEnabled(idle and spec is None and setting not in ignored)
        self.aperture_spin.setEnabled(self.aperture_box.isEnabled()
                                      and self.aperture_box.isChecked())

    def _start_config(self, spec: str) -> ModelConfig:
        from napari_zfocus.model.base_model import resolve_start_model
        from napari_zfocus.model.io import read_model_info

        return read_model_info(resolve_start_model(spec))[0]  # the header only

    def _show_start_network(self) -> None:
        """Show the start model's network in its (locked) fields, when it can be read."""
        try:
            spec = self.start_spec()
            config = self._start_config(spec) if spec is not None else None
        except ZFocusError:
            return  # said when the run starts
        if config is None:
            return
        self._set_architecture(config.architecture)
        for spin, value in ((self.field_spin, config.field_um),
                            (self.pixel_spin, config.pixel_size_um),
                            (self.bin_spin, config.bin_um), (self.zmin_spin, config.z_min_um),
                            (self.zmax_spin, config.z_max_um)):
            spin.setValue(value)
        self.batchnorm_box.setChecked(config.batchnorm)
        self.aperture_box.setChecked(config.reference_condenser_na is not None)
        if config.reference_condenser_na is not None:
            self.aperture_spin.setValue(config.reference_condenser_na)

    def _on_dataset_changed(self, text: str) -> None:
        if text and not self.model_edit.text():
            self.model_edit.setText(str(Path(text) / "model.zfm"))

    def _on_paper_toggled(self, on: bool) -> None:
        recipe = recipe_form(paper=on, fine_tune=self.start_combo.currentIndex() > 0)
        self.batch_spin.setValue(recipe.batch)
        self.lr_spin.setValue(recipe.lr)
        self.steps_spin.setValue(recipe.steps)
        self.minutes_spin.setValue(recipe.minutes)
        if self.start_combo.currentIndex() == 0:  # a start model's network stays
            self._set_architecture(recipe.architecture)
            self.pixel_spin.setValue(recipe.pixel_size_um)
            self.batchnorm_box.setChecked(recipe.batchnorm)

    def model_config(self) -> ModelConfig:
        """The network settings from the form, or the start model's (raises
        :class:`ZFocusError` if impossible, or if the start model cannot be read)."""
        spec = self.start_spec()
        if spec is not None:
            return self._start_config(spec)
        return ModelConfig.for_architecture(
            self.architecture(),
            pixel_size_um=self.pixel_spin.value(),
            field_um=self.field_spin.value(),
            bin_um=self.bin_spin.value(),
            z_min_um=self.zmin_spin.value(),
            z_max_um=self.zmax_spin.value(),
            batchnorm=self.batchnorm_box.isChecked(),
            reference_condenser_na=(self.aperture_spin.value()
                                    if self.aperture_box.isChecked() else None),
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
            start_from=self.start_spec(),
        )


def _device_text() -> str:
    """What training will run on (the core picks CUDA when present)."""
    import torch

    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return f"CPU ({torch.get_num_threads()} threads; no CUDA GPU found)"
