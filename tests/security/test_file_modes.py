"""Everything facewatch writes about people is private: 0600 files in 0700 folders.

The daemon test runs `facewatch run` with every writer on (snapshots of recognised faces, the
gallery's cache and index, the MQTT outbox, the JSON-lines log, Prometheus' multiprocess files)
under a permissive umask (022), then walks the state folder, both while it runs and after it
stopped, and checks the mode of every entry.  The CLI test does the same for the gallery state
folder `facewatch gallery build` keeps beside the YAML.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import (
    DaemonProcess,
    ZmqEvents,
    camera_state,
    of_type,
    wait_until,
    write_yaml,
)
from tests.support.mosquitto import Mosquitto, free_port, mosquitto_available

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """umask 022, as a login shell has it: a file created without an explicit mode is 0644."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def modes(root: Path) -> dict[str, int]:
    """Mode bits of `root` and everything under it (symlinks are not followed)."""
    found = {".": stat.S_IMODE(root.lstat().st_mode)}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            try:
                found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
            except FileNotFoundError:
                pass  # removed while walking (a snapshot pruned, a -journal file)
    return found


def not_private(root: Path) -> list[str]:
    wrong = []
    for name, mode in modes(root).items():
        path = root / name
        expected = 0o700 if path.is_dir() and not path.is_symlink() else 0o600
        if path.is_socket():
            continue  # checked through its folder: a 0700 folder keeps others out
        if mode != expected:
            wrong.append(f"{name}: {mode:04o}, expected {expected:04o}")
    return wrong


def test_everything_the_daemon_writes_is_private(tmp_path: Path, models_dir: Path, shared_dir: Path,
                                                 examples: Path, loose_umask: None) -> None:
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    clip = shared_dir / "data" / "videos" / "short_hamilton_clip.mp4"
    write_yaml(tmp_path / "gallery.yaml", {"threshold": 0.25, "people": [
        {"id": "lin", "name": "Lin-Manuel Miranda", "images": [str(examples / "lin-manuel-miranda.png")]},
        {"id": "obama", "name": "Barack Obama", "images": [str(examples / "obama.jpg")]}]})
    zmq_port, metrics_port = free_port(), free_port()
    state = tmp_path / "state"
    with Mosquitto(tmp_path / "mosquitto") as broker:
        broker.start()
        config = write_yaml(tmp_path / "config.yaml", {
            "cameras": [{"name": "stage", "url": str(clip), "fps": 10, "realtime": False}],
            "gallery": "gallery.yaml", "state_dir": "state",
            "outputs": {"zmq": {"bind": f"tcp://127.0.0.1:{zmq_port}"},
                        "mqtt": {"host": broker.host, "port": broker.port},
                        # inside the state folder, in a folder the publisher has to create
                        "jsonl": "state/log/events.jsonl"},
            "metrics": {"enabled": True, "port": metrics_port}})
        events = ZmqEvents(f"tcp://127.0.0.1:{zmq_port}")
        try:
            with DaemonProcess(config, models_dir, tmp_path) as daemon:
                events.follow(daemon)
                daemon.start()
                events.wait_for(of_type("face.recognized"), 120, "a recognition (with a snapshot)")
                events.wait_for(camera_state("offline", "stage"), 120, "the end of the clip")
                wait_until(lambda: any((state / "snapshots").rglob("*.jpg")), 30, "a snapshot",
                           daemon.log_tail, daemon.gone)
                running = modes(state)
                wrong_running = not_private(state)
                daemon.terminate()
                assert daemon.wait(15) == 0, daemon.log_tail()
        finally:
            events.close()
    names = set(running)
    # every kind of file the daemon writes was there to be checked
    assert any(n.startswith("snapshots/stage/") and n.endswith(".jpg") for n in names), names
    assert any(n.startswith("gallery/index-") for n in names) and "gallery/analysis.sqlite" in names
    assert "log/events.jsonl" in names
    assert any(n.startswith("outbox") for n in names), names
    assert any(n.startswith("run/metrics-") and n.endswith(".db") for n in names), names
    assert wrong_running == [], wrong_running
    assert not_private(state) == [], not_private(state)


def test_the_cli_gallery_state_folder_is_private(tmp_path: Path, examples: Path, models_dir: Path,
                                                 loose_umask: None) -> None:
    gallery = tmp_path / "people.yaml"
    write_yaml(gallery, {"people": [{"id": "obama", "images": [str(examples / "obama.jpg")]},
                                    {"id": "biden", "images": [str(examples / "biden.jpg")]}]})
    # the cache is the daemon's, in the default state folder (here the test's own)
    env = {**os.environ, "FACEWATCH_MODELS": str(models_dir),
           "XDG_STATE_HOME": str(tmp_path / "xdg"), "FACEWATCH_CONFIG": str(tmp_path / "none.yaml")}
    env.pop("STATE_DIRECTORY", None)
    result = subprocess.run(
        [sys.executable, "-m", "facewatch", "gallery", "build", str(gallery), "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["people.yaml", "xdg"]
    state = tmp_path / "xdg" / "facewatch" / "gallery"
    names = set(modes(state))
    assert "analysis.sqlite" in names and any(n.startswith("index-") for n in names), names
    assert not_private(state) == []


def test_an_open_cli_state_dir_is_made_private(tmp_path: Path, examples: Path,
                                               models_dir: Path, loose_umask: None) -> None:
    """A state folder that exists with 0755 (an older version, a copy, mkdir by hand) is
    tightened, and so is a cache file in it."""
    gallery = tmp_path / "people.yaml"
    write_yaml(gallery, {"people": [{"id": "obama", "images": [str(examples / "obama.jpg")]}]})
    state = tmp_path / "state"
    cache = state / "gallery"  # --state-dir names the daemon's state folder; its cache is here
    cache.mkdir(parents=True, mode=0o755)
    cache.chmod(0o755)
    result = subprocess.run(
        [sys.executable, "-m", "facewatch", "gallery", "build", str(gallery), "--state-dir",
         str(state)], cwd=REPO, env={**os.environ, "FACEWATCH_MODELS": str(models_dir)},
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert "analysis.sqlite" in set(modes(cache))
    assert not_private(cache) == []
