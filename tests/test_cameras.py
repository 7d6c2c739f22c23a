"""`facewatch cameras add|remove|list`, run as a user runs them: a real subprocess, the real
stream reader on the Hamilton clip and a real RTSP server, and a real daemon to reload."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import DaemonProcess, ZmqEvents, camera_state, wait_until
from tests.support.mosquitto import free_port
from tests.support.rtsp_process import RtspServerProcess

_SCRIPT = Path(sys.executable).with_name("facewatch")
COMMAND = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "facewatch"]
EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "example.yaml"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A user with no config yet: per-user folders in tmp_path, not the machine's."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("FACEWATCH_CONFIG", "STATE_DIRECTORY", "RUNTIME_DIRECTORY")}
    return {**clean, "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "XDG_STATE_HOME": str(tmp_path / "state")}


@pytest.fixture(scope="module")
def clip(shared_dir: Path) -> Path:
    return shared_dir / "data" / "videos" / "short_hamilton_clip.mp4"


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], check=False, capture_output=True, text=True, env=env,
                          timeout=120, stdin=subprocess.DEVNULL)


def run_json(args: list[str], env: dict[str, str]) -> Any:
    proc = run([*args, "--json"], env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def one_line_error(proc: subprocess.CompletedProcess[str], code: int, *names: str) -> str:
    assert proc.returncode == code, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("facewatch: error: "), proc.stderr
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def test_add_list_remove_keep_the_comments(env: dict[str, str], clip: Path, tmp_path: Path) -> None:
    config = tmp_path / "config" / "facewatch" / "config.yaml"
    added = run_json(["cameras", "add", "door", str(clip)], env)
    # no config yet: the per-user one is made from the example, and the stream was opened
    assert (added["config"], added["created"], added["camera"]) == (str(config), True, "door")
    assert added["probed"] == {"width": 640, "height": 360}
    assert added["reloaded"] is False
    text = config.read_text()
    for line in EXAMPLE.read_text().splitlines():  # every comment and line of the example
        assert line in text.splitlines() or line == "cameras:", line
    assert f"  - name: door\n    url: {clip}\n    loop: true\n" in text  # a file stands in for a camera
    os.chmod(config, 0o640)

    run_json(["cameras", "add", "tree", "--fps", "2", "--no-loop",
              str(clip.with_name("opencv_tree_noface.avi"))], env)
    assert config.stat().st_mode & 0o777 == 0o640  # an edit keeps the file's mode
    listed = run_json(["cameras", "list"], env)
    assert [(c["name"], c["fps"]) for c in listed["cameras"]] == [("door", 5.0), ("tree", 2.0)]
    assert listed["daemon_pid"] is None
    check = subprocess.run([*COMMAND, "config", "check", str(config), "--json"], env=env,
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0 and json.loads(check.stdout)["valid"], check.stderr

    text = config.read_text()
    removed = run_json(["cameras", "remove", "door"], env)
    assert removed["removed"] == "door"
    after = config.read_text()
    assert after == text.replace(f"  - name: door\n    url: {clip}\n    loop: true\n", "")
    assert [line for line in after.splitlines() if line.startswith("#")] == \
        [line for line in EXAMPLE.read_text().splitlines() if line.startswith("#")]
    one_line_error(run(["cameras", "remove", "door"], env), 2, "no camera named 'door'", "tree")


def test_add_refuses_what_cannot_work_and_changes_nothing(env: dict[str, str], clip: Path,
                                                          tmp_path: Path) -> None:
    config = tmp_path / "cams.yaml"
    config.write_text("# my cameras\ncameras:\n  - name: door   # the front\n"
                      f"    url: {clip}\n")
    before = config.read_bytes()
    at = ["--config", str(config)]
    # a name already there, a name the config cannot take: nothing written
    one_line_error(run(["cameras", "add", "door", str(clip), *at], env), 2, "already there")
    one_line_error(run(["cameras", "add", "Front Door", str(clip), *at], env), 3,
                   str(config), "name", "nothing was changed")
    # not a video: the probe names the file
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video\n")
    one_line_error(run(["cameras", "add", "fake", str(fake), *at, "--probe-timeout", "10"], env),
                   2, "camera fake", str(fake), "--no-probe")
    # a camera that does not answer: the URL with its password hidden
    port = free_port()
    line = one_line_error(run(["cameras", "add", "gate", f"rtsp://admin:hunter2@127.0.0.1:{port}/x",
                               *at, "--probe-timeout", "5"], env),
                          2, f"rtsp://admin:***@127.0.0.1:{port}/x")
    assert "hunter2" not in line
    assert config.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp files
    # --no-probe adds it all the same (a camera that is off now), keeping the comments
    run_json(["cameras", "add", "gate", f"rtsp://admin:hunter2@127.0.0.1:{port}/x", *at,
              "--no-probe"], env)
    text = config.read_text()
    assert text.startswith("# my cameras\ncameras:\n  - name: door   # the front\n")
    assert "name: gate" in text


def test_an_rtsp_camera_is_probed(env: dict[str, str], clip: Path, tmp_path: Path) -> None:
    config = tmp_path / "cams.yaml"
    with RtspServerProcess(clip, tmp_path) as server:
        url = server.start()
        wrong = url.replace("/door", "/nothing-here")
        one_line_error(run(["cameras", "add", "door", wrong, "--config", str(config),
                            "--probe-timeout", "10"], env), 2, wrong)
        assert not config.exists()
        with_password = url.replace("rtsp://", "rtsp://viewer:s3cret@")
        proc = run(["cameras", "add", "door", with_password, "--config", str(config)], env)
        assert proc.returncode == 0, proc.stderr
        assert "s3cret" not in proc.stdout + proc.stderr and "viewer:***@" in proc.stdout
        assert "640x360" in proc.stdout


def test_add_and_remove_reload_the_running_daemon(env: dict[str, str], clip: Path, tmp_path: Path,
                                                   models_dir: Path) -> None:
    """A daemon started with no camera (a fresh install) takes one from `cameras add` and
    lets it go on `cameras remove`, without a restart."""
    config = tmp_path / "daemon.yaml"
    zmq_port = free_port()
    config.write_text(f"cameras:\nstate_dir: {tmp_path / 'state'}\n"
                      f"outputs:\n  zmq: {{bind: 'tcp://127.0.0.1:{zmq_port}'}}\n"
                      "metrics: {enabled: false}\napi: {enabled: false}\n")
    events = ZmqEvents(f"tcp://127.0.0.1:{zmq_port}")
    with DaemonProcess(config, models_dir, tmp_path) as daemon:
        events.follow(daemon)
        daemon.start()
        wait_until(lambda: "ready:" in daemon.log_text(), 180, "the daemon ready with no camera",
                   daemon.log_tail, daemon.gone)
        at = ["--config", str(config)]
        added = run_json(["cameras", "add", "door", str(clip), *at], env)
        assert added["reloaded"] is True
        events.wait_for(camera_state("online", "door"), 60, "door online after cameras add")
        assert run_json(["cameras", "list", *at], env)["daemon_pid"] == daemon.pid
        mark = events.mark()
        assert run_json(["cameras", "remove", "door", *at], env)["reloaded"] is True
        events.wait_for(camera_state("offline", "door"), 60, "door offline after cameras remove",
                        since=mark)
        daemon.terminate()
        assert daemon.wait(20) == 0
    events.close()
    assert not (tmp_path / "state" / "facewatch.pid").exists()  # removed at the end
