"""Install the acquisition autofocus on a pymmcore-plus core, and remove it again.

:class:`AcquisitionAutofocus` is the one object the command line and the napari dock hold:
it registers a :class:`~napari_zfocus.acquisition.engine.ZFocusEngine` on a core (a real
``CMMCorePlus``, napari-micromanager's, or a ``UniMMCore`` with Python devices), remembers
the engine that was there, and puts that engine back on :meth:`~AcquisitionAutofocus.remove`.
It emits every refocus as a psygnal signal, from the acquisition thread (a dock connects
with ``thread="main"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from psygnal import Signal

from napari_zfocus.acquisition.settings import AutofocusSettings, FocusRecord
from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.controller_settings import PredictorLike

if TYPE_CHECKING:
    from napari_zfocus.acquisition.engine import ZFocusEngine


class AcquisitionAutofocus:
    """The one-frame autofocus for a core's MDA acquisitions.

    Parameters
    ----------
    core
        A ``CMMCorePlus`` (or ``UniMMCore``).
    predictor
        The z-position model; None only for ``method="scan"`` or ``"none"``.
    settings
        Autofocus settings (validated on install).
    true_focus_um, clock
        Simulation hooks passed to the engine (see
        :class:`~napari_zfocus.acquisition.engine.ZFocusEngine`).

    Examples
    --------
    >>> af = AcquisitionAutofocus(core, Predictor.from_file("model.zfm"),
    ...                           AutofocusSettings(focus_group="Channel", focus_preset="BF"))
    >>> with af:                      # installed; the previous engine comes back after
    ...     core.mda.run(sequence)
    """

    refocused = Signal(object)  # FocusRecord, from the acquisition thread
    installed_changed = Signal(bool)

    def __init__(
        self,
        core: Any,
        predictor: PredictorLike | None,
        settings: AutofocusSettings | None = None,
        *,
        true_focus_um: Callable[[int | None], float] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.core = core
        self.predictor = predictor
        self.settings = settings or AutofocusSettings()
        self.true_focus_um = true_focus_um
        self.clock = clock
        self.engine: ZFocusEngine | None = None
        self._previous: Any = None
        self._removed_records: list[FocusRecord] = []

    @property
    def installed(self) -> bool:
        """True while this autofocus's engine is the core's MDA engine."""
        return self.engine is not None and self.core.mda.engine is self.engine

    @property
    def records(self) -> list[FocusRecord]:
        """Refocuses of the current (or last) acquisition."""
        engine = self.engine
        if engine is None or engine.refocuser is None:
            return list(self._removed_records)
        return list(engine.refocuser.records)

    def install(self) -> ZFocusEngine:
        """Register the autofocus engine on the core (idempotent).

        Raises
        ------
        ZFocusError
            An acquisition is running, or the settings are impossible.
        """
        from napari_zfocus.acquisition.engine import ZFocusEngine

        if self.installed:
            assert self.engine is not None
            return self.engine
        if self.core.mda.is_running():
            raise ZFocusError("autofocus: cannot install while an acquisition is running")
        self.settings.validate()
        if self.predictor is None and self.settings.method == "zfocus":
            raise ZFocusError("autofocus: method 'zfocus' needs a model")
        engine = ZFocusEngine(
            self.core, self.predictor, self.settings, on_refocus=self.refocused.emit,
            true_focus_um=self.true_focus_um, clock=self.clock,
        )
        self._previous = self.core.mda.engine
        self.core.register_mda_engine(engine)
        self.engine = engine
        self.installed_changed.emit(True)
        return engine

    def remove(self) -> None:
        """Put the previous engine back (idempotent; refused during an acquisition).

        When another engine replaced ours in the meantime, that one is left in place.
        """
        if self.engine is None:
            return
        if self.core.mda.is_running():
            raise ZFocusError("autofocus: cannot remove while an acquisition is running")
        self._removed_records = self.records
        if self.core.mda.engine is self.engine and self._previous is not None:
            self.core.register_mda_engine(self._previous)
        self._previous = None
        self.engine = None
        self.installed_changed.emit(False)

    def __enter__(self) -> AcquisitionAutofocus:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


__all__ = ["AcquisitionAutofocus"]
