"""A `state_dir` facewatch cannot create or write (issue 8): `config check` said valid, and
`run` died with a FileNotFoundError traceback, exit 1, which systemd restarts forever.  Both
now end with one line and exit code 3, before anything is started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from facewatch.config import load_resolved
from facewatch.config.resolve import check_state_dir, unusable_folder
from facewatch.errors import ConfigError
from tests.support.daemon import run_once, write_yaml

_SCRIPT = Path(sys.executable).with_name("facewatch")
COMMAND = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "facewatch"]


def _config(tmp_path: Path, state_dir: str, examples: Path) -> Path:
    write_yaml(tmp_path / "people.yaml",
               {"people": [{"id": "obama", "images": [str(examples / "obama.jpg")]}]})
    return write_yaml(tmp_path / "config.yaml", {
        "cameras": [{"name": "door", "url": "clip.mp4"}], "gallery": "people.yaml",
        "outputs": {"zmq": {"bind": "tcp://127.0.0.1:*"}}, "metrics": {"enabled": False},
        "state_dir": state_dir})


def _one_line(proc: subprocess.CompletedProcess[str], *parts: str) -> None:
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    [line] = proc.stderr.splitlines()
    assert line.startswith("facewatch: error: ") and "Traceback" not in proc.stderr
    for part in parts:
        assert part in line, line


def test_config_check_and_run_refuse_a_state_dir_under_proc(tmp_path: Path, examples: Path,
                                                            models_dir: Path) -> None:
    config = _config(tmp_path, "/proc/x", examples)
    check = subprocess.run([*COMMAND, "config", "check", str(config)], capture_output=True,
                           text=True, check=False, timeout=120)
    expected = f"{config}:10: state_dir: /proc/x: cannot be created in /proc (No such file or directory)"
    _one_line(check, expected)
    _one_line(run_once(config, models_dir), expected)


def test_a_state_dir_that_is_a_file(tmp_path: Path, examples: Path) -> None:
    (tmp_path / "file").write_text("x")
    config = _config(tmp_path, "file/state", examples)
    with pytest.raises(ConfigError, match=f"state_dir: {tmp_path}/file/state: {tmp_path}/file is "
                                          f"not a folder"):
        check_state_dir(load_resolved(config))
    config = _config(tmp_path, "file", examples)
    with pytest.raises(ConfigError, match=f"state_dir: {tmp_path}/file: not a folder"):
        check_state_dir(load_resolved(config))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a read-only tmpfs")
def test_a_read_only_state_dir(tmp_path: Path, examples: Path) -> None:
    """Root passes every permission check; a read-only mount is what stops it."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        config = _config(tmp_path, "ro/state", examples)
        with pytest.raises(ConfigError, match="ro/state: cannot be created in .*ro "
                                              r"\(Read-only file system\)"):
            check_state_dir(load_resolved(config))
        assert unusable_folder(folder) == "cannot write in it (Read-only file system)"
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_usable_state_dir_is_left_as_it_was(tmp_path: Path, examples: Path) -> None:
    """The check writes nothing that stays: `config check` may be run as another user."""
    config = _config(tmp_path, "state/deeper", examples)
    check_state_dir(load_resolved(config))
    assert not (tmp_path / "state").exists()
    (tmp_path / "state" / "deeper").mkdir(parents=True)
    check_state_dir(load_resolved(config))
    assert list((tmp_path / "state").iterdir()) == [tmp_path / "state" / "deeper"]
    assert list((tmp_path / "state" / "deeper").iterdir()) == []
