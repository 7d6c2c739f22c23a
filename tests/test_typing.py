"""mypy --strict over the whole `facewatch` package (the style guide's rule: no package exempt).

mypy cannot follow setuptools' editable mapping of daemon/, engines/, calibration/ and config/
into one namespace, so the test lays the package out with symlinks, as the wheel does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_strict_is_clean(tmp_path: Path) -> None:
    if shutil.which("mypy", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("mypy is not installed (pip install -e '.[test]')")
    package = tmp_path / "facewatch"
    package.mkdir()
    for item in (ROOT / "daemon").iterdir():
        if item.name != "__pycache__":
            (package / item.name).symlink_to(item)
    for sub in ("engines", "calibration", "config"):
        (package / sub).symlink_to(ROOT / sub)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "cache"), "-p", "facewatch"],
        cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
