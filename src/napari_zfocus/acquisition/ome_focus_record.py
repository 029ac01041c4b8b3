"""The focus record of an acquisition, kept inside the OME-TIFF files pymmcore-plus wrote.

``core.mda.run(seq, output="x.ome.tif")`` (pymmcore-plus 0.18.1, ome-writers backend) keeps
only delta-t, exposure and stage position per plane; the autofocus's per-frame metadata is
dropped. After the run, :func:`write_focus_record` adds it to the OME-XML as one
``MapAnnotation`` (namespace :data:`NAMESPACE`; keys ``version`` and ``frames_json``, a JSON
list of the frames' dicts), linked to the image(s) of that file, and
:func:`read_focus_record` gives the frames back.

What pymmcore-plus 0.18.1 writes for ``output="DIR/x.ome.tif"`` (checked on a UniMMCore):

* one position (or none): ONE file, ``DIR/x.ome.tif``, all planes in it;
* several positions: a FOLDER ``DIR/x/`` (the ``.ome.tif`` suffix stripped) with one file
  per position, ``x_p000.ome.tif``, ``x_p001.ome.tif``...; every file holds the full OME-XML
  of all positions ("redundant" metadata) but only its own position's planes. The frames
  of position ``p`` go into ``x_p{p:03}``. A grid plan (``g`` axis) is flattened with the
  positions by ome-writers; frames with a non-zero ``g`` index are refused there.

The OME-XML is rewritten on a copy of the file (:func:`napari_zfocus._atomic.atomic_path`),
checked (same pages, same image data offsets and sizes, the new description readable), and
only then renamed over the original: a failure leaves the original file as it was.
Rewriting copies the file once.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from napari_zfocus._atomic import atomic_path, write_errors_named
from napari_zfocus._json import jsonable
from napari_zfocus.errors import ZFocusError, describe
from napari_zfocus.validation import check_number

#: Namespace of the focus record's MapAnnotation.
NAMESPACE = "napari-zfocus/focus-record"
#: Its ID in the OME-XML (one record per file; a new record replaces the old one).
ANNOTATION_ID = "Annotation:napari-zfocus:focus-record"
#: Version of the record's layout (the ``version`` key).
RECORD_VERSION = "1"
_TIFF_SUFFIX = re.compile(r"(\.ome)?\.tiff?$", re.IGNORECASE)


def write_focus_record(output: str | Path, frames: Sequence[Mapping[str, Any]]) -> list[Path]:
    """Add the focus record of ``frames`` to the OME-TIFF file(s) written at ``output``.

    Parameters
    ----------
    output
        What was given to ``core.mda.run(..., output=...)``: the ``.ome.tif`` file of a
        single-position run, or (for several positions) that name, whose folder holds one
        file per position; the folder itself or one file is accepted too.
    frames
        One dict per acquired frame: ``{"index": {"t": 0, "p": 0, "z": 1, ...}, "zfocus":
        {...}}``. ``index`` holds non-negative integers; ``zfocus`` any JSON-able values
        (numpy numbers and arrays become plain JSON; NaN and infinities become null).

    Returns
    -------
    list of Path
        The files updated (those that received frames), in position order.

    Raises
    ------
    ZFocusError
        One line naming the path: nothing written at ``output``, not an OME-TIFF, a frame
        of a position without a file, a malformed frame, or a failed write.
    """
    records = [_checked_frame(frame, k) for k, frame in enumerate(frames)]
    single, by_position = _files_of(output)
    if single is not None:  # one file holds every position's frames
        if records:
            _write_record(single, records, None)
        return [single] if records else []
    groups: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        index = record["index"]
        if index.get("g", 0):
            raise ZFocusError(describe(output, "frames with a grid index 'g' cannot be "
                                       "matched to the per-position files"))
        p = index.get("p", 0)
        if p not in by_position:
            raise ZFocusError(describe(output, f"no file for position p={p} "
                                       f"(files for p={sorted(by_position)})"))
        groups.setdefault(p, []).append(record)
    for p in sorted(groups):
        _write_record(by_position[p], groups[p], p)
    return [by_position[p] for p in sorted(groups)]


def read_focus_record(path: str | Path) -> list[dict[str, Any]]:
    """The frames' dicts stored in the OME-TIFF file ``path`` ([] when it has no record).

    Raises
    ------
    ZFocusError
        ``path`` is missing, not an OME-TIFF, or its record is damaged.
    """
    path = Path(path)
    if not path.is_file():
        raise ZFocusError(describe(path, "no such OME-TIFF file"))
    model = _parse(path, _ome_xml(path))
    for annotation in _records_in(model):
        values = {m.k: m.value for m in annotation.value.ms}
        try:
            frames = json.loads(values["frames_json"])
        except (KeyError, TypeError, ValueError):
            raise ZFocusError(describe(path, "the focus record is damaged (no valid "
                                       "frames_json)")) from None
        if not isinstance(frames, list):
            raise ZFocusError(describe(path, "the focus record is damaged (not a list)"))
        return frames
    return []


# -- files -------------------------------------------------------------------------------


def _files_of(output: str | Path) -> tuple[Path | None, dict[int, Path]]:
    """``(file, {})`` when ``output`` is one file, else ``(None, {p: file of position p})``."""
    path = Path(output)
    if path.is_file():
        return path, {}
    folder = path if path.is_dir() else path.with_name(_TIFF_SUFFIX.sub("", path.name))
    stem = _TIFF_SUFFIX.sub("", folder.name)
    pattern = re.compile(rf"{re.escape(stem)}_p(\d+)(\.ome)?\.tiff?", re.IGNORECASE)
    found: dict[int, Path] = {}
    if folder.is_dir():
        for child in sorted(folder.iterdir()):
            match = pattern.fullmatch(child.name)
            if match and child.is_file():
                found[int(match.group(1))] = child
    if not found:
        raise ZFocusError(describe(output, f"no OME-TIFF written there (neither a file nor "
                                   f"a folder {folder} of {stem}_pNNN.ome.tif files)"))
    return None, found


def _ome_xml(path: Path) -> str:
    """The OME-XML of ``path``'s first page; ZFocusError when it is no OME-TIFF."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            xml = tif.ome_metadata if tif.is_ome else None
    except (tifffile.TiffFileError, OSError, ValueError) as exc:
        raise ZFocusError(describe(path, f"not a readable TIFF file ({exc})")) from None
    if not xml:
        raise ZFocusError(describe(path, "not an OME-TIFF (no OME-XML in its first page)"))
    return xml


def _page_layout(path: Path) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Data offsets and byte counts of every page (unchanged by a new description)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return [(tuple(p.dataoffsets), tuple(p.databytecounts)) for p in tif.pages]


# -- the OME-XML -------------------------------------------------------------------------


def _ome_types() -> Any:
    try:
        import ome_types
    except ImportError as exc:  # pragma: no cover - installed with pymmcore-plus
        raise ZFocusError(
            "ome-types is not installed: pip install 'napari-zfocus[micromanager]'"
        ) from exc
    return ome_types


def _parse(path: Path, xml: str) -> Any:
    try:
        return _ome_types().from_xml(xml)
    except ZFocusError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser error: the file's XML is bad
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ZFocusError(describe(path, f"its OME-XML cannot be parsed ({first})")) from None


def _records_in(model: Any) -> list[Any]:
    annotations = model.structured_annotations
    if annotations is None:
        return []
    return [a for a in annotations.map_annotations if a.namespace == NAMESPACE]


def _with_record(model: Any, frames: list[dict[str, Any]], image: int | None) -> Any:
    """``model`` with its focus record replaced by ``frames``, linked to its image(s).

    ``image`` is the index of the file's own image (its position), None for all images.
    """
    from ome_types import model as ome

    if model.structured_annotations is None:
        model.structured_annotations = ome.StructuredAnnotations()
    annotations = model.structured_annotations
    annotations.map_annotations = [
        a for a in annotations.map_annotations if a.namespace != NAMESPACE
    ]
    text = json.dumps(frames, allow_nan=False, separators=(",", ":"))
    value = ome.Map(ms=[ome.Map.M(k="version", value=RECORD_VERSION),
                        ome.Map.M(k="frames_json", value=text)])
    annotations.map_annotations.append(
        ome.MapAnnotation(id=ANNOTATION_ID, namespace=NAMESPACE, value=value)
    )
    images = model.images if image is None else model.images[image : image + 1]
    for img in images:
        img.annotation_refs = [r for r in img.annotation_refs if r.id != ANNOTATION_ID]
        img.annotation_refs.append(ome.AnnotationRef(id=ANNOTATION_ID))
    return model


def _write_record(path: Path, frames: list[dict[str, Any]], image: int | None) -> None:
    """Rewrite ``path``'s OME-XML with the record, on a checked copy renamed over it."""
    import tifffile

    model = _with_record(_parse(path, _ome_xml(path)), frames, image)
    xml = model.to_xml().encode("utf-8")  # OME-XML is UTF-8 (units such as "µm")
    layout = _page_layout(path)
    with write_errors_named(path, "focus record", tifffile.TiffFileError, ValueError), \
            atomic_path(path) as tmp:
        shutil.copyfile(path, tmp)
        tifffile.tiffcomment(tmp, comment=xml)
        if not _rewritten_as_expected(tmp, layout, xml):
            raise ZFocusError(describe(path, "the rewritten copy did not check out (image "
                                       "data moved or OME-XML unreadable); file unchanged"))


def _rewritten_as_expected(
    copy: Path, layout: list[tuple[tuple[int, ...], tuple[int, ...]]], xml: bytes
) -> bool:
    """Same pages and image data places as the original, and exactly the new OME-XML."""
    import tifffile

    try:
        with tifffile.TiffFile(copy) as tif:
            description = tif.pages[0].tags[270].value
        if isinstance(description, bytes):
            description = description.decode("utf-8")
        # tifffile drops the trailing newline of a description it reads.
        same_xml = description.rstrip() == xml.decode("utf-8").rstrip()
        return same_xml and _page_layout(copy) == layout
    except (tifffile.TiffFileError, OSError, ValueError, KeyError, IndexError):
        return False


# -- frames ------------------------------------------------------------------------------


def _checked_frame(frame: Any, k: int) -> dict[str, Any]:
    """``frame`` as plain JSON data, or a ZFocusError naming ``frames[k]``."""
    name = f"frames[{k}]"
    if not isinstance(frame, Mapping) or not isinstance(frame.get("index"), Mapping):
        raise ZFocusError(f"{name} must be a dict with an 'index' dict, got {frame!r:.80}")
    index = {
        str(axis): int(check_number(value, f"{name} index {axis!r}", lo=0, integer=True))
        for axis, value in frame["index"].items()
    }
    record = jsonable({**dict(frame), "index": index})
    try:
        json.dumps(record, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ZFocusError(f"{name} is not JSON-able ({exc})") from None
    return dict(record)


__all__ = ["NAMESPACE", "read_focus_record", "write_focus_record"]
