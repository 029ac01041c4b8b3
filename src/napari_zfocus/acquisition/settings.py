"""Settings of the acquisition autofocus and the record of each refocus (plain data).

Kept apart from the engine so the command line, the napari dock and the readers of the
focus log can use them without pymmcore-plus.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from napari_zfocus.acquisition.scan_focus import ScanSettings
from napari_zfocus.errors import ZFocusError
from napari_zfocus.live.controller_settings import (
    MAX_DISTANCE_UM,
    MAX_POSITION_UM,
    ControllerSettings,
)
from napari_zfocus.validation import check_choice, check_interval, check_number

#: How each refocus is done: the CNN on one frame, a z-scan (the OughtaFocus-like
#: baseline), or nothing (the engine only records).
METHODS = ("zfocus", "scan", "none")
#: What to do when a refocus finds no usable estimate.
POLICIES = ("hold", "skip", "scan")

# Decisions of a refocus (stable strings: the focus log, the dock and scripts key on them).
LOCKED = "locked"  # first visit of a position: its target was stored
CORRECTED = "corrected"  # the focus moved to the estimate
IN_FOCUS = "in_focus"  # the estimate was within the dead band: no move
SCANNED = "scanned"  # a z-scan found the focus (method "scan" or policy "scan")
HELD = "held"  # no usable estimate: the last good correction was kept (policy "hold")
SKIPPED = "skipped"  # no usable estimate: this position is skipped at this time point
NOT_FOCUSED = "not_focused"  # method "none"
DECISIONS = (LOCKED, CORRECTED, IN_FOCUS, SCANNED, HELD, SKIPPED, NOT_FOCUSED)


@dataclass
class AutofocusSettings:
    """How the acquisition autofocus refocuses (distances in um).

    Attributes
    ----------
    focus_group, focus_preset
        Config group and preset of the focus channel (e.g. ``"Channel"`` / ``"BF"``), set
        for the focus frame and switched back afterwards; None: the current channel.
    focus_exposure_ms
        Exposure of the focus frame; None: the current exposure.
    method
        ``"zfocus"`` (one CNN frame), ``"scan"`` (z-scan baseline) or ``"none"``.
    policy
        When a refocus finds no usable estimate: ``"hold"`` the last good correction and
        acquire, ``"skip"`` the position at this time point, or ``"scan"`` locally.
    refocus_without_plan
        Refocus whenever the position or the time point changes, also for a sequence
        without an autofocus plan (napari-micromanager's MDA widget greys out its
        autofocus box without a hardware autofocus device).
    max_step_um, max_travel_um, z_limits_um, dead_band_um, min_confidence, hold_on_bimodal
        The live controller's safety rules, per correction (see
        :class:`~napari_zfocus.live.controller_settings.ControllerSettings`); the travel
        window is centred on each position's z at its first visit.
    confirm_above_um
        A second frame after a correction larger than this, or after an uncertain one.
    confirm_confidence
        A correction made with a confidence below this is confirmed by another frame.
    max_focus_frames
        Most frames one refocus may take (the first visit's lock takes ``lock_frames``).
    probe_um
        After a frame held because it looks unlike the model's world at the z it reads
        (out of distribution) or the model is unsure, the next frame is taken this far
        away (up, or down at the upper limit; at most ``max_step_um``), where the image
        differs; when that frame is held too, the stage walks back. 0: retry at the same
        z. Images of the model's own world are flagged now and then (a few percent): at the
        same z the same field looks the same and stays flagged, so the position went
        uncorrected.
    lock_frames
        Frames whose median estimate a position's first visit locks.
    position_offsets_um
        Per position index: image this far above the locked focus (an offset from the lock).
    scan_range_um, scan_step_um
        Range and coarse step of the z-scan (method or policy ``"scan"``).
    inference_threads
        Torch CPU threads while a refocus reads its frame (None: leave torch's setting).
        One image at a time between an acquisition's other work runs fastest on one
        thread: on 2 cores beside other work, a refocus added 15 ms with 1 thread and
        104 ms with 2 (``benchmarks/bench_acquire.py``).
    """

    focus_group: str | None = None
    focus_preset: str | None = None
    focus_exposure_ms: float | None = None
    method: str = "zfocus"
    policy: str = "hold"
    refocus_without_plan: bool = True
    max_step_um: float = 5.0
    max_travel_um: float | None = 60.0
    z_limits_um: tuple[float, float] | None = None
    dead_band_um: float = 0.2
    min_confidence: float = 0.3
    hold_on_bimodal: bool = True
    confirm_above_um: float = 2.0
    confirm_confidence: float = 0.5
    max_focus_frames: int = 3
    probe_um: float = 2.0
    lock_frames: int = 3
    position_offsets_um: dict[int, float] = field(default_factory=dict)
    scan_range_um: float = 10.0
    scan_step_um: float = 2.0
    inference_threads: int | None = 1

    def validate(self) -> None:
        """Raise :class:`~napari_zfocus.errors.ZFocusError` naming an impossible setting."""
        check_choice(self.method, "autofocus method", METHODS)
        check_choice(self.policy, "failure policy", POLICIES)
        if (self.focus_group is None) != (self.focus_preset is None):
            raise ZFocusError("focus channel: give both the config group and the preset, "
                              f"got {self.focus_group!r} / {self.focus_preset!r}")
        if self.focus_exposure_ms is not None:
            check_number(self.focus_exposure_ms, "focus exposure (ms)", lo=0, lo_open=True,
                         hi=60_000)
        check_number(self.confirm_above_um, "confirm above (um)", lo=0, hi=MAX_DISTANCE_UM)
        check_number(self.confirm_confidence, "confirm confidence", lo=0, hi=1)
        check_number(self.max_focus_frames, "max focus frames", lo=1, hi=50, integer=True)
        check_number(self.probe_um, "probe distance (um)", lo=0, hi=MAX_DISTANCE_UM)
        for index, offset in self.position_offsets_um.items():
            check_number(index, "position offset index", lo=0, integer=True)
            check_number(offset, f"offset of position {index} (um)", lo=-MAX_DISTANCE_UM,
                         hi=MAX_DISTANCE_UM)
        check_number(self.scan_range_um, "scan range (um)", lo=0, lo_open=True, hi=200)
        check_number(self.scan_step_um, "scan step (um)", lo=0, lo_open=True,
                     hi=self.scan_range_um)
        if self.inference_threads is not None:
            check_number(self.inference_threads, "inference threads", lo=1, hi=256,
                         integer=True)
        self.scan_settings().validate()  # the frame budget must hold the coarse scan
        if self.z_limits_um is not None:
            check_interval(self.z_limits_um, "z limits (um)", lo=-MAX_POSITION_UM,
                           hi=MAX_POSITION_UM)
        self.controller_settings().validate()

    def scan_settings(self) -> ScanSettings:
        """The z-scan's settings (method or policy ``"scan"``)."""
        return ScanSettings(range_um=self.scan_range_um, coarse_step_um=self.scan_step_um)

    def controller_settings(self) -> ControllerSettings:
        """The live controller's settings for one position's corrections."""
        return ControllerSettings(
            dead_band_um=self.dead_band_um,
            gain=1.0,
            smoothing=0.0,  # one frame per visit: nothing to smooth over
            max_step_um=self.max_step_um,
            z_limits_um=self.z_limits_um,
            max_travel_um=self.max_travel_um,
            min_confidence=self.min_confidence,
            hold_on_bimodal=self.hold_on_bimodal,
            # Failures are the policy's business, per refocus: the controller never stops.
            max_failures=1_000_000,
            lock_frames=self.lock_frames,
            max_log=10_000,
        )


@dataclass
class FocusRecord:
    """One refocus: what the focus frame(s) said, what moved, and why.

    Distances in um; NaN where a value does not exist (no estimate, no simulation).
    """

    index: int  # refocus number in this acquisition
    p: int | None  # position index (None: no position axis)
    t: int | None  # time point index
    position: str  # position name, or "p<index>"
    time_s: float  # seconds since the acquisition started (the microscope's clock)
    decision: str  # one of DECISIONS
    reason: str  # why (the controller's reason, or the failure's)
    stage_z_um: float  # focus position when the refocus started
    estimate_um: float  # the model's last estimate (sample z - focal plane)
    confidence: float
    feed_forward_um: float  # where the focus frame was taken, from the last focus: the
    #                          plate's drift measured on other positions at this time point
    correction_um: float  # focus moved by this refocus (sum of its moves)
    focus_z_um: float  # the position's in-focus z after this refocus
    offset_um: float  # focus_z - the position's planned z (carried to its later events)
    focus_frames: int  # frames taken only to focus
    max_move_um: float  # largest single focus move of this refocus
    duration_ms: float  # wall time of the refocus
    camera_ms: float  # of which: spent in the camera (exposure, readout, simulated rendering)
    settle_ms: float  # of which: waiting for the focus drive to settle
    message: str = ""
    true_error_um: float = math.nan  # simulation only: focus z minus the true focus after it

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (for CSV, JSON and frame metadata)."""
        return asdict(self)


FOCUS_RECORD_COLUMNS = tuple(f.name for f in fields(FocusRecord))

__all__ = [
    "CORRECTED",
    "DECISIONS",
    "FOCUS_RECORD_COLUMNS",
    "HELD",
    "IN_FOCUS",
    "LOCKED",
    "METHODS",
    "NOT_FOCUSED",
    "POLICIES",
    "SCANNED",
    "SKIPPED",
    "AutofocusSettings",
    "FocusRecord",
]
