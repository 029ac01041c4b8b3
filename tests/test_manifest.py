"""The npe2 manifest reaches the installed package and every contribution imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

npe2 = pytest.importorskip("npe2")


def test_manifest_found_and_valid():
    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-zfocus")
    assert manifest.name == "napari-zfocus"
    keys = {s.key for s in manifest.contributions.sample_data}
    assert {"yeast_stack", "annotated_set"} <= keys
    widgets = {w.display_name for w in manifest.contributions.widgets}
    assert "Autofocus during acquisition" in widgets
    assert len(widgets) == 5


def test_every_python_name_imports():
    # `npe2 validate --imports` also imports every python_name (without it a missing one passes).
    proc = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-zfocus", "--imports"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_top_level_manifest_is_an_identical_copy_and_no_symlinks_are_tracked():
    # The design keeps napari.yaml at the top level; npe2 reads the one in the package.
    packaged = ROOT / "src" / "napari_zfocus" / "napari.yaml"
    assert packaged.read_bytes() == (ROOT / "napari.yaml").read_bytes()
    if (ROOT / ".git").exists():
        listed = subprocess.run(["git", "ls-files", "-s"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.splitlines()
        links = [line.split("\t")[1] for line in listed if line.startswith("120000")]
        assert links == []  # symlinks break Windows checkouts


@pytest.mark.slow
def test_wheel_carries_manifest_and_sample_data_and_no_test_dependencies(tmp_path):
    import zipfile

    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("napari_zfocus-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = next(zf.read(n).decode() for n in names if n.endswith("METADATA"))
    assert "napari_zfocus/napari.yaml" in names
    assert "napari_zfocus/sample_data/yeast_stack.tif" in names
    assert "napari_zfocus/sample_data/annotated_set/annotations.csv" in names
    runtime = [line for line in metadata.splitlines()
               if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert not any(name in line for line in runtime for name in ("pytest", "hypothesis"))
