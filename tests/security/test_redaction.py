"""Secrets never reach what people read: logs, stderr, events, `config check`.

The daemon test runs `facewatch run` for real with cameras whose URLs carry passwords (RTSP on a
closed port, through GStreamer and through OpenCV/FFmpeg, one password holding `@` and `:`), a
file camera, and MQTT with a password, and then looks for the passwords in every byte it wrote:
stderr, the JSON-lines file, every MQTT message and every ZeroMQ message.  OpenCV is asked to
print its capture URLs (OPENCV_VIDEOIO_DEBUG=1, as someone debugging a camera would), so the
C library really does write a password to stderr, and the test proves it is redacted there.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from facewatch.cli.main import main
from facewatch.config import parse_config, resolve
from facewatch.events import CameraStatus
from facewatch.redact import RedactingFilter, forget_all, redact, remember
from facewatch.streams.urls import scrub
from tests.support.daemon import DaemonProcess, ZmqEvents, camera_state, wait_until, write_yaml
from tests.support.mosquitto import Mosquitto, free_port, mosquitto_available

REPO = Path(__file__).resolve().parents[2]

CAMERA_PASSWORD = "S3cretPass"
TRICKY_PASSWORD = "S3c@ret:Pa55"  # an unescaped @ and : in the URL, as camera users write them
MQTT_PASSWORD = "MqttS3cretWord"
SECRETS = (CAMERA_PASSWORD, TRICKY_PASSWORD, MQTT_PASSWORD)


@pytest.fixture(autouse=True)
def _no_remembered_secrets() -> Iterator[None]:
    forget_all()
    yield
    forget_all()


# -- redact() -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "shown"), [
    ("rtsp://alice:S3cretPass@10.0.0.2:554/x", "rtsp://alice:***@10.0.0.2:554/x"),
    ("rtsp://carol:S3c@ret:Pa55@10.0.0.2/y", "rtsp://carol:***@10.0.0.2/y"),
    ("cannot open 'rtsp://u:p%40ss@cam/x' (timeout)", "cannot open 'rtsp://u:***@cam/x' (timeout)"),
    ("a rtsp://u:one@h/a and http://v:two@k/b", "a rtsp://u:***@h/a and http://v:***@k/b"),
    ('["rtsp://u:pw@h/a","x@y"]', '["rtsp://u:***@h/a","x@y"]'),
    ("http://cam/snap.cgi?user=admin&pwd=S3cret&ch=1", "http://cam/snap.cgi?user=admin&pwd=***&ch=1"),
    ("rtsp://cam/x?token=abc123", "rtsp://cam/x?token=***"),
    ("rtsp://cam.local:554/x no password here", "rtsp://cam.local:554/x no password here"),
    ("ordinary text: a=1, user@example.org", "ordinary text: a=1, user@example.org"),
])
def test_redact(text: str, shown: str) -> None:
    assert redact(text) == shown
    assert redact(shown) == shown  # idempotent: redacting twice (source, then handler) is harmless


def test_remembered_secrets_are_hidden_anywhere() -> None:
    remember("p@ss:w0rd!")
    remember("abc")  # too short to hide everywhere: "abc" in ordinary text stays readable
    text = "user-pw=p@ss:w0rd! url=rtsp://u:p%40ss%3Aw0rd%21@h/x abc"
    assert redact(text) == "user-pw=*** url=rtsp://u:***@h/x abc"


def test_scrub_hides_a_camera_password_outside_its_url() -> None:
    url = "rtsp://bob:p%40ss@cam/x"
    assert scrub(f"401 for {url}; user-pw p@ss; raw p%40ss", url) == \
        "401 for rtsp://bob:***@cam/x; user-pw ***; raw ***"


def test_filter_redacts_arguments_tracebacks_and_stacks() -> None:
    logger = logging.getLogger("facewatch.test.redaction")
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Collect()
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("cannot open %s", "rtsp://alice:S3cretPass@cam/x")
        try:
            raise RuntimeError("rtsp://alice:S3cretPass@cam/x refused")
        except RuntimeError:
            logger.exception("source crashed")
        logger.warning("here", stack_info=True)  # the stack shows this line: rtsp://alice:S3cretPass@cam/x
    finally:
        logger.removeHandler(handler)
    assert len(records) == 3
    assert "rtsp://alice:***@cam/x" in records[0] and "rtsp://alice:***@cam/x refused" in records[1]
    assert "Traceback" in records[1] and "Stack (most recent call last)" in records[2]
    assert "rtsp://alice:***@cam/x" in records[2]
    assert not any(CAMERA_PASSWORD in r for r in records), records


def test_camera_status_events_never_carry_a_password() -> None:
    from facewatch.streams.reader import StreamState, StreamStatus

    status = StreamStatus("door", StreamState.RECONNECTING, "unreachable",
                          "unreachable: cannot open rtsp://alice:S3cretPass@cam/x", at=1.0)
    assert CameraStatus.from_stream_status(status).reason == "unreachable: cannot open rtsp://alice:***@cam/x"


def test_resolve_remembers_the_passwords_it_reads(tmp_path: Path) -> None:
    (tmp_path / "mqtt.pass").write_text(MQTT_PASSWORD + "\n")
    text = textwrap.dedent(f"""\
        cameras: [{{name: door, url: "rtsp://carol:{TRICKY_PASSWORD}@cam/x"}}]
        gallery: g.yaml
        outputs: {{mqtt: {{host: broker, username: fw, password_file: mqtt.pass}}}}
        """)
    resolve(parse_config(text, tmp_path / "config.yaml", environ={}), environ={})
    # a library that prints the bare password, far from any URL
    assert redact(f"auth with {TRICKY_PASSWORD} / {MQTT_PASSWORD}") == "auth with *** / ***"


def test_stderr_of_the_process_and_its_children_is_redacted(tmp_path: Path) -> None:
    """fd 2 itself is redacted: what C code (here: a child's raw write) prints, not just logging."""
    script = textwrap.dedent("""\
        import os, subprocess, sys
        from facewatch.redact import route_stderr
        restore = route_stderr()
        os.write(2, b"native: rtsp://alice:S3cretPass@cam/x\\n")
        subprocess.run([sys.executable, "-c",
                        "import os; os.write(2, b'child: rtsp://carol:S3c@ret:Pa55@cam/y' + bytes([10]))"])
        print("python: http://cam/a?pwd=S3cretPass", file=sys.stderr)
        restore()
        os.write(2, b"after restore: direct\\n")
        """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=False, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "native: rtsp://alice:***@cam/x", "child: rtsp://carol:***@cam/y",
        "python: http://cam/a?pwd=***", "after restore: direct"]


# -- facewatch config check ---------------------------------------------------------------------

def _config_with(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(f"""\
        cameras:
          - name: door
            url: "{url}"
        gallery: gallery.yaml
        outputs:
          mqtt: {{host: 127.0.0.1, username: fw, password: "${{MQTT_PASSWORD}}"}}
        """))
    return path


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_config_check_shows_no_password(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch, as_json: bool) -> None:
    monkeypatch.setenv("MQTT_PASSWORD", MQTT_PASSWORD)
    config = _config_with(tmp_path, f"rtsp://carol:{TRICKY_PASSWORD}@192.0.2.7:554/stream1")
    assert main(["config", "check", str(config), *(["--json"] if as_json else [])]) == 0
    out, err = capsys.readouterr()
    assert "carol:***@192.0.2.7:554/stream1" in out
    if as_json:
        document = json.loads(out)
        assert document["config"]["outputs"]["mqtt"]["password"] == "***"
    for secret in SECRETS:
        assert secret not in out + err


@pytest.mark.parametrize("url", [
    f"rtmp://carol:{TRICKY_PASSWORD}@192.0.2.7/stream1",     # unsupported scheme
    f"rtsp://carol:{TRICKY_PASSWORD}@192.0.2.7:99999/x",     # port out of range
    f"rtsp://carol:{TRICKY_PASSWORD}@/x",                    # no host
    f"rtsp://carol:{TRICKY_PASSWORD}@192.0.2.7/a b",         # whitespace
])
def test_invalid_camera_url_error_shows_no_password(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("MQTT_PASSWORD", MQTT_PASSWORD)
    config = _config_with(tmp_path, url)
    assert main(["config", "check", str(config), "--json"]) == 3
    out, err = capsys.readouterr()
    assert json.loads(out)["exit_code"] == 3
    line = err.strip()
    assert "\n" not in line and "cameras[0].url" in line and "carol:***@" in line, line
    for secret in SECRETS:
        assert secret not in out + err


# -- the daemon -------------------------------------------------------------------------------


class _MqttRecorder:
    """Every MQTT message on `#`, raw, as a consumer with an account would receive it."""

    def __init__(self, broker: Mosquitto, username: str, password: str) -> None:
        self.payloads: list[bytes] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.username_pw_set(username, password)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe("#", qos=1)
        if not subscribed.wait(10):
            raise AssertionError("no SUBACK from the broker")

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.payloads.append(message.topic.encode() + b" " + bytes(message.payload))

    def text(self) -> str:
        with self._lock:
            return b"\n".join(self.payloads).decode(errors="replace")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_the_daemon_never_shows_a_password(tmp_path: Path, models_dir: Path, shared_dir: Path,
                                           examples: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    # OpenCV prints "trying capture filename='rtsp://carol:S3c@ret:Pa55@...'" to stderr, from C.
    monkeypatch.setenv("OPENCV_VIDEOIO_DEBUG", "1")
    monkeypatch.setenv("GST_DEBUG", "rtspsrc:5")
    monkeypatch.setenv("GST_DEBUG_NO_COLOR", "1")
    closed = free_port()  # nobody listens: each attempt fails and is reported
    write_yaml(tmp_path / "gallery.yaml",
               {"people": [{"id": "obama", "images": [str(examples / "obama.jpg")]}]})
    (tmp_path / "mqtt.pass").write_text(MQTT_PASSWORD + "\n")
    zmq_port = free_port()
    fast = {"reconnect_initial_s": 0.5, "reconnect_max_s": 1}
    with ExitStack() as stack:
        broker = Mosquitto(tmp_path / "mosquitto", users={"facewatch": MQTT_PASSWORD,
                                                          "reader": "reader-pass"})
        stack.callback(broker.stop)
        broker.start()
        mqtt_log = _MqttRecorder(broker, "reader", "reader-pass")
        stack.callback(mqtt_log.close)
        config = write_yaml(tmp_path / "config.yaml", {
            "cameras": [
                {"name": "gst", "url": f"rtsp://alice:{CAMERA_PASSWORD}@127.0.0.1:{closed}/x",
                 "decoder": "gstreamer", **fast},
                {"name": "ffmpeg", "url": f"rtsp://carol:{TRICKY_PASSWORD}@127.0.0.1:{closed}/y",
                 "decoder": "opencv", **fast},
                {"name": "tree", "url": str(shared_dir / "data" / "videos" / "opencv_tree_noface.avi")},
            ],
            "gallery": "gallery.yaml", "state_dir": "state",
            "outputs": {"zmq": {"bind": f"tcp://127.0.0.1:{zmq_port}"}, "jsonl": "events.jsonl",
                        "mqtt": {"host": broker.host, "port": broker.port, "username": "facewatch",
                                 "password_file": "mqtt.pass"}},
            "metrics": {"enabled": False}, "logging": {"level": "debug"}})
        zmq_log = ZmqEvents(f"tcp://127.0.0.1:{zmq_port}")
        stack.callback(zmq_log.close)
        daemon = stack.enter_context(DaemonProcess(config, models_dir, tmp_path))
        zmq_log.follow(daemon)
        daemon.start()
        zmq_log.wait_for(camera_state("offline", "tree"), 90, "the file camera's end")
        for camera in ("gst", "ffmpeg"):
            wait_until(lambda c=camera: len(zmq_log.matching(camera_state("reconnecting", c))) >= 3,
                       90, f"three failed attempts of {camera}", zmq_log.summary, daemon.gone)
        wait_until(lambda: "connected to MQTT broker" in daemon.log_text(), 30,
                   "the MQTT connection", daemon.log_tail, daemon.gone)
        daemon.terminate()
        assert daemon.wait(15) == 0, daemon.log_tail()
        stderr = daemon.log_text()
        jsonl = (tmp_path / "events.jsonl").read_text()
        zmq_text = "\n".join(json.dumps(e.reason) for e in zmq_log.events
                             if isinstance(e, CameraStatus))
        mqtt_text = mqtt_log.text()
    # Not vacuous: the URLs were printed (by OpenCV's C code, and in the status reasons), redacted.
    assert "carol:***@127.0.0.1" in stderr, stderr[-3000:]
    assert "carol:***@127.0.0.1" in jsonl and "carol:***@127.0.0.1" in mqtt_text
    assert "rtspsrc" in stderr  # GStreamer's own debug output was there too
    for where, text in (("stderr", stderr), ("events.jsonl", jsonl), ("ZeroMQ", zmq_text),
                        ("MQTT", mqtt_text)):
        for secret in (*SECRETS, "S3c@ret", "Pa55@"):
            assert secret not in text, f"{secret!r} in {where}"


# -- access tokens as the user part, ;password= parameters (issue 8) ------------------------------

TOKEN = "9f8e7d6c5b4a3f2e1d0c"


@pytest.mark.parametrize(("text", "shown"), [
    (f"cannot open rtsp://{TOKEN}@relay.example.net/cam1 (401)",
     "cannot open rtsp://***@relay.example.net/cam1 (401)"),
    (f"'rtsp://{TOKEN}@h/x' and 'rtsp://u:pw@h/y'", "'rtsp://***@h/x' and 'rtsp://u:***@h/y'"),
    ("rtsp://cam:554/user=admin;password=hunter2;channel=1",
     "rtsp://cam:554/user=admin;password=***;channel=1"),
    ("Could not open resource for reading: rtsp://cam/x?ch=1;pwd=hunter2;subtype=0",
     "Could not open resource for reading: rtsp://cam/x?ch=1;pwd=***;subtype=0"),
    ("rtsp://cam/user=admin&password=hunter2&channel=1", "rtsp://cam/user=admin&password=***&channel=1"),
    ("see https://example.org/docs/faq (mail admin@example.org)",
     "see https://example.org/docs/faq (mail admin@example.org)"),
    ("http://cam?notify=admin@example.org", "http://cam?notify=admin@example.org"),
])
def test_redact_tokens_and_semicolon_parameters(text: str, shown: str) -> None:
    assert redact(text) == shown
    assert redact(shown) == shown


def test_resolve_remembers_tokens_and_parameter_passwords(tmp_path: Path) -> None:
    text = textwrap.dedent(f"""\
        cameras:
          - {{name: relay, url: "rtsp://{TOKEN}@relay.example.net/cam1"}}
          - {{name: dahua, url: "rtsp://cam:554/user=admin;password=Hunter2x;channel=1"}}
        gallery: g.yaml
        """)
    resolve(parse_config(text, tmp_path / "config.yaml", environ={}), environ={})
    assert redact(f"token {TOKEN}, password Hunter2x") == "token ***, password ***"


def test_scrub_hides_a_token_and_a_parameter_password() -> None:
    url = f"rtsp://{TOKEN}@cam/x"
    assert scrub(f"401 for {url}; user {TOKEN}", url) == "401 for rtsp://***@cam/x; user ***"
    url = "rtsp://cam/user=admin;password=Hunter2x;channel=1"
    assert scrub(f"{url} refused; sent Hunter2x", url) == \
        "rtsp://cam/user=admin;password=***;channel=1 refused; sent ***"
