"""Z-stack I/O and the dataset interchange format (``annotations.csv`` + stacks)."""

from __future__ import annotations

from .annotations import (
    ANNOTATION_COLUMNS,
    Annotation,
    Dataset,
    read_dataset,
    write_annotations,
)
from .stack import ZStack, read_stack, write_stack

__all__ = [
    "ANNOTATION_COLUMNS",
    "Annotation",
    "Dataset",
    "ZStack",
    "read_dataset",
    "read_stack",
    "write_annotations",
    "write_stack",
]
