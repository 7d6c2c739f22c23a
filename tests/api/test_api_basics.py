"""The API's process, auth and errors: in process through its ASGI app, and for real in a
running daemon."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from facewatch.api.app import ApiContext, create_app
from facewatch.api.live import LiveEvents
from facewatch.config import load_resolved
from facewatch.events import CameraStatus
from tests.support.daemon import DaemonProcess, wait_until, write_yaml
from tests.support.mosquitto import free_port

TOKEN = "correct-horse-battery-staple-42"


def config_file(tmp_path: Path, **api: Any) -> Path:
    (tmp_path / "token").write_text(TOKEN + "\n")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "cameras": [{"name": "door", "url": str(tmp_path / "door.mp4")}],
        "gallery": "gallery.yaml", "state_dir": "state", "api": api}))
    return path


def client(config: Path) -> TestClient:
    live = LiveEvents(queue.Queue())
    live.add(CameraStatus(camera="door", ts=1.0, state="online", reason="online"))
    return TestClient(create_app(ApiContext(load_resolved(config), live)))


def test_without_a_token_on_loopback_every_request_is_served(tmp_path: Path) -> None:
    health = client(config_file(tmp_path)).get("/api/health")
    assert health.status_code == 200
    body = health.json()
    assert [c["name"] for c in body["cameras"]] == ["door"]
    assert body["cameras"][0]["state"] == "online"


def test_with_a_token_requests_need_it(tmp_path: Path) -> None:
    api = client(config_file(tmp_path, token_file="token"))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        answer = api.get("/api/health", headers=headers)
        assert answer.status_code == 401
        assert set(answer.json()) == {"error"} and "\n" not in answer.json()["error"]
    assert api.get("/api/health", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    # what a browser fetches by URL (an image, the event stream) carries it in the query
    assert api.get(f"/api/health?token={TOKEN}").status_code == 200


def test_off_loopback_without_a_token_the_daemon_does_not_start(tmp_path: Path) -> None:
    path = config_file(tmp_path, bind="0.0.0.0")
    check = subprocess.run([sys.executable, "-m", "facewatch", "config", "check", str(path)],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 3
    line = check.stderr.strip()
    assert "\n" not in line and "api.bind" in line and "token" in line, line
    run = subprocess.run([sys.executable, "-m", "facewatch", "run", "--config", str(path)],
                         capture_output=True, text=True, check=False, timeout=60)
    assert run.returncode == 3 and "api.bind" in run.stderr


def test_a_short_token_is_refused(tmp_path: Path) -> None:
    path = config_file(tmp_path, token_file="token")
    (tmp_path / "token").write_text("short\n")
    check = subprocess.run([sys.executable, "-m", "facewatch", "config", "check", str(path)],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 3 and "shorter than 16" in check.stderr


def _get(url: str, token: str | None = None) -> Any:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def test_the_daemon_serves_the_api_as_a_supervised_process(tmp_path: Path, models_dir: Path,
                                                           shared_dir: Path,
                                                           examples: Path) -> None:
    port = free_port()
    (tmp_path / "token").write_text(TOKEN)
    write_yaml(tmp_path / "gallery.yaml", {"people": [
        {"id": "obama", "name": "Barack Obama", "images": [str(examples / "obama.jpg")]}]})
    tree = shared_dir / "data" / "videos" / "opencv_tree_noface.avi"
    config = write_yaml(tmp_path / "config.yaml", {
        "cameras": [{"name": "tree", "url": str(tree), "fps": 5, "loop": True}],
        "gallery": "gallery.yaml", "state_dir": "state",
        "outputs": {"zmq": False, "jsonl": "events.jsonl"}, "metrics": {"enabled": False},
        "api": {"port": port, "token_file": "token"}})
    url = f"http://127.0.0.1:{port}/api/health"
    with DaemonProcess(config, models_dir, tmp_path) as daemon:
        daemon.start()

        def online() -> bool:
            try:
                body = _get(url, TOKEN)
            except (OSError, urllib.error.URLError):
                return False
            return bool(body["cameras"] and body["cameras"][0]["state"] == "online")

        wait_until(online, 90, "the camera online in /api/health", daemon.log_tail, daemon.gone)
        body = _get(url, TOKEN)
        roles = {p["role"] for p in body["processes"]}
        assert {"api", "inference", "publisher", "source:tree"} <= roles, body["processes"]
        assert body["gallery"]["people"] == 1
        with pytest.raises(urllib.error.HTTPError) as refused:
            _get(url)
        assert refused.value.code == 401
        refused.value.close()  # it holds the response's socket
        # killed, it is restarted like any other child
        api_pid = daemon.child("api")
        assert api_pid is not None
        import os
        import signal

        os.kill(api_pid, signal.SIGKILL)
        wait_until(lambda: daemon.child("api") not in (None, api_pid), 30, "the api restarted",
                   daemon.log_tail, daemon.gone)
        wait_until(online, 60, "the API answering again", daemon.log_tail, daemon.gone)
        daemon.terminate()
        assert daemon.wait(15) == 0, daemon.log_tail()
