"""Merge annotated datasets into one, without copying a stack.

The merged ``annotations.csv`` points at the original stacks with paths relative to the
new folder (``../other/stack_000.tif``), so ``zfocus train MERGED`` trains on all of them
and still splits train/validation by stack. Run::

    python docs/scripts/merge_datasets.py OUT DATASET [DATASET ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from napari_zfocus.data import read_dataset
from napari_zfocus.data.annotations import write_annotations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder of the merged annotations.csv")
    parser.add_argument("datasets", type=Path, nargs="+", help="dataset folders to merge")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    merged = []
    for folder in args.datasets:
        dataset = read_dataset(folder, check_stacks=False)
        for a in dataset.annotations:
            rel = os.path.relpath(dataset.stack_path(a).resolve(), args.out.resolve())
            merged.append(dataclasses.replace(a, stack=Path(rel).as_posix()))
    path = write_annotations(args.out, merged)
    print(f"wrote {path}: {len(merged)} stacks from {len(args.datasets)} datasets")


if __name__ == "__main__":
    main()
