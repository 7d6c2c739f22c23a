"""Names that end up in topics, file names, shared-memory names and metric labels must be
exactly what their pattern says (issue 8): Python's `$` also matches before a trailing
newline, so `re.match("^[a-z]+$", "door\\n")` passed, and the newline reached ZeroMQ topics,
the snapshot folder, the frame ring's name and metric labels."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from facewatch.config import parse_config
from facewatch.errors import ConfigError, GalleryError
from facewatch.gallery.spec import load_gallery_spec

_SCRIPT = Path(sys.executable).with_name("facewatch")
COMMAND = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "facewatch"]


@pytest.mark.parametrize("name", ["door\n", "door\r\n", "\ndoor", "do\nor"])
def test_camera_names_with_a_newline_are_refused(tmp_path: Path, name: str) -> None:
    text = f'cameras:\n  - name: "{name.encode("unicode_escape").decode()}"\n    url: a.mp4\n' \
           f"gallery: people.yaml\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, tmp_path / "config.yaml")
    assert str(info.value).startswith(f"{tmp_path / 'config.yaml'}:2: cameras[0].name: ")


def test_config_check_refuses_it(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text('cameras:\n  - name: "door\\n"\n    url: a.mp4\ngallery: people.yaml\n')
    proc = subprocess.run([*COMMAND, "config", "check", str(config)], capture_output=True,
                          text=True, check=False, timeout=120)
    assert proc.returncode == 3, proc.stdout
    [line] = proc.stderr.splitlines()
    assert f"{config}:2: cameras[0].name: 'door\\n': use 1-64 of a-z" in line, line


def test_an_mqtt_host_with_a_newline_is_refused(tmp_path: Path) -> None:
    text = ('cameras: [{name: door, url: a.mp4}]\ngallery: people.yaml\n'
            'outputs: {mqtt: {host: "broker\\n"}}\n')
    with pytest.raises(ConfigError, match=r"outputs.mqtt.host: expected a host name"):
        parse_config(text, tmp_path / "config.yaml")


def test_folder_gallery_ids_with_a_newline_are_refused(tmp_path: Path, examples: Path) -> None:
    for name in ("ada", "bob\n"):
        (tmp_path / name).mkdir()
        shutil.copyfile(examples / "obama.jpg", tmp_path / name / "a.jpg")
    with pytest.raises(GalleryError) as info:
        load_gallery_spec(tmp_path)
    assert str(info.value).startswith(f"{tmp_path}/bob\\n: folder name is not usable")


def test_yaml_gallery_ids_with_a_newline_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"")
    gallery = tmp_path / "people.yaml"
    gallery.write_text('people:\n  - id: "ada\\n"\n    images: [a.jpg]\n')
    with pytest.raises(GalleryError, match=r"people.yaml:2: people\[0\].id: String should match"):
        load_gallery_spec(gallery)
