"""The MDA engine that refocuses with one bright-field frame per position and time point.

:class:`ZFocusEngine` is pymmcore-plus's own ``MDAEngine`` with the autofocus added where
pymmcore-plus leaves room for it:

* ``HardwareAutofocus`` events (inserted by ``autofocus_plan=AxesBasedAF(axes=("p", "t"))``)
  and ``CustomAction(name="zfocus")`` events refocus instead of calling a hardware device;
* without any plan (``refocus_without_plan``), the first image event of each new position
  or time point refocuses first, so napari-micromanager's MDA widget works as it is;
* every z the engine sets for a position carries that position's correction (relative
  z-stacks, other channels), as the default engine does with ``fullFocus`` corrections;
* the focus channel (a config preset and exposure of the user's choice) is set for the
  focus frame only, then the previous channel and exposure are restored;
* a refocus that finds no usable estimate follows the policy: hold, skip (``SkipEvent``
  for that position's events at that time point) or scan;
* every acquired frame's metadata carries its position's focus record under ``"zfocus"``.

Install it with :class:`~napari_zfocus.acquisition.autofocus.AcquisitionAutofocus`, which
also restores the previous engine.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn

import useq
from pymmcore_plus.mda import MDAEngine, SkipEvent

from napari_zfocus.acquisition.refocus import Refocuser
from napari_zfocus.acquisition.settings import SKIPPED, AutofocusSettings, FocusRecord
from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.controller_settings import MAX_POSITION_UM, STAGE_ERROR, PredictorLike
from napari_zfocus.live.mmcore import MMCoreMicroscope

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus

logger = logging.getLogger("napari_zfocus.acquisition")

#: The CustomAction name that asks this engine for a refocus.
ACTION_NAME = "zfocus"

Key = tuple[int | None, int | None]


def is_autofocus_event(event: useq.MDAEvent) -> bool:
    """True for an event that asks for a refocus (hardware autofocus or ours)."""
    action = event.action
    if isinstance(action, useq.HardwareAutofocus):
        return True
    return isinstance(action, useq.CustomAction) and action.name == ACTION_NAME


def check_sequence(sequence: useq.MDASequence) -> None:
    """Refuse what a per-position focus correction cannot serve: absolute z-plans.

    An absolute z plan names stage positions; a correction for drift would move them, so
    the plan would not be what the user asked for (useq refuses it with an autofocus plan
    too). Raises :class:`ZFocusError` with one line.
    """
    plans = [("sequence", sequence.z_plan)]
    for i, pos in enumerate(sequence.stage_positions):
        if pos.sequence is not None:
            plans.append((f"position {pos.name or i}", pos.sequence.z_plan))
    for where, plan in plans:
        if plan is not None and not plan.is_relative:
            raise ZFocusError(
                f"{where}: an absolute z plan ({type(plan).__name__}) cannot follow the focus; "
                "use a relative one (range, or above/below) around each position's z"
            )


class ZFocusEngine(MDAEngine):
    """pymmcore-plus MDA engine with the one-frame CNN autofocus (see the module docs).

    Parameters
    ----------
    mmc
        The core it drives.
    predictor
        The z-position model (None for the scan baseline or ``method="none"``).
    settings
        Autofocus settings.
    on_refocus
        Called with each :class:`FocusRecord` (from the acquisition thread).
    true_focus_um, clock
        Simulation hooks: the true focus of a position (to score refocuses) and the
        acquisition clock (default: seconds since the sequence started).
    """

    def __init__(
        self,
        mmc: CMMCorePlus,
        predictor: PredictorLike | None,
        settings: AutofocusSettings,
        *,
        on_refocus: Callable[[FocusRecord], None] | None = None,
        true_focus_um: Callable[[int | None], float] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        # Sequenced (hardware-triggered) events would run z-stacks without the per-event
        # correction; refocus events must interleave with image events anyway.
        super().__init__(mmc, use_hardware_sequencing=False)
        settings.validate()
        self.predictor = predictor
        self.settings = settings
        self.on_refocus = on_refocus
        self.true_focus_um = true_focus_um
        self._clock = clock
        self._t0 = time.perf_counter()
        self.refocuser: Refocuser | None = None
        self.frame_records: list[dict[str, Any]] = []  # per acquired frame: index + zfocus
        self.skipped_frames = 0
        self._has_plan = False
        self._sequence: useq.MDASequence | None = None
        self._refocused: set[Key] = set()
        self._skip: dict[Key, str] = {}
        self._approach_failed: dict[Key, str] = {}

    # -- sequence ------------------------------------------------------------------

    def setup_sequence(self, sequence: useq.MDASequence) -> Any:
        """Check the sequence, start a fresh focus state, then the default setup."""
        if self.settings.method != "none":
            check_sequence(sequence)
        self._sequence = sequence
        self._has_plan = sequence.autofocus_plan is not None
        self._refocused.clear()
        self._skip.clear()
        self._approach_failed.clear()
        self.frame_records = []
        self.skipped_frames = 0
        self._t0 = time.perf_counter()
        core = self.mmcore
        limits = self.settings.z_limits_um or (-MAX_POSITION_UM, MAX_POSITION_UM)
        microscope = MMCoreMicroscope(core, z_limits_um=limits)
        self.refocuser = Refocuser(
            self.predictor, microscope, self.settings, true_focus_um=self.true_focus_um
        )
        return super().setup_sequence(sequence)

    # -- events --------------------------------------------------------------------

    def setup_event(self, event: useq.MDAEvent) -> None:
        """Refocus where needed, skip what the policy skips, then the default setup."""
        key = _key(event)
        if is_autofocus_event(event):
            self._go_to_position(event)
            return
        if self._refocus_due(key):  # never for a key already skipped: it was refocused
            self._go_to_position(event)
            self._refocus(event)
        if key in self._skip:
            self.skipped_frames += 1
            raise SkipEvent(reason=self._skip[key])
        super().setup_event(event)

    def exec_event(self, event: useq.MDAEvent) -> Iterable[Any]:
        """Refocus for an autofocus event; acquire (default engine) otherwise."""
        if is_autofocus_event(event):
            if self.settings.method != "none" and _key(event) not in self._refocused:
                self._refocus(event)
            return ()
        return super().exec_event(event)

    def _refocus_due(self, key: Key) -> bool:
        return (
            self.settings.method != "none"
            and self.settings.refocus_without_plan
            and not self._has_plan
            and key not in self._refocused
        )

    def setup_single_event(self, event: useq.MDAEvent) -> None:
        """The default setup; an event without a z goes to its position's focus."""
        super().setup_single_event(event)
        if event.z_pos is None and self.refocuser is not None:
            p = event.index.get("p")
            focus = self.refocuser.focus_z_um(p)
            if focus is not None:
                try:
                    self._move_z(focus + self.refocuser.user_offset_um(p), event)
                except _StageMoveError as exc:
                    self._skip_event(event, str(exc))

    def get_frame_metadata(self, event: useq.MDAEvent, *args: Any, **kwargs: Any) -> Any:
        """The default frame metadata plus the position's focus record (``"zfocus"``)."""
        meta = super().get_frame_metadata(event, *args, **kwargs)
        record = self._last_record(event.index.get("p"))
        if record is not None:
            focus = _frame_focus(record)
            meta["zfocus"] = focus  # type: ignore[typeddict-unknown-key]
            self.frame_records.append({"index": dict(event.index), "zfocus": focus})
        return meta

    # -- helpers -------------------------------------------------------------------

    def _planned_z(self, event: useq.MDAEvent) -> float | None:
        """The position's own z in the plan (None when the plan gives none)."""
        if is_autofocus_event(event):
            return event.z_pos
        seq, p = self._sequence, event.index.get("p")
        if seq is not None and p is not None and p < len(seq.stage_positions):
            z = seq.stage_positions[p].z
            if z is not None:
                return float(z)
        if seq is not None and seq.z_plan is None:
            return event.z_pos
        return None

    def _go_to_position(self, event: useq.MDAEvent) -> None:
        """XY of the event, then the z where its position should be in focus now. A drive
        that fails here leaves the refocus nothing to work with: it is recorded as failed."""
        self._set_event_xy_position(event)
        assert self.refocuser is not None  # made by setup_sequence
        p, t = _key(event)
        z = self.refocuser.approach_z_um(p, t, self._planned_z(event))
        try:
            if z is not None:  # the focus frame at the focus itself, not at the user's offset
                self._move_z(z, event)
            self.mmcore.waitForSystem()
        except _StageMoveError as exc:
            self._approach_failed[(p, t)] = str(exc)

    def _move_z(self, z_um: float, event: useq.MDAEvent) -> None:
        """A planned move (not a correction): finite and inside the limits, else skipped;
        raises :class:`_StageMoveError` when the drive refuses or fails."""
        lo, hi = self.settings.z_limits_um or (-MAX_POSITION_UM, MAX_POSITION_UM)
        if not (math.isfinite(z_um) and lo <= z_um <= hi):
            self._skip_event(event, f"z {z_um!r} um is outside the focus limits "
                                    f"[{lo:g}, {hi:g}] um")
        try:
            self.mmcore.setZPosition(z_um)
        except Exception as exc:
            raise _StageMoveError(f"focus move to {z_um:.3f} um failed: {exc}") from exc

    def _set_event_z(self, event: useq.MDAEvent) -> None:
        """The planned z plus the position's correction (replaces the default's
        hardware-autofocus correction); a frame whose z cannot be set is skipped."""
        assert event.z_pos is not None  # the default engine calls this only then
        offset = self.refocuser.offset_um(event.index.get("p")) if self.refocuser else 0.0
        try:
            self._move_z(event.z_pos + offset, event)
        except _StageMoveError as exc:
            self._skip_event(event, str(exc))

    def _skip_event(self, event: useq.MDAEvent, reason: str) -> NoReturn:
        logger.warning("skipped %s: %s", dict(event.index), reason)
        if is_autofocus_event(event):  # not an image: nothing to skip in the output
            raise SkipEvent(num_frames=0, reason=reason)
        self.skipped_frames += 1
        raise SkipEvent(reason=reason)

    def _refocus(self, event: useq.MDAEvent) -> FocusRecord:
        """Switch to the focus channel, refocus, switch back; policy and bookkeeping."""
        assert self.refocuser is not None  # made by setup_sequence
        t0 = time.perf_counter()
        key = _key(event)
        failed = self._approach_failed.pop(key, None)
        planned, name, now = self._planned_z(event), event.pos_name or "", self._now()
        if failed is not None:  # the focus drive failed on the way: nothing to refocus with
            record = self.refocuser.failed(key[0], key[1], STAGE_ERROR, failed,
                                           planned_z_um=planned, name=name, time_s=now)
        else:
            with _focus_channel(self.mmcore, self.settings):
                record = self.refocuser.refocus(key[0], key[1], planned_z_um=planned,
                                                name=name, time_s=now)
        record.duration_ms = (time.perf_counter() - t0) * 1000  # with the channel switches
        self._refocused.add(key)
        if record.decision == SKIPPED:
            self._skip[key] = f"autofocus: {record.reason or 'no usable estimate'}"
        logger.info("refocus p=%s t=%s: %s %s", key[0], key[1], record.decision, record.reason)
        if self.on_refocus is not None:
            self.on_refocus(record)
        return record

    def _last_record(self, p: int | None) -> FocusRecord | None:
        if self.refocuser is None:
            return None
        for record in reversed(self.refocuser.records):
            if record.p == p:
                return record
        return None

    def _now(self) -> float:
        return self._clock() if self._clock is not None else time.perf_counter() - self._t0


class _StageMoveError(Exception):
    """A planned focus move failed (the engine records it and goes on)."""


def _key(event: useq.MDAEvent) -> Key:
    return event.index.get("p"), event.index.get("t")


def _frame_focus(record: FocusRecord) -> dict[str, Any]:
    """The focus values every frame of a position carries (plain JSON-able numbers)."""
    return {
        "refocus": record.index,
        "decision": record.decision,
        "reason": record.reason,
        "estimate_um": record.estimate_um,
        "confidence": record.confidence,
        "correction_um": record.correction_um,
        "focus_z_um": record.focus_z_um,
        "offset_um": record.offset_um,
        "focus_frames": record.focus_frames,
    }


class _focus_channel:  # noqa: N801 - used as a context manager, like contextlib's
    """Set the focus preset and exposure; restore the previous ones afterwards."""

    def __init__(self, core: CMMCorePlus, settings: AutofocusSettings) -> None:
        self.core = core
        self.settings = settings
        self._config: str | None = None
        self._state: list[tuple[str, str, str]] = []
        self._exposure: float | None = None

    def __enter__(self) -> None:
        s, core = self.settings, self.core
        if s.focus_group is not None and s.focus_preset is not None:
            self._config = core.getCurrentConfig(s.focus_group)
            if not self._config:  # no preset matches now: restore the properties instead
                self._state = [tuple(map(str, item)) for item in  # type: ignore[misc]
                               core.getConfigGroupState(s.focus_group)]
            core.setConfig(s.focus_group, s.focus_preset)
            core.waitForConfig(s.focus_group, s.focus_preset)
        if s.focus_exposure_ms is not None:
            self._exposure = core.getExposure()
            core.setExposure(s.focus_exposure_ms)

    def __exit__(self, *exc: object) -> None:
        s, core = self.settings, self.core
        if self._exposure is not None:
            core.setExposure(self._exposure)
        if s.focus_group is not None:
            if self._config:
                core.setConfig(s.focus_group, self._config)
            else:
                for device, prop, value in self._state:
                    core.setProperty(device, prop, value)
                core._last_config = ("", "")  # the engine must set the next channel again
            core.waitForSystem()


__all__ = ["ACTION_NAME", "ZFocusEngine", "check_sequence", "is_autofocus_event"]
