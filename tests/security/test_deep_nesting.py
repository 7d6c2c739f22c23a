"""Deeply nested documents (issue 8): about 600 levels in 1.3 KB of YAML or JSON blew Python's
recursion limit in the parsers, a RecursionError traceback with exit 1 that systemd restarts
forever.  Each now ends as one line: a config is a config error (exit 3), a gallery or a
command-line file bad input (exit 2), a running daemon keeps its config, and `facewatch tail`
skips the message."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from facewatch.config import parse_config
from facewatch.errors import ConfigError, GalleryError
from facewatch.events import TrackStarted, from_json, to_json
from facewatch.events.codec import EventFormatError
from facewatch.yamlfile import MAX_DEPTH, parse_yaml
from tests.support.daemon import DaemonProcess, ZmqEvents, camera_state, wait_until, write_yaml
from tests.support.mosquitto import free_port

_SCRIPT = Path(sys.executable).with_name("facewatch")
COMMAND = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "facewatch"]
LEVELS = 600


def deep_flow(levels: int = LEVELS) -> str:
    return "[" * levels + "]" * levels


def deep_block(levels: int) -> str:
    """`a:` mappings nested in block style, one more indent per level."""
    return "".join(f"{'  ' * i}a:\n" for i in range(levels)) + f"{'  ' * levels}1\n"


def _one_line(proc: subprocess.CompletedProcess[str], code: int, *parts: str) -> str:
    assert proc.returncode == code, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("facewatch: error: ") and "Traceback" not in proc.stderr
    for part in parts:
        assert part in line, line
    return line


def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], check=False, capture_output=True, text=True,
                          env=env, timeout=300, stdin=subprocess.DEVNULL)


# -- the YAML reader ------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    f"cameras: {deep_flow()}\n",
    f"people: {{a: {'{a: ' * LEVELS}1{'}' * (LEVELS + 1)}}}\n",
    deep_block(LEVELS),
    deep_block(MAX_DEPTH + 1),  # parses, but deeper than any facewatch file needs
], ids=["flow-lists", "flow-maps", "block-600", "block-just-over"])
def test_deep_yaml_is_one_error_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "deep.yaml"
    for error in (ConfigError, GalleryError):
        with pytest.raises(error) as info:
            parse_yaml(text, path, error)
        assert str(info.value) == f"{path}: nested more than {MAX_DEPTH} levels deep", info.value


def test_nesting_up_to_the_limit_is_read(tmp_path: Path) -> None:
    doc = parse_yaml(deep_block(MAX_DEPTH), tmp_path / "ok.yaml")
    value: Any = doc.data
    for _ in range(MAX_DEPTH):
        value = value["a"]
    assert value == 1


# -- the CLI: config check, gallery build / add ---------------------------------------------------

def test_config_check_exits_3(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"cameras: {deep_flow()}\ngallery: people.yaml\n")
    assert len(config.read_bytes()) < 1300
    _one_line(run(["config", "check", str(config)]), 3, f"{config}: nested more than")
    with pytest.raises(ConfigError, match="nested more than"):
        parse_config(config.read_text(), config)


@pytest.fixture(scope="module")
def env(models_dir: Path) -> dict[str, str]:
    return {**os.environ, "FACEWATCH_MODELS": str(models_dir)}


def test_gallery_commands_exit_2(tmp_path: Path, env: dict[str, str], examples: Path) -> None:
    gallery = tmp_path / "people.yaml"
    gallery.write_text(f"people:\n  - id: obama\n    images: [obama.jpg]\n"
                       f"    metadata: {{x: {deep_flow()}}}\n")
    before = gallery.read_bytes()
    _one_line(run(["gallery", "build", str(gallery)], env), 2, f"{gallery}: nested more than")
    _one_line(run(["identify", "--gallery", str(gallery), str(examples / "obama.jpg")], env), 2,
              f"{gallery}: nested more than")
    # the editor's round-trip load (ruamel) too, and the file is left as it was
    _one_line(run(["gallery", "add", str(gallery), "--id", "biden", str(examples / "biden.jpg")],
                  env), 2, f"{gallery}: nested more than")
    _one_line(run(["gallery", "remove", str(gallery), "obama"], env), 2, "nested more than")
    assert gallery.read_bytes() == before


# -- the daemon: SIGHUP with a deep config ------------------------------------------------------

def test_sighup_with_a_deep_config_keeps_the_daemon_running(
        tmp_path: Path, models_dir: Path, examples: Path, shared_dir: Path) -> None:
    """The reload's RecursionError was not a FacewatchError: it killed the supervisor."""
    write_yaml(tmp_path / "people.yaml",
               {"people": [{"id": "obama", "images": [str(examples / "obama.jpg")]}]})
    port = free_port()
    good = {"cameras": [{"name": "clip", "url": str(shared_dir / "data" / "videos" /
                                                    "short_hamilton_clip.mp4"), "loop": True}],
            "gallery": "people.yaml", "state_dir": "state",
            "outputs": {"zmq": {"bind": f"tcp://127.0.0.1:{port}"}}, "metrics": {"enabled": False}}
    config = write_yaml(tmp_path / "config.yaml", good)
    events = ZmqEvents(f"tcp://127.0.0.1:{port}")
    try:
        with DaemonProcess(config, models_dir, tmp_path) as daemon:
            events.follow(daemon)
            daemon.start()
            events.wait_for(camera_state("online", "clip"), 120, "the camera online")
            config.write_text(f"cameras: {deep_flow()}\ngallery: people.yaml\n")
            daemon.send(signal.SIGHUP)
            wait_until(lambda: "config not reloaded" in daemon.log_text(), 60,
                       "the reload refused", daemon.log_tail, daemon.gone)
            mark = events.mark()
            events.wait_for(lambda e: e.type != "camera.status", 120,
                            "events still flowing after the refused reload", since=mark)
            assert daemon.returncode is None
            daemon.terminate()
            assert daemon.wait(15) == 0, daemon.log_tail()
            log = daemon.log_text()
    finally:
        events.close()
    assert "RecursionError" not in log and "Traceback" not in log, log[-3000:]
    [refused] = [line for line in log.splitlines() if "config not reloaded" in line]
    assert f"{config}: nested more than" in refused


# -- facewatch tail: deep JSON from the bus ------------------------------------------------------

def test_event_reader_refuses_deep_json() -> None:
    with pytest.raises(EventFormatError, match="nested"):
        from_json(b"[" * 100_000 + b"]" * 100_000)
    deep_metadata = {"v": 1, "type": "face.recognized", "seq": 1, "event_id": "x", "camera": "door",
                     "ts": 1.0, "published_ts": 1.0, "track_id": 1, "identity": "ada",
                     "name": "Ada", "score": 0.5, "bbox": [0, 0, 1, 1], "snapshot": None,
                     "metadata": {"a": json.loads(deep_flow(900))}}
    with pytest.raises(EventFormatError, match="nested"):
        from_json(json.dumps(deep_metadata))


def test_tail_skips_deep_json_and_goes_on(tmp_path: Path) -> None:
    """Any client allowed to publish on the bus could stop every `facewatch tail`."""
    port = free_port()
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(f"tcp://127.0.0.1:{port}")
    good = to_json(TrackStarted(camera="door", ts=time.time(), track_id=7, bbox=(0, 0, 1, 1),
                                score=0.99, seq=1, event_id="e1"))
    stop = threading.Event()

    def publish() -> None:
        while not stop.is_set():  # until the subscriber has joined and taken both
            pub.send_multipart([b"track.started/door", b"[" * 100_000 + b"]" * 100_000])
            pub.send_multipart([b"track.started/door", good])
            time.sleep(0.2)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        proc = subprocess.run([*COMMAND, "tail", "--zmq", f"tcp://127.0.0.1:{port}", "--count", "1",
                               "--timeout", "60"], check=False, capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)
    finally:
        stop.set()
        thread.join(5)
        pub.close(0)
        context.term()
    assert proc.returncode == 0, proc.stderr
    assert "track 7 started" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert "skipped a message that is not an event: nested" in proc.stderr, proc.stderr
