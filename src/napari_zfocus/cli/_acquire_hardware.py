"""``zfocus acquire --mm-config CFG --sequence SEQ.yaml --output OUT.ome.tif``: on hardware.

Kept apart from :mod:`napari_zfocus.cli.acquire` (the command's flags and the simulation)
because it is the part that touches a user's microscope and files: every input is
checked before the first event, the previous MDA engine comes back however the run ends,
and the output is never an existing file.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari_zfocus._json import to_json_line
from napari_zfocus.errors import ZFocusError


def read_sequence(path: str) -> Any:
    """The ``useq.MDASequence`` in a YAML or JSON file; one line naming the file if not."""
    import useq

    file = Path(path)
    if not file.is_file():
        raise ZFocusError(f"--sequence {file}: file not found")
    if file.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise ZFocusError(f"--sequence {file}: expected a .yaml, .yml or .json useq sequence")
    try:
        return useq.MDASequence.from_file(file)
    except Exception as exc:  # noqa: BLE001 - pydantic, YAML and JSON errors alike
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ZFocusError(f"--sequence {file}: not a valid useq MDASequence ({first})") from None


def check_output(path: str | None) -> Path:
    """The output must be new: pymmcore-plus writes a file (or a folder of files, one
    per position) there, and nothing the user has is replaced."""
    from napari_zfocus.outputs import check_writable_folder, refuse_folder_syntax

    if not path:
        raise ZFocusError("--output: give where to write the images (OUT.ome.tif)")
    refuse_folder_syntax(path, "--output", "file")
    out = Path(path)
    name = out.name.lower()
    if not name.endswith((".ome.tif", ".ome.tiff")):
        # The focus record goes into the OME-XML; OME-Zarr output gets it only in the
        # frame metadata so far (use the Python API), so the command asks for OME-TIFF.
        raise ZFocusError(f"--output {out}: expected a name ending in .ome.tif or .ome.tiff")
    if out.exists() or out.is_symlink():
        raise ZFocusError(f"--output {out}: exists; refusing to replace it, choose a new name")
    check_writable_folder(out.parent, "--output", out, out.name)
    return out


def parse_preset(text: str | None) -> tuple[str | None, str | None]:
    """``GROUP/PRESET`` as (group, preset); (None, None) when not given."""
    if text is None:
        return None, None
    group, sep, preset = text.partition("/")
    if not sep or not group.strip() or not preset.strip():
        raise ZFocusError(f"--focus-preset {text!r}: expected GROUP/PRESET, e.g. Channel/BF")
    return group.strip(), preset.strip()


def check_preset(core: Any, group: str | None, preset: str | None) -> None:
    """The focus preset must exist on the loaded configuration."""
    if group is None or preset is None:
        return
    if not core.isGroupDefined(group):
        groups = ", ".join(core.getAvailableConfigGroups()) or "none"
        raise ZFocusError(f"--focus-preset: no config group {group!r} (groups: {groups})")
    if not core.isConfigDefined(group, preset):
        presets = ", ".join(core.getAvailableConfigs(group)) or "none"
        raise ZFocusError(f"--focus-preset: group {group!r} has no preset {preset!r} "
                          f"(presets: {presets})")


def run_hardware(
    args: argparse.Namespace,
    *,
    settings_for: Callable[[argparse.Namespace, str | None, str | None], Any],
    predictor_for: Callable[[argparse.Namespace, float], Any],
    write_csv: Callable[[str, list[Any]], None],
) -> int:
    """Run the sequence with the autofocus installed, then add the focus record."""
    from napari_zfocus.acquisition.autofocus import AcquisitionAutofocus
    from napari_zfocus.acquisition.engine import check_sequence
    from napari_zfocus.acquisition.ome_focus_record import write_focus_record
    from napari_zfocus.live.mmcore import load_mmcore

    cfg = Path(args.mm_config)
    if not cfg.is_file():
        raise ZFocusError(f"--mm-config {cfg}: Micro-Manager configuration not found")
    if args.sequence is None:
        raise ZFocusError("--sequence: give the useq sequence to run (SEQ.yaml)")
    sequence = read_sequence(args.sequence)
    if args.autofocus != "none":
        check_sequence(sequence)
    out = check_output(args.output)
    group, preset = parse_preset(args.focus_preset)
    settings = settings_for(args, group, preset)
    core = load_mmcore(cfg)
    check_preset(core, group, preset)
    predictor = predictor_for(args, float(core.getPixelSizeUm()))
    af = AcquisitionAutofocus(core, predictor, settings)
    af.refocused.connect(_print_refocus)
    t0 = time.perf_counter()
    frames = []
    core.mda.events.frameReady.connect(lambda *_: frames.append(1))
    interrupted = False
    try:
        with af as autofocus:
            engine = autofocus.engine
            try:
                core.mda.run(sequence, output=str(out))
            except KeyboardInterrupt:  # Ctrl-C ends a hardware run; keep what was taken
                interrupted = True
    finally:
        if args.csv:
            write_csv(args.csv, af.records)
    files = write_focus_record(out, engine.frame_records) if engine.frame_records else []
    summary = _summary(af.records, len(frames), engine.skipped_frames, out, files,
                       time.perf_counter() - t0, interrupted)
    if args.json:
        print(to_json_line(summary), flush=True)
    return 130 if interrupted else 0


def _print_refocus(record: Any) -> None:
    print(f"refocus {record.position} t{record.t}: {record.decision} ({record.reason or '-'}), "
          f"estimate {record.estimate_um:+.2f} um, correction {record.correction_um:+.2f} um, "
          f"{record.focus_frames} frame(s)", file=sys.stderr, flush=True)


def _summary(records: list[Any], frames: int, skipped: int, out: Path, files: list[Path],
             wall_s: float, interrupted: bool) -> dict[str, Any]:
    from napari_zfocus.acquisition.focus_log import refocus_counts

    return {
        "output": str(out),
        "files": [str(f) for f in files],
        "frames": frames,
        **refocus_counts(records),
        "skipped": skipped,
        "wall_s": wall_s,
        "interrupted": interrupted,
    }


__all__ = ["check_output", "parse_preset", "read_sequence", "run_hardware"]
