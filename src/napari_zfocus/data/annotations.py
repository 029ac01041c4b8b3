"""The dataset interchange format: a folder of stacks plus ``annotations.csv``.

``annotations.csv`` has the columns ``stack,focus_index,z_step_um,pixel_size_um``:
``stack`` is a path relative to the folder (absolute paths, ``..`` escapes and symlinks
leading out of the folder are refused), ``focus_index`` the 0-based in-focus slice, and
the z-step and pixel size lie within :data:`napari_zfocus.bounds.Z_STEP_UM` and
:data:`~napari_zfocus.bounds.PIXEL_SIZE_UM`. Other columns are allowed and kept, in their
order, when the file is written back.

Reading validates every row and reports all problems at once (by line number), because
fixing a 400-row spreadsheet one error per run is miserable.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, TypeVar

from napari_zfocus._atomic import atomic_open
from napari_zfocus.bounds import check_pixel_size_um, check_z_step
from napari_zfocus.errors import DatasetError, StackError, ZFocusError, describe
from napari_zfocus.validation import check_number, inside_folder

from .stack import ZStack, read_stack

#: Required columns of ``annotations.csv``, in the order they are written.
ANNOTATION_COLUMNS: tuple[str, ...] = ("stack", "focus_index", "z_step_um", "pixel_size_um")

#: File name of the annotation table inside a dataset folder.
ANNOTATIONS_FILE = "annotations.csv"

T = TypeVar("T")


@dataclass
class Annotation:
    """One annotated stack: where it is, its in-focus slice and its sampling."""

    stack: str
    focus_index: int
    z_step_um: float
    pixel_size_um: float
    extra: dict[str, str] = field(default_factory=dict)

    def z_um(self, index: int) -> float:
        """Defocus of slice ``index`` in um (positive: sample above the focal plane)."""
        return (index - self.focus_index) * self.z_step_um


@dataclass
class Dataset:
    """A folder of z-stacks with their annotations."""

    root: Path
    annotations: list[Annotation]
    #: Column order of the CSV it was read from (required + extra), used when writing.
    columns: list[str] = field(default_factory=lambda: list(ANNOTATION_COLUMNS))

    @property
    def csv_path(self) -> Path:
        """Path of ``annotations.csv``."""
        return self.root / ANNOTATIONS_FILE

    def stack_path(self, a: Annotation) -> Path:
        """Path of the stack of annotation ``a`` (under the folder, checked again here).

        Raises
        ------
        DatasetError
            The path leads out of the dataset folder (absolute, ``..``, a symlink out).
        """
        return dataset_stack_path(self.root, a.stack)

    def open_stack(self, a: Annotation) -> ZStack:
        """Open the stack of ``a`` lazily, with the annotation's z-step and pixel size."""
        return read_stack(self.stack_path(a), z_step_um=a.z_step_um, pixel_size_um=a.pixel_size_um)

    def __len__(self) -> int:
        return len(self.annotations)

    def __iter__(self) -> Iterator[Annotation]:
        return iter(self.annotations)


def read_dataset(
    folder: str | os.PathLike[str], *, check_stacks: bool = True, min_stacks: int = 1
) -> Dataset:
    """Read and validate ``folder/annotations.csv``.

    Parameters
    ----------
    folder
        The dataset folder.
    check_stacks
        Also open every stack's header: the file exists, is a readable (Z, Y, X) stack
        (not truncated) and ``focus_index`` is within it. Pixel data are not read.
    min_stacks
        Fewest annotated stacks accepted: training and evaluation on a header-only file
        would report metrics over nothing. 0 for the annotation tool, which starts empty.

    Raises
    ------
    DatasetError
        One-line summary; ``.problems`` lists every bad row as
        ``"annotations.csv line N: ..."``.
    """
    root = Path(folder)
    csv_path = root / ANNOTATIONS_FILE
    reader, columns = _open_csv(root, csv_path)
    annotations, problems = _read_rows(reader, columns, root, check_stacks)
    _refuse_problems(csv_path, annotations, problems, min_stacks)
    return Dataset(root=root, annotations=annotations, columns=columns)


def _open_csv(root: Path, csv_path: Path) -> tuple[Any, list[str]]:
    """A CSV reader positioned after the checked header, and the header's columns."""
    if not root.is_dir():
        raise DatasetError(describe(root, "not a dataset folder (no such folder)"))
    if not csv_path.is_file():
        # A folder or a FIFO of that name exists: "not found" would send the user looking.
        what = ("not found" if not os.path.lexists(csv_path)
                else "is a folder, not a file" if csv_path.is_dir()
                else "is a named pipe (FIFO), not a file" if csv_path.is_fifo()
                else "is a broken link" if not csv_path.exists()
                else "is not a regular file")
        raise DatasetError(describe(csv_path, f"{what}; a dataset folder needs annotations.csv"))
    try:
        text = csv_path.read_text(encoding="utf-8-sig")  # Excel adds a byte-order mark
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(describe(csv_path, f"cannot read ({exc})")) from exc

    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise DatasetError(describe(csv_path, f"malformed header ({exc})")) from exc
    columns = [c.strip() for c in header or []]
    _check_header(csv_path, columns)
    return reader, columns


def _read_rows(
    reader: Any, columns: list[str], root: Path, check_stacks: bool
) -> tuple[list[Annotation], list[str]]:
    """The good annotations, and one ``"annotations.csv line N: ..."`` per problem."""
    problems: list[str] = []
    annotations: list[Annotation] = []
    seen: dict[str, int] = {}
    seen_files: dict[Path, tuple[str, int]] = {}  # resolved stack -> (name, line)
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(f"{ANNOTATIONS_FILE} line {reader.line_num}: malformed CSV ({exc})")
            break  # the csv module cannot resynchronise after a broken quote
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue  # blank lines are harmless
        row_problems: list[str] = []
        annotation = _parse_row(row, columns, row_problems)
        if annotation is not None:
            key = os.path.normpath(annotation.stack)
            if key in seen:
                row_problems.append(
                    f"duplicate stack {annotation.stack!r} (first on line {seen[key]})"
                )
                annotation = None
            else:
                seen[key] = line
        if annotation is not None and check_stacks:
            resolved = _check_stack(root, annotation, row_problems)
            if resolved is not None and resolved in seen_files:
                # Two names for one file (a symlink alias): two focus indices for one stack.
                first, first_line = seen_files[resolved]
                row_problems.append(
                    f"duplicate stack: {annotation.stack!r} is the same file as {first!r} "
                    f"(line {first_line})"
                )
            elif resolved is not None:
                seen_files[resolved] = (annotation.stack, line)
        problems.extend(f"{ANNOTATIONS_FILE} line {line}: {p}" for p in row_problems)
        if annotation is not None and not row_problems:
            annotations.append(annotation)
    return annotations, problems


def _refuse_problems(
    csv_path: Path, annotations: list[Annotation], problems: list[str], min_stacks: int
) -> None:
    """Raise one :class:`DatasetError` summing up the problems (or too few rows)."""
    if not problems and len(annotations) < min_stacks:
        raise DatasetError(
            describe(
                csv_path,
                f"has {len(annotations)} annotated stack(s), at least {min_stacks} needed "
                "(a header without rows annotates nothing)",
            ),
            [f"{ANNOTATIONS_FILE}: no rows"],
        )
    if problems:
        bad_lines = {p.split(":", 1)[0] for p in problems}
        first = problems[0].split(" ", 1)[1]
        raise DatasetError(
            describe(
                csv_path,
                f"{len(bad_lines)} bad row(s), {len(problems)} problem(s); first: {first}",
            ),
            problems,
        )


def write_annotations(
    folder: str | os.PathLike[str],
    annotations: Dataset | Sequence[Annotation],
    *,
    columns: Sequence[str] | None = None,
) -> Path:
    """Write ``folder/annotations.csv`` atomically and return its path.

    Column order: ``columns`` if given, else the order of the :class:`Dataset` passed,
    else the required columns followed by the extra columns in first-seen order. Extra
    columns an annotation lacks are written empty.

    Raises
    ------
    DatasetError
        An annotation is invalid (empty stack path, negative index, bad sizes); nothing
        is written then.
    """
    root = Path(folder)
    csv_path = root / ANNOTATIONS_FILE
    if isinstance(annotations, Dataset):
        columns = columns or annotations.columns
        annotations = annotations.annotations
    order = _column_order(annotations, columns)
    problems = [
        f"annotation {i} ({a.stack!r}): {p}"
        for i, a in enumerate(annotations)
        for p in _annotation_problems(a)
    ]
    if problems:
        raise DatasetError(describe(csv_path, f"refusing to write: {problems[0]}"), problems)
    with atomic_open(csv_path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(order)
        for a in annotations:  # rows stream into the temporary file; a failure keeps the old one
            values = {
                "stack": PurePosixPath(Path(a.stack).as_posix()).as_posix(),
                "focus_index": str(int(a.focus_index)),
                "z_step_um": repr(float(a.z_step_um)),
                "pixel_size_um": repr(float(a.pixel_size_um)),
            }
            writer.writerow([values[c] if c in values else str(a.extra.get(c, "")) for c in order])
    return csv_path


# --- helpers -------------------------------------------------------------------------


def _check_header(csv_path: Path, columns: list[str]) -> None:
    if not columns or all(not c for c in columns):
        raise DatasetError(
            describe(csv_path, f"empty file; expected a header {','.join(ANNOTATION_COLUMNS)}"),
            [f"{ANNOTATIONS_FILE} line 1: missing header"],
        )
    missing = [c for c in ANNOTATION_COLUMNS if c not in columns]
    if missing:
        message = f"missing column(s) {', '.join(missing)} (header: {','.join(columns)})"
        raise DatasetError(describe(csv_path, message), [f"{ANNOTATIONS_FILE} line 1: {message}"])
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        message = f"duplicate column(s) {', '.join(duplicated)}"
        raise DatasetError(describe(csv_path, message), [f"{ANNOTATIONS_FILE} line 1: {message}"])


def _parse_row(row: list[str], columns: list[str], problems: list[str]) -> Annotation | None:
    if len(row) != len(columns):
        problems.append(f"expected {len(columns)} fields, got {len(row)}")
        return None
    cells = dict(zip(columns, row, strict=True))
    stack = cells["stack"].strip()
    problems.extend(_stack_name_problems(stack))
    focus = _checked(check_number, cells["focus_index"].strip(), "focus_index", problems,
                     integer=True, lo=0)
    z_step = _checked(check_z_step, cells["z_step_um"].strip(), "z_step_um", problems)
    pixel = _checked(check_pixel_size_um, cells["pixel_size_um"].strip(), "pixel_size_um",
                     problems)
    if problems or focus is None or z_step is None or pixel is None:
        return None
    extra = {c: v for c, v in cells.items() if c not in ANNOTATION_COLUMNS}
    return Annotation(stack, int(focus), z_step, pixel, extra)


def _checked(
    check: Callable[..., T], value: Any, name: str, problems: list[str], **kwargs: Any
) -> T | None:
    """Run a :mod:`napari_zfocus.validation` check; collect its message instead of raising."""
    try:
        return check(value, name, **kwargs)
    except ZFocusError as exc:
        problems.append(str(exc))
        return None


def _stack_name_problems(stack: str) -> list[str]:
    """What is wrong with a ``stack`` cell as a path (not whether the file exists)."""
    if not stack:
        return ["empty stack path"]
    posix = PurePosixPath(stack.replace("\\", "/"))
    if os.path.isabs(stack) or posix.is_absolute() or PureWindowsPath(stack).anchor:
        return [f"stack path {stack!r} must be relative to the dataset folder"]
    if ".." in posix.parts:
        return [f"stack path {stack!r} must not leave the dataset folder ('..')"]
    return []


def dataset_stack_path(root: Path, stack: str) -> Path:
    """``root / stack``, refusing a path that resolves outside ``root`` (symlinks too)."""
    try:
        inside_folder(root, stack, "stack")
    except ZFocusError as exc:
        raise DatasetError(describe(root / ANNOTATIONS_FILE, str(exc))) from None
    return root / stack


def _check_stack(root: Path, a: Annotation, problems: list[str]) -> Path | None:
    """Check the stack of ``a`` (its header only); return its resolved path if it is good."""
    try:
        resolved = inside_folder(root, a.stack, "stack")  # a symlink out of the folder
    except ZFocusError as exc:
        problems.append(str(exc))
        return None
    path = root / a.stack
    if not path.exists():
        problems.append(f"stack file not found: {a.stack}")
        return None
    try:
        # The row's sizes override the file's metadata, as when the stack is used.
        stack = read_stack(path, z_step_um=a.z_step_um, pixel_size_um=a.pixel_size_um)
    except StackError as exc:
        problems.append(str(exc))
        return None
    if a.focus_index >= stack.n_slices:
        problems.append(
            f"focus_index {a.focus_index} out of range: {a.stack} has {stack.n_slices} slices"
        )
        return None
    return resolved


def _annotation_problems(a: Annotation) -> list[str]:
    """The same checks as reading, so nothing is written that :func:`read_dataset` refuses."""
    problems = _stack_name_problems(str(a.stack).strip())
    _checked(check_number, a.focus_index, "focus_index", problems, integer=True, lo=0)
    _checked(check_z_step, a.z_step_um, "z_step_um", problems)
    _checked(check_pixel_size_um, a.pixel_size_um, "pixel_size_um", problems)
    return problems


def _column_order(annotations: Sequence[Annotation], columns: Sequence[str] | None) -> list[str]:
    order = list(columns) if columns else list(ANNOTATION_COLUMNS)
    for required in ANNOTATION_COLUMNS:
        if required not in order:
            order.append(required)
    for a in annotations:
        for key in a.extra:
            if key not in order:
                order.append(key)
    return order
