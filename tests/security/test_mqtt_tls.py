"""MQTT over TLS with client certificates and a password, against a real mosquitto TLS listener.

Every test makes its own certificate authority (tests/support/pki.py): a server certificate for
127.0.0.1 and localhost, a client certificate, and an unrelated CA to be refused.  The broker
requires a client certificate signed by its CA *and* a user name and password.
"""

from __future__ import annotations

import json
import logging
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives import serialization
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from facewatch.config import MqttOutput, MqttTls, parse_config, resolve
from facewatch.errors import ConfigError
from facewatch.events import CameraStatus, from_json
from facewatch.publishers.mqtt import MqttPublisher
from tests.support.daemon import DaemonProcess, wait_until, write_yaml
from tests.support.mosquitto import BrokerTls, Mosquitto, free_port, mosquitto_available
from tests.support.pki import Pki, make_pki

REPO = Path(__file__).resolve().parents[2]
USER, PASSWORD = "facewatch", "Tls-Br0ker-Pass"
TIMEOUT_S = 15.0


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def broker(tmp_path: Path, pki: Pki) -> Iterator[Mosquitto]:
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    with Mosquitto(tmp_path / "mosquitto", users={USER: PASSWORD},
                   tls=BrokerTls(pki.ca, pki.server_cert, pki.server_key)) as broker:
        broker.start()
        yield broker


class TlsSubscriber:
    """A consumer with its own client certificate, subscribed to facewatch/#."""

    def __init__(self, broker: Mosquitto, pki: Pki) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.tls_set(ca_certs=str(pki.ca), certfile=str(pki.client_cert),
                            keyfile=str(pki.client_key))
        self.client.username_pw_set(USER, PASSWORD)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe("facewatch/#", qos=1)
        if not subscribed.wait(TIMEOUT_S):
            raise AssertionError(f"the TLS subscriber got no SUBACK: {broker.log_tail()}")

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def settings(broker: Mosquitto, pki: Pki, *, ca: Path | None = None, password: str = PASSWORD,
             client_cert: bool = True, host: str | None = None) -> MqttOutput:
    return MqttOutput(
        host=host or broker.host, port=broker.port, username=USER, password=SecretStr(password),
        tls=MqttTls(ca=ca or pki.ca, cert=pki.client_cert if client_cert else None,
                    key=pki.client_key if client_cert else None),
        client_id=f"facewatch-test-{time.monotonic_ns()}")


def status(reason: str = "online") -> CameraStatus:
    return CameraStatus(camera="door", ts=time.time(), state="online", reason=reason)


def test_tls_with_client_certificate_and_password_delivers(broker: Mosquitto, pki: Pki) -> None:
    subscriber = TlsSubscriber(broker, pki)
    acked: list[str] = []
    publisher = MqttPublisher(settings(broker, pki), ["door"], on_ack=acked.append)
    try:
        publisher.start()
        assert publisher.wait_connected(TIMEOUT_S), broker.log_tail()
        event = status().stamped(1, time.time())
        publisher.publish(event)
        wait_until(lambda: acked == [event.event_id], TIMEOUT_S, "the broker's acknowledgement")
        wait_until(lambda: bool(subscriber.on("facewatch/events")), TIMEOUT_S, "the event")
        assert from_json(subscriber.on("facewatch/events")[0]) == event
        assert subscriber.on("facewatch/available")[-1] == b"online"
    finally:
        publisher.stop()
        subscriber.close()


def test_the_host_name_localhost_is_checked_against_the_certificate_too(broker: Mosquitto,
                                                                        pki: Pki) -> None:
    publisher = MqttPublisher(settings(broker, pki, host="localhost"), ["door"])
    try:
        publisher.start()
        assert publisher.wait_connected(TIMEOUT_S), broker.log_tail()
    finally:
        publisher.stop()


def _refused(publisher: MqttPublisher, caplog: pytest.LogCaptureFixture, expected: str) -> str:
    """Starts `publisher`, which must not connect: a warning containing `expected`, several
    attempts (paho keeps retrying, the process does not crash), and events still accepted.
    Each reason is warned about once; under load a refusal sometimes reaches the client in a
    second way (TLS 1.3: the alert during the handshake, or the connection closed after it),
    so there may be two warnings, never one per attempt."""
    with caplog.at_level(logging.DEBUG, logger="facewatch.publishers.mqtt"):
        publisher.start()
        publisher.publish(status().stamped(1, time.time()))  # kept for when it connects
        wait_until(lambda: sum("(attempt" in r.getMessage() for r in caplog.records) >= 2,
                   TIMEOUT_S, "at least three attempts")
        assert not publisher.connected
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(set(warnings)) == len(warnings) <= 2, warnings
    line = next((w for w in warnings if expected in w), None)
    assert line is not None, warnings
    assert "\n" not in line
    assert PASSWORD not in caplog.text and "nope-nope" not in caplog.text
    return line


def test_a_broker_certificate_from_another_ca_is_refused(broker: Mosquitto, pki: Pki,
                                                         tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    other = make_pki(tmp_path / "other")
    publisher = MqttPublisher(settings(broker, pki, ca=other.ca), ["door"], reconnect_max_s=1)
    try:
        line = _refused(publisher, caplog, "its TLS certificate was refused")
        assert "outputs.mqtt.tls.ca" in line and "self-signed certificate in certificate chain" in line
    finally:
        publisher.stop()


def test_a_certificate_for_another_host_is_refused(tmp_path: Path, pki: Pki,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    elsewhere = make_pki(tmp_path / "elsewhere", server_hosts=("broker.example.org",))
    with Mosquitto(tmp_path / "m2", users={USER: PASSWORD},
                   tls=BrokerTls(elsewhere.ca, elsewhere.server_cert, elsewhere.server_key)) as broker:
        broker.start()
        publisher = MqttPublisher(
            MqttOutput(host=broker.host, port=broker.port, username=USER,
                       password=SecretStr(PASSWORD),
                       tls=MqttTls(ca=elsewhere.ca, cert=elsewhere.client_cert,
                                   key=elsewhere.client_key)), ["door"], reconnect_max_s=1)
        try:
            line = _refused(publisher, caplog, "its TLS certificate was refused")
            assert "IP address mismatch" in line, line
        finally:
            publisher.stop()


def test_a_wrong_password_is_refused(broker: Mosquitto, pki: Pki,
                                     caplog: pytest.LogCaptureFixture) -> None:
    publisher = MqttPublisher(settings(broker, pki, password="nope-nope"), ["door"],
                              reconnect_max_s=1)
    try:
        line = _refused(publisher, caplog, "refused the connection (Not authorized")
        assert "outputs.mqtt.username and the password" in line
    finally:
        publisher.stop()


def test_no_client_certificate_is_refused(broker: Mosquitto, pki: Pki,
                                          caplog: pytest.LogCaptureFixture) -> None:
    publisher = MqttPublisher(settings(broker, pki, client_cert=False), ["door"], reconnect_max_s=1)
    try:
        line = _refused(publisher, caplog, "closed the connection before accepting it")
        assert "certificate required" in line and "outputs.mqtt.tls.cert and key" in line
    finally:
        publisher.stop()


def test_the_client_context_is_tls_1_2_or_later_with_verification(pki: Pki) -> None:
    context = MqttTls(ca=pki.ca).ssl_context()
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


# -- unusable TLS files are config errors (exit 3), checked before the daemon starts --------------

def _check(tmp_path: Path, tls: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.yaml"
    config.write_text(textwrap.dedent(f"""\
        cameras: [{{name: door, url: /a.mp4}}]
        gallery: g.yaml
        outputs:
          mqtt:
            host: 127.0.0.1
            tls: {tls}
        """))
    return subprocess.run([sys.executable, "-m", "facewatch", "config", "check", str(config)],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("tls", "expected"), [
    ("{ca: nowhere.pem}", (r"config\.yaml:6: outputs\.mqtt\.tls\.ca: \S*nowhere\.pem: cannot load "
                           r"it as PEM CA certificates \(No such file or directory\)")),
    ("{ca: config.yaml}", (r"config\.yaml:6: outputs\.mqtt\.tls\.ca: \S*config\.yaml: cannot load "
                           r"it as PEM CA certificates")),
    ("{cert: PKI/client.pem, key: PKI/server.key}",
     (r"config\.yaml:6: outputs\.mqtt\.tls\.key: \S*client\.pem and \S*server\.key are not a PEM "
      r"certificate and its unencrypted private key \(key values mismatch\)")),
    ("{cert: PKI/client.pem, key: missing.key}",
     r"config\.yaml:6: outputs\.mqtt\.tls\.key: \S*missing\.key: No such file or directory"),
    ("{cert: PKI/client.pem, key: encrypted.key}",
     r"config\.yaml:6: outputs\.mqtt\.tls\.key: .*unencrypted private key"),
], ids=["missing CA", "not PEM", "key of another cert", "missing key", "encrypted key"])
def test_unusable_tls_files_exit_3_with_one_line(tmp_path: Path, pki: Pki, tls: str,
                                                 expected: str) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(pki.client_key.read_bytes(), None)
    (tmp_path / "encrypted.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase")))
    result = _check(tmp_path, tls.replace("PKI", str(pki.ca.parent)))
    assert result.returncode == 3, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    import re

    assert re.search(expected, lines[0]), lines[0]


def test_resolve_checks_the_tls_files(tmp_path: Path, pki: Pki) -> None:
    text = (f"cameras: [{{name: door, url: /a.mp4}}]\ngallery: g.yaml\noutputs:\n  mqtt:\n"
            f"    host: h\n    tls: {{ca: {pki.ca}, cert: {pki.client_cert}, key: {pki.client_key}}}\n")
    resolved = resolve(parse_config(text, tmp_path / "c.yaml", environ={}), environ={})
    assert resolved.outputs.mqtt is not None and resolved.outputs.mqtt.tls is not None
    pki.ca.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"outputs\.mqtt\.tls\.ca: .*cannot load"):
        resolve(parse_config(text, tmp_path / "c.yaml", environ={}), environ={})


# -- the daemon ---------------------------------------------------------------------------------

def test_the_daemon_publishes_over_tls(tmp_path: Path, broker: Mosquitto, pki: Pki,
                                       models_dir: Path, shared_dir: Path, examples: Path) -> None:
    write_yaml(tmp_path / "gallery.yaml",
               {"people": [{"id": "obama", "images": [str(examples / "obama.jpg")]}]})
    (tmp_path / "mqtt.pass").write_text(PASSWORD + "\n")
    config = write_yaml(tmp_path / "config.yaml", {
        "cameras": [{"name": "tree", "url": str(shared_dir / "data" / "videos" / "opencv_tree_noface.avi")}],
        "gallery": "gallery.yaml", "state_dir": "state",
        "outputs": {"zmq": {"bind": f"tcp://127.0.0.1:{free_port()}"},
                    "mqtt": {"host": "localhost", "port": broker.port, "username": USER,
                             "password_file": "mqtt.pass",
                             "tls": {"ca": str(pki.ca), "cert": str(pki.client_cert),
                                     "key": str(pki.client_key)}}},
        "metrics": {"enabled": False}})
    subscriber = TlsSubscriber(broker, pki)
    try:
        with DaemonProcess(config, models_dir, tmp_path) as daemon:
            daemon.start()
            wait_until(lambda: any(json.loads(p).get("reason") == "eof"
                                   for p in subscriber.on("facewatch/events")),
                       90, "the file camera's end over MQTT/TLS", daemon.log_tail, daemon.gone)
            daemon.terminate()
            assert daemon.wait(15) == 0, daemon.log_tail()
            log = daemon.log_text()
        states = [json.loads(p)["state"] for p in subscriber.on("facewatch/tree/status")]
        assert states[:2] == ["online", "offline"]
        assert "connected to MQTT broker localhost" in log
        assert PASSWORD not in log
    finally:
        subscriber.close()
