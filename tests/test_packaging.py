"""The wheel: only `facewatch` at the top of site-packages, with every module and data file.

`pip wheel` builds in the source tree (it leaves build/ and *.egg-info there), so the
project's files are copied to tmp_path and the wheel is built from the copy.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# folder in the repository → where it lands in the wheel
PACKAGE_DIRS = {"daemon": "facewatch", "engines": "facewatch/engines",
                "calibration": "facewatch/calibration", "config": "facewatch/config"}
_IGNORE = shutil.ignore_patterns(".git", "tests", "build", "dist", "*.egg-info", "__pycache__",
                                 ".*_cache", "*.pyc")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, zipfile.ZipFile, str]]:
    src = tmp_path_factory.mktemp("src") / "facewatch"
    shutil.copytree(ROOT, src, ignore=_IGNORE)
    # data files of the kinds package-data must carry, whatever config/ holds today
    (src / "config" / "zz_packaging_probe.yaml").write_text("probe: true\n")
    (src / "config" / "zz_packaging_probe.json").write_text("{}\n")
    dist = tmp_path_factory.mktemp("dist")
    # -v: setuptools' warnings are only shown in pip's verbose output
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps",
                           "--disable-pip-version-check", "-v", "-w", str(dist)],
                          check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [wheel_file] = list(dist.glob("facewatch-*.whl"))
    archive = zipfile.ZipFile(wheel_file)
    yield src, archive, proc.stdout + proc.stderr
    archive.close()


@pytest.fixture(scope="module")
def wheel(built: tuple[Path, zipfile.ZipFile, str]) -> tuple[Path, zipfile.ZipFile]:
    return built[0], built[1]


def test_the_build_has_no_deprecation_warnings(built: tuple[Path, zipfile.ZipFile, str]) -> None:
    """setuptools warned ~30 times per install about `project.license` as a table."""
    assert "DeprecationWarning" not in built[2], built[2][-3000:]


def test_only_facewatch_at_the_top(wheel: tuple[Path, zipfile.ZipFile]) -> None:
    names = wheel[1].namelist()
    top = {name.split("/", 1)[0] for name in names}
    dist_info = [t for t in top if t.endswith(".dist-info")]
    assert len(dist_info) == 1 and dist_info[0].startswith("facewatch-")
    assert top == {"facewatch", dist_info[0]}


def test_every_module_and_data_file_is_in_the_wheel(wheel: tuple[Path, zipfile.ZipFile]) -> None:
    src, archive = wheel
    names = set(archive.namelist())
    expected = set()
    for folder, target in PACKAGE_DIRS.items():
        for path in (src / folder).rglob("*"):
            # .html, .js, .css: the review page (facewatch/api/static)
            if path.suffix in (".py", ".yaml", ".json", ".html", ".js", ".css") and path.is_file():
                expected.add(f"{target}/{path.relative_to(src / folder).as_posix()}")
    assert {"facewatch/engines/__init__.py", "facewatch/calibration/__init__.py",
            "facewatch/config/__init__.py", "facewatch/config/zz_packaging_probe.yaml",
            "facewatch/config/zz_packaging_probe.json", "facewatch/api/static/index.html",
            "facewatch/api/static/app.js"} <= expected
    missing = sorted(expected - names)
    assert not missing, f"not packaged (add the package to pyproject's `packages`): {missing}"


def test_console_script(wheel: tuple[Path, zipfile.ZipFile]) -> None:
    archive = wheel[1]
    [entry_points] = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = archive.read(entry_points).decode()
    assert "[console_scripts]" in text and "facewatch = facewatch.cli.main:main" in text
