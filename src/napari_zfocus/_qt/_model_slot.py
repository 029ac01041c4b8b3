"""A dock's model: loaded in its workers, the newest request wins, a failed load keeps the old one.

The live and the acquisition docks hold one model each (:class:`ModelSlot`). A model file
loads in a worker of the dock (:meth:`~napari_zfocus._qt._dock.ZFocusDock.start_worker`);
only the newest request counts: a later :meth:`ModelSlot.load` or :meth:`ModelSlot.set`
replaces one still loading, whose result is then ignored. A file that cannot be loaded is
reported (naming it) and the model label shows the old model again. When the newest
request has settled (loaded, failed, or replaced by :meth:`ModelSlot.set`) the dock runs
what waited for the model (start live view, install the autofocus, run the demo).
A dock that owns a slot exposes it under its public names through :class:`ModelSlotOwner`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from napari_zfocus.errors import ZFocusError

if TYPE_CHECKING:
    from qtpy.QtWidgets import QLabel

    from napari_zfocus._qt._dock import ZFocusDock

__all__ = ["ModelSlot", "ModelSlotOwner"]


class ModelSlot:
    """The model a dock uses, and the one loading for it.

    Parameters
    ----------
    dock
        The dock whose workers load model files (results arrive only while it is open).
    label
        The dock's label naming the model (or the file loading).
    changed
        Called after a new model is in use (the dock rebuilds what used the old one).
    settled
        Called when the newest request has settled: after the load's worker finished
        (loaded or failed) and after :meth:`set`. The dock then runs what waited for it.
    failed
        Called with a one-line message naming the file when the newest load fails.
    pixel_size
        True: the label adds the model's pixel size (``config.pixel_size_um``) to its text.
    """

    def __init__(
        self,
        dock: ZFocusDock,
        label: QLabel,
        *,
        changed: Callable[[], None],
        settled: Callable[[], None],
        failed: Callable[[str], None],
        pixel_size: bool = False,
    ) -> None:
        self.dock = dock
        self.label = label
        self.predictor: Any = None
        self.worker: Any = None  # the newest load, None when none is running
        self.text = "no model loaded"  # the label's text for the model in use
        self._changed = changed
        self._settled = settled
        self._failed = failed
        self._pixel_size = pixel_size

    @property
    def loading(self) -> bool:
        """True while the newest model request loads in a worker."""
        return self.worker is not None

    def load(self, job: Callable[..., tuple[Any, str]], *args: Any, name: str, what: str) -> Any:
        """Load a model with ``job(*args)`` in a worker of the dock; returns the worker.

        Parameters
        ----------
        job
            Returns ``(predictor, description)``; runs in the worker (plain data only).
        args
            Its arguments.
        name
            What the label shows while it loads (``"<name>: loading..."``).
        what
            What a failure message names (the file).
        """
        self.label.setText(f"{name}: loading\u2026")
        request = self.worker = self.dock.start_worker(
            job, *args,
            returned=lambda result: self._on_loaded(request, *result),
            errored=lambda exc: self._on_failed(request, what, exc),
            finished=lambda: self._on_finished(request),
        )
        return request

    def set(self, predictor: Any, description: str = "") -> None:
        """Use ``predictor`` now (described by ``description``, default its type's name).

        Replaces a model still loading (its result is then ignored).
        """
        self.worker = None
        self._use(predictor, description)
        self._settled()

    def _use(self, predictor: Any, description: str) -> None:
        self.predictor = predictor
        text = description or type(predictor).__name__
        if self._pixel_size:
            px = getattr(getattr(predictor, "config", None), "pixel_size_um", None)
            text += f" ({px:g} um/px)" if px else ""
        self.text = text
        self.label.setText(text)
        self._changed()

    def _on_loaded(self, request: Any, predictor: Any, description: str) -> None:
        if request is self.worker:  # else a newer load (or set) replaced it
            self._use(predictor, description)

    def _on_failed(self, request: Any, what: str, exc: BaseException) -> None:
        if request is not self.worker:
            return
        self.label.setText(self.text)
        if isinstance(exc, ZFocusError):
            self._failed(str(exc))
        else:
            self._failed(f"{what}: cannot load the model ({type(exc).__name__}: {exc})")

    def _on_finished(self, request: Any) -> None:
        if request is not self.worker:
            return  # a newer load is running, or set() replaced this one
        self.worker = None
        self._settled()


class ModelSlotOwner:
    """Mixin of a dock keeping its model in ``self.model_slot``: its public names for it."""

    model_slot: ModelSlot

    @property
    def predictor(self) -> Any:
        """The model in use (None until one has loaded or been set)."""
        return self.model_slot.predictor

    @property
    def model_worker(self) -> Any:
        """The worker loading the newest model file (None when none loads)."""
        return self.model_slot.worker

    @property
    def model_loading(self) -> bool:
        """True while a model file is being loaded in a worker."""
        return self.model_slot.loading
