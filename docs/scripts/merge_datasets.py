"""Merge annotated datasets into one, without copying a stack's bytes.

Dataset paths must stay inside the dataset folder (a CSV cannot make the program read files
elsewhere), so each stack is hard-linked into the merged folder as ``<dataset>_<stack>``
(copied where a hard link is impossible, e.g. across file systems). ``zfocus train MERGED``
then trains on all of them and still splits train/validation by stack. Run::

    python docs/scripts/merge_datasets.py OUT DATASET [DATASET ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
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
            source = dataset.stack_path(a)
            name = f"{folder.name}_{Path(a.stack).as_posix().replace('/', '_')}"
            target = args.out / name
            if not target.exists():
                try:
                    os.link(source, target)
                except OSError:
                    shutil.copy2(source, target)
            merged.append(dataclasses.replace(a, stack=name))
    path = write_annotations(args.out, merged)
    print(f"wrote {path}: {len(merged)} stacks from {len(args.datasets)} datasets")


if __name__ == "__main__":
    main()
