"""Publishers against the real things: a mosquitto broker, ZeroMQ SUB sockets, files, and the
`facewatch tail` command as a process."""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import zmq
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from facewatch.config import MqttOutput, parse_config, resolve
from facewatch.events import (
    CameraStatus,
    Event,
    FaceRecognized,
    FaceUnknown,
    TrackEnded,
    TrackStarted,
    from_json,
    to_dict,
)
from facewatch.publishers import Fanout, PublisherError, build_publishers
from facewatch.publishers.jsonl import JsonlPublisher
from facewatch.publishers.home_assistant import discovery_messages
from facewatch.publishers.mqtt import MqttPublisher
from facewatch.publishers.zmq import ZmqPublisher
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.publishing import stamped_sender

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 10.0


# -- events and helpers ---------------------------------------------------------------------------

def status(camera: str = "door", state: str = "online", reason: str = "connected") -> CameraStatus:
    return CameraStatus(camera=camera, ts=time.time(), state=state, reason=reason)  # type: ignore[arg-type]


def started(camera: str = "door", track_id: int = 1) -> TrackStarted:
    return TrackStarted(camera=camera, ts=time.time(), track_id=track_id, bbox=(10, 20, 110, 140), score=0.99)


def recognized(camera: str = "door", track_id: int = 1) -> FaceRecognized:
    return FaceRecognized(camera=camera, ts=time.time(), track_id=track_id, identity="ada",
                          name="Ada Lovelace", score=0.71, bbox=(10, 20, 110, 140),
                          snapshot=None, metadata={"team": "lab"})


def ended(camera: str = "door", track_id: int = 1) -> TrackEnded:
    return TrackEnded(camera=camera, ts=time.time(), track_id=track_id, duration_s=3.5,
                      identity="ada", name="Ada Lovelace")


def wait_until(condition: Callable[[], bool], timeout_s: float = TIMEOUT_S, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)


class Subscriber:
    """An MQTT client as a consumer would run one, recording every message it receives."""

    def __init__(self, broker: Mosquitto, topics: tuple[str, ...] = ("#",)) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_args: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe([(t, 1) for t in topics])
        assert subscribed.wait(TIMEOUT_S), "no SUBACK"

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [payload for t, payload, _ in self.messages if t == topic]

    def wait_for(self, topic: str, payload: bytes | None = None, count: int = 1) -> list[bytes]:
        def enough() -> bool:
            found = self.on(topic)
            return len([p for p in found if payload is None or p == payload]) >= count

        wait_until(enough, what=f"{count} message(s) on {topic}")
        return self.on(topic)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscribers() -> Iterator[list[Subscriber]]:
    made: list[Subscriber] = []
    yield made
    for s in made:
        s.close()


@pytest.fixture
def publishers() -> Iterator[list[Any]]:
    """Publishers to stop after the test, whatever happened."""
    made: list[Any] = []
    yield made
    for p in made:
        p.stop()


def mqtt_settings(broker: Mosquitto, **extra: Any) -> MqttOutput:
    return MqttOutput(host=broker.host, port=broker.port, **extra)


# -- ZeroMQ -----------------------------------------------------------------------------------------

SubFactory = Callable[..., "zmq.Socket[bytes]"]


@pytest.fixture
def zmq_sub() -> Iterator[SubFactory]:
    """`zmq_sub(endpoint, *prefixes)`: a connected SUB socket, closed after the test."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sockets: list[zmq.Socket[bytes]] = []

    def make(endpoint: str, *prefixes: bytes) -> zmq.Socket[bytes]:
        sock = context.socket(zmq.SUB)
        sockets.append(sock)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        for prefix in prefixes:
            sock.setsockopt(zmq.SUBSCRIBE, prefix)
        return sock

    yield make
    for sock in sockets:
        sock.close(0)
    context.term()


def drain(sock: zmq.Socket[bytes], wait_ms: int = 200) -> list[list[bytes]]:
    out = []
    while sock.poll(wait_ms):
        out.append(sock.recv_multipart())
        wait_ms = 50
    return out


def test_zmq_topics_and_frames(zmq_sub: SubFactory, publishers: list[Any]) -> None:
    publisher = ZmqPublisher("tcp://127.0.0.1:*")
    publishers.append(publisher)
    fanout = Fanout([publisher])
    publish = stamped_sender(fanout)
    fanout.start()
    endpoint = publisher.endpoint
    assert endpoint.startswith("tcp://127.0.0.1:") and not endpoint.endswith("*")
    everything = zmq_sub(endpoint, b"")
    recognitions = zmq_sub(endpoint, b"face.recognized")
    one_camera = zmq_sub(endpoint, b"track.started/door")
    # ZeroMQ subscriptions take a moment to reach the publisher: send probes until all see one.
    probes_seen: set[int] = set()
    while len(probes_seen) < 3:
        publish(FaceRecognized(camera="probe", ts=1, track_id=0, identity="p", name="p",
                                      score=0.5, bbox=(0, 0, 1, 1)))
        publish(started("door", 0))
        for i, sock in enumerate((everything, recognitions, one_camera)):
            if sock.poll(20):
                probes_seen.add(i)
    for sock in (everything, recognitions, one_camera):
        drain(sock)

    sent = [publish(e) for e in (status("door"), started("door", 7), recognized("door", 7),
                                        recognized("door2", 8), ended("door", 7))]
    frames = drain(everything)
    assert [f[0] for f in frames] == [b"camera.status/door", b"track.started/door",
                                      b"face.recognized/door", b"face.recognized/door2",
                                      b"track.ended/door"]
    assert all(len(f) == 2 for f in frames)
    received = [from_json(f[1]) for f in frames]
    assert received == sent
    assert [e.seq for e in received] == sorted(e.seq for e in received if e.seq is not None)
    assert [f[0] for f in drain(recognitions)] == [b"face.recognized/door", b"face.recognized/door2"]
    assert [from_json(f[1]).event_id for f in drain(one_camera)] == [sent[1].event_id]


def test_zmq_bind_failure_is_one_clear_error(publishers: list[Any]) -> None:
    first = ZmqPublisher("tcp://127.0.0.1:*")
    publishers.append(first)
    first.start()
    second = ZmqPublisher(first.endpoint)
    expected = rf"outputs\.zmq\.bind {first.endpoint}: cannot bind \(Address already in use\)$"
    with pytest.raises(PublisherError, match=expected):
        second.start()


# -- JSON lines -------------------------------------------------------------------------------------

def test_jsonl_appends_flushed_private_lines(tmp_path: Path) -> None:
    path = tmp_path / "new" / "deeper" / "events.jsonl"
    old_umask = os.umask(0o022)
    try:
        publisher = JsonlPublisher(path)
        publisher.start()
    finally:
        os.umask(old_umask)
    events = [e.stamped(i, time.time()) for i, e in enumerate((status(), recognized()), start=1)]
    for e in events:
        publisher.publish(e)
        # Written through: readable before stop().
        assert path.read_bytes().endswith(b"}\n")
    assert [from_json(line) for line in path.read_bytes().splitlines()] == events
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    publisher.stop()
    publisher.stop()  # twice is fine
    with pytest.raises(PublisherError, match="not started"):
        publisher.publish(events[0])


def test_jsonl_reopens_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    publisher = JsonlPublisher(path)
    publisher.start()
    publisher.publish(status().stamped(1, time.time()))
    path.rename(tmp_path / "events.jsonl.1")  # logrotate's `create` mode
    publisher.publish(status().stamped(2, time.time()))
    publisher.publish(status().stamped(3, time.time()))
    path.unlink()  # removed outright
    publisher.publish(status().stamped(4, time.time()))
    publisher.stop()
    assert [from_json(x).seq for x in (tmp_path / "events.jsonl.1").read_bytes().splitlines()] == [1]
    assert [from_json(x).seq for x in path.read_bytes().splitlines()] == [4]


def test_jsonl_tightens_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("")
    path.chmod(0o644)
    publisher = JsonlPublisher(path)
    publisher.start()
    publisher.stop()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_jsonl_unwritable_path_is_a_publisher_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(PublisherError, match="cannot open for appending"):
        JsonlPublisher(tmp_path / "file" / "events.jsonl").start()


# -- fan-out ----------------------------------------------------------------------------------------

class Broken:
    """A publisher whose transport refuses every event."""

    name = "broken"

    def __init__(self) -> None:
        self.stopped = False

    def start(self) -> None:
        pass

    def publish(self, event: Event) -> None:
        raise PublisherError("the disk is on fire")

    def stop(self) -> None:
        self.stopped = True


def test_fanout_stamps_and_survives_a_failing_publisher(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "events.jsonl"
    broken = Broken()
    clock = iter(range(1000, 2000))
    fanout = Fanout([broken, JsonlPublisher(path)])
    publish = stamped_sender(fanout, first_seq=41, clock=lambda: float(next(clock)))
    fanout.start()
    events = [status(), started(), recognized(), ended()]
    with caplog.at_level(logging.WARNING, logger="facewatch.publishers.fanout"):
        stamped = [publish(e) for e in events]
    fanout.stop()
    assert broken.stopped
    assert [e.seq for e in stamped] == [41, 42, 43, 44]
    assert [e.published_ts for e in stamped] == [1000.0, 1001.0, 1002.0, 1003.0]
    assert [e.event_id for e in stamped] == [e.event_id for e in events]
    assert all(e.seq is None for e in events)  # the producer's records are untouched
    assert [from_json(x) for x in path.read_bytes().splitlines()] == stamped
    stats = fanout.stats()
    assert (stats["broken"].published, stats["broken"].failed) == (0, 4)
    assert stats["broken"].last_error == "the disk is on fire"
    assert (stats["jsonl"].published, stats["jsonl"].failed) == (4, 0)
    # One line for the run of failures, not one per event.
    assert len([r for r in caplog.records if "broken" in r.getMessage()]) == 1


def test_fanout_start_failure_stops_what_was_started(tmp_path: Path, publishers: list[Any]) -> None:
    taken = ZmqPublisher("tcp://127.0.0.1:*")
    publishers.append(taken)
    taken.start()
    jsonl = JsonlPublisher(tmp_path / "events.jsonl")
    fanout = Fanout([jsonl, ZmqPublisher(taken.endpoint)])
    with pytest.raises(PublisherError):
        fanout.start()
    with pytest.raises(PublisherError, match="not started"):
        jsonl.publish(status().stamped(1, 1.0))


# -- MQTT -------------------------------------------------------------------------------------------

def test_mqtt_topics_retained_status_and_acknowledgements(mosquitto: Mosquitto, subscribers: list[Subscriber],
                                                          publishers: list[Any]) -> None:
    live = Subscriber(mosquitto)
    subscribers.append(live)
    acked: list[str] = []
    publisher = MqttPublisher(mqtt_settings(mosquitto), ["door", "yard"], on_ack=acked.append)
    publishers.append(publisher)
    fanout = Fanout([publisher])
    publish = stamped_sender(fanout)
    fanout.start()
    assert publisher.wait_connected(TIMEOUT_S)
    live.wait_for("facewatch/available", b"online")

    sent = [publish(e) for e in (status("door"), started("door"), recognized("door"),
                                        FaceUnknown(camera="yard", ts=time.time(), track_id=2,
                                                    bbox=(1, 2, 3, 4), score=0.1),
                                        ended("door"), status("door", "offline", "eof"))]
    on_events = live.wait_for("facewatch/events", count=len(sent))
    assert [from_json(p) for p in on_events] == sent
    assert [from_json(p) for p in live.on("facewatch/door/track.started")] == [sent[1]]
    assert [from_json(p) for p in live.on("facewatch/door/face.recognized")] == [sent[2]]
    assert [from_json(p) for p in live.on("facewatch/yard/face.unknown")] == [sent[3]]
    assert [from_json(p) for p in live.on("facewatch/door/track.ended")] == [sent[4]]
    assert [from_json(p) for p in live.on("facewatch/door/status")] == [sent[0], sent[5]]
    assert live.on("facewatch/door/camera.status") == []

    # Every event acknowledged exactly once, once both of its messages were PUBACKed.
    wait_until(lambda: len(acked) >= len(sent), what="acknowledgements")
    time.sleep(0.1)
    assert sorted(acked) == sorted(e.event_id for e in sent)

    # A client that connects later gets the retained state: available, and each camera's status.
    late = Subscriber(mosquitto, ("facewatch/#",))
    subscribers.append(late)
    late.wait_for("facewatch/door/status")
    late.wait_for("facewatch/available")
    retained = {t: (p, r) for t, p, r in late.messages}
    assert retained["facewatch/available"] == (b"online", True)
    assert from_json(retained["facewatch/door/status"][0]) == sent[5]
    assert retained["facewatch/door/status"][1] is True
    assert "facewatch/events" not in retained  # events are not retained

    # A clean stop says offline itself (the Will is only for unclean ends).
    fanout.stop()
    late.wait_for("facewatch/available", b"offline")


def test_mqtt_prefix_and_qos_from_the_config(mosquitto: Mosquitto, subscribers: list[Subscriber],
                                             publishers: list[Any]) -> None:
    live = Subscriber(mosquitto)
    subscribers.append(live)
    acked: list[str] = []
    publisher = MqttPublisher(mqtt_settings(mosquitto, prefix="home/faces", qos=0), ["door"],
                              on_ack=acked.append)
    publishers.append(publisher)
    publisher.start()
    assert publisher.wait_connected(TIMEOUT_S)
    event = recognized().stamped(1, time.time())
    publisher.publish(event)
    live.wait_for("home/faces/door/face.recognized")
    live.wait_for("home/faces/events")
    assert live.on("home/faces/available") == [b"online"]
    wait_until(lambda: acked == [event.event_id], what="QoS 0 send confirmation")


WILL_SCRIPT = """
import sys, time
from facewatch.config import MqttOutput
from facewatch.events import CameraStatus
from facewatch.publishers.mqtt import MqttPublisher

publisher = MqttPublisher(MqttOutput(host="127.0.0.1", port=int(sys.argv[1]), keepalive=60), ["door"])
publisher.start()
assert publisher.wait_connected(10), "not connected"
event = CameraStatus(camera="door", ts=time.time(), state="online", reason="connected")
publisher.publish(event.stamped(1, time.time()))
print("READY", flush=True)
time.sleep(120)
"""


def read_line(process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> str:
    assert process.stdout is not None
    line = b""
    deadline = time.monotonic() + timeout_s
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(process.stdout.fileno(), 256) if ready else b""
        if not chunk:
            raise AssertionError(f"no line from the process (exit code {process.poll()})")
        line += chunk
    return line.decode().strip()


def test_mqtt_last_will_when_the_publisher_dies(mosquitto: Mosquitto, subscribers: list[Subscriber]) -> None:
    live = Subscriber(mosquitto)
    subscribers.append(live)
    process = subprocess.Popen([sys.executable, "-c", WILL_SCRIPT, str(mosquitto.port)],
                               cwd=REPO, stdout=subprocess.PIPE)
    try:
        assert read_line(process) == "READY"
        live.wait_for("facewatch/available", b"online")
        live.wait_for("facewatch/door/status")
        process.send_signal(signal.SIGKILL)  # no DISCONNECT reaches the broker
        process.wait(10)
        live.wait_for("facewatch/available", b"offline")
    finally:
        process.kill()
        process.wait(10)
        assert process.stdout is not None
        process.stdout.close()
    late = Subscriber(mosquitto, ("facewatch/#",))
    subscribers.append(late)
    late.wait_for("facewatch/door/status")
    late.wait_for("facewatch/available")
    assert late.on("facewatch/available") == [b"offline"]  # retained Will
    assert from_json(late.on("facewatch/door/status")[0]).type == "camera.status"


def test_mqtt_broker_unreachable_at_start_then_started(tmp_path: Path, subscribers: list[Subscriber],
                                                       publishers: list[Any],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    broker = Mosquitto(tmp_path / "mosquitto")  # a port nobody listens on yet
    acked: list[str] = []
    publisher = MqttPublisher(MqttOutput(host=broker.host, port=broker.port), ["door"],
                              on_ack=acked.append, reconnect_max_s=1)
    publishers.append(publisher)
    with caplog.at_level(logging.INFO, logger="facewatch.publishers.mqtt"):
        t0 = time.monotonic()
        publisher.start()
        assert time.monotonic() - t0 < 1.0, "start() waited for the broker"
        queued = [e.stamped(i, time.time()) for i, e in enumerate((status(), recognized()), start=1)]
        for e in queued:
            publisher.publish(e)  # kept in memory until the broker is there
        wait_until(lambda: any("cannot reach MQTT broker" in r.getMessage() for r in caplog.records),
                   what="the unreachable-broker warning")
        time.sleep(1.5)  # a few failed attempts
        assert not publisher.connected and acked == []
        with broker:
            broker.start()
            assert publisher.wait_connected(TIMEOUT_S)
            wait_until(lambda: sorted(acked) == sorted(e.event_id for e in queued),
                       what="acknowledgements of the queued events")
            late = Subscriber(broker)
            subscribers.append(late)
            late.wait_for("facewatch/door/status")
            assert late.on("facewatch/available") == [b"online"]
            fresh = recognized().stamped(3, time.time())
            publisher.publish(fresh)
            assert from_json(late.wait_for("facewatch/door/face.recognized")[-1]) == fresh
            publisher.stop()
            late.close()
            subscribers.remove(late)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # one line, not one per attempt


def test_mqtt_reconnects_after_a_broker_restart(mosquitto: Mosquitto, subscribers: list[Subscriber],
                                                publishers: list[Any]) -> None:
    acked: list[str] = []
    publisher = MqttPublisher(mqtt_settings(mosquitto), ["door"], on_ack=acked.append, reconnect_max_s=1)
    publishers.append(publisher)
    publisher.start()
    assert publisher.wait_connected(TIMEOUT_S)
    first = status().stamped(1, time.time())
    publisher.publish(first)
    wait_until(lambda: acked == [first.event_id], what="first ack")
    mosquitto.kill()  # no persistence: the restarted broker has lost the retained status
    wait_until(lambda: not publisher.connected, what="the disconnect")
    during = recognized().stamped(2, time.time())
    publisher.publish(during)
    mosquitto.start()
    assert publisher.wait_connected(TIMEOUT_S)
    wait_until(lambda: acked == [first.event_id, during.event_id], what="ack after reconnect")
    late = Subscriber(mosquitto)
    subscribers.append(late)
    # The retained status was sent again after reconnecting.
    assert from_json(late.wait_for("facewatch/door/status")[0]) == first


def test_mqtt_credentials(tmp_path: Path, subscribers: list[Subscriber], publishers: list[Any],
                          caplog: pytest.LogCaptureFixture) -> None:
    with Mosquitto(tmp_path / "auth", users={"facewatch": "s3cret"}) as broker:
        broker.start()
        (tmp_path / "mqtt.pass").write_text("s3cret\n")
        text = (f"cameras: [{{name: door, url: /a.mp4}}]\ngallery: g.yaml\n"
                f"outputs:\n  zmq: false\n  mqtt:\n    host: 127.0.0.1\n    port: {broker.port}\n"
                f"    username: facewatch\n    password_file: mqtt.pass\n")
        config = resolve(parse_config(text, tmp_path / "config.yaml", environ={}), environ={})
        assert config.outputs.mqtt is not None
        good = MqttPublisher(config.outputs.mqtt, ["door"])
        publishers.append(good)
        good.start()
        assert good.wait_connected(TIMEOUT_S)

        wrong = MqttOutput(host=broker.host, port=broker.port, username="facewatch", password=SecretStr("nope"),
                           client_id="facewatch-wrong")
        with caplog.at_level(logging.WARNING, logger="facewatch.publishers.mqtt"):
            bad = MqttPublisher(wrong, ["door"], reconnect_max_s=1)
            publishers.append(bad)
            bad.start()
            wait_until(lambda: any("refused the connection" in r.getMessage() for r in caplog.records),
                       what="the refusal warning")
            assert not bad.connected
        assert all("s3cret" not in r.getMessage() and "nope" not in r.getMessage() for r in caplog.records)
        good.stop()
        bad.stop()


def test_home_assistant_discovery(mosquitto: Mosquitto, subscribers: list[Subscriber],
                                  publishers: list[Any]) -> None:
    settings = mqtt_settings(mosquitto, home_assistant=True)
    publisher = MqttPublisher(settings, ["door", "yard"])
    publishers.append(publisher)
    publisher.start()
    assert publisher.wait_connected(TIMEOUT_S)
    ha = Subscriber(mosquitto, ("homeassistant/#",))
    subscribers.append(ha)
    expected = dict(discovery_messages(settings, ["door", "yard"]))
    assert set(expected) == {
        f"homeassistant/{component}/facewatch/{camera}_{entity}/config"
        for camera in ("door", "yard")
        for component, entity in (("sensor", "last_name"), ("binary_sensor", "recognised"),
                                  ("binary_sensor", "unknown_face"), ("image", "last_face"))}
    for topic in expected:
        ha.wait_for(topic)  # retained
    sensor = json.loads(ha.on("homeassistant/sensor/facewatch/door_last_name/config")[0])
    assert sensor["state_topic"] == "facewatch/door/face.recognized"
    assert sensor["availability"] == [{"topic": "facewatch/available", "payload_available": "online",
                                       "payload_not_available": "offline"}]
    assert sensor["value_template"] == "{{ value_json.name }}"
    binary = json.loads(ha.on("homeassistant/binary_sensor/facewatch/door_recognised/config")[0])
    assert binary["off_delay"] > 0 and binary["state_topic"] == sensor["state_topic"]
    # Home Assistant restarting announces itself; the configs are sent again.
    before = len(ha.on("homeassistant/sensor/facewatch/door_last_name/config"))
    ha.client.publish("homeassistant/status", "online", qos=1)
    ha.wait_for("homeassistant/sensor/facewatch/door_last_name/config", count=before + 1)


# -- everything from a config ----------------------------------------------------------------------

def test_build_publishers_from_a_resolved_config(tmp_path: Path, mosquitto: Mosquitto,
                                                 zmq_sub: SubFactory,
                                                 subscribers: list[Subscriber]) -> None:
    text = (f"cameras: [{{name: door, url: rtsp://127.0.0.1/door}}]\ngallery: g.yaml\n"
            f"outputs:\n  zmq: {{bind: 'tcp://127.0.0.1:*'}}\n"
            f"  mqtt: {{host: 127.0.0.1, port: {mosquitto.port}}}\n  jsonl: out/events.jsonl\n")
    config = parse_config(text, tmp_path / "config.yaml", environ={})
    with pytest.raises(ValueError, match="resolved"):
        build_publishers(config)
    acked: list[str] = []
    built = build_publishers(resolve(config, environ={}), on_ack=acked.append)
    assert [p.name for p in built] == ["zmq", "mqtt", "jsonl"]
    live = Subscriber(mosquitto)
    subscribers.append(live)
    fanout = Fanout(built)
    publish = stamped_sender(fanout)
    fanout.start()
    try:
        zmq_pub = built[0]
        assert isinstance(zmq_pub, ZmqPublisher)
        sub = zmq_sub(zmq_pub.endpoint, b"")
        while not sub.poll(20):
            publish(status())
        event = publish(recognized())
        frames = drain(sub)
        assert frames[-1] == [b"face.recognized/door", json.dumps(to_dict(event), separators=(",", ":"),
                                                                 ensure_ascii=False).encode()]
        assert from_json(live.wait_for("facewatch/door/face.recognized")[-1]) == event
        wait_until(lambda: event.event_id in acked, what="the MQTT ack")
    finally:
        fanout.stop()
    lines = (tmp_path / "out" / "events.jsonl").read_bytes().splitlines()
    assert from_json(lines[-1]) == event
    assert [from_json(x).seq for x in lines] == list(range(1, len(lines) + 1))


# -- facewatch tail ---------------------------------------------------------------------------------

def run_tail(args: list[str], feed: Callable[[], object],
             timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run `facewatch tail ARGS`, calling `feed` (which publishes) until it exits."""
    process = subprocess.Popen([sys.executable, "-m", "facewatch", "tail", *args], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout_s
    try:
        while process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError("facewatch tail did not finish")
            feed()
            time.sleep(0.05)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
        process.wait(10)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_tail_zmq_json_filters_and_counts(publishers: list[Any]) -> None:
    publisher = ZmqPublisher("tcp://127.0.0.1:*")
    publishers.append(publisher)
    fanout = Fanout([publisher])
    publish = stamped_sender(fanout)
    fanout.start()

    def feed() -> None:
        for e in (status("door"), recognized("door2"), recognized("door"), started("door")):
            publish(e)

    result = run_tail(["--zmq", publisher.endpoint, "--type", "face.recognized", "--camera", "door",
                       "--count", "2", "--json"], feed)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # exactly one JSON document
    assert isinstance(document, list) and len(document) == 2
    assert {(e["type"], e["camera"]) for e in document} == {("face.recognized", "door")}
    assert document[0]["seq"] < document[1]["seq"]


def test_tail_zmq_human_lines(publishers: list[Any]) -> None:
    publisher = ZmqPublisher("tcp://127.0.0.1:*")
    publishers.append(publisher)
    fanout = Fanout([publisher])
    publish = stamped_sender(fanout)
    fanout.start()
    result = run_tail(["--zmq", publisher.endpoint, "--count", "4"],
                      lambda: [publish(e) for e in (recognized(), ended(),
                                                           status("yard", "offline", "eof"))])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    assert any("face.recognized" in x and "Ada Lovelace (ada), similarity 0.710" in x for x in lines)
    assert any("track.ended" in x and "ended after 3.5 s: Ada Lovelace (ada)" in x for x in lines)
    assert any("yard" in x and "camera.status" in x and "offline: eof" in x for x in lines)


def test_tail_mqtt_and_timeout(mosquitto: Mosquitto, publishers: list[Any]) -> None:
    publisher = MqttPublisher(mqtt_settings(mosquitto), ["door"])
    publishers.append(publisher)
    fanout = Fanout([publisher])
    publish = stamped_sender(fanout)
    fanout.start()
    assert publisher.wait_connected(TIMEOUT_S)
    result = run_tail(["--mqtt", f"127.0.0.1:{mosquitto.port}", "--type", "track.ended", "--count", "1",
                       "--json"], lambda: [publish(e) for e in (recognized(), ended())])
    assert result.returncode == 0, result.stderr
    [event] = json.loads(result.stdout)
    assert event["type"] == "track.ended" and event["identity"] == "ada"

    # Nothing arrives: --timeout ends it, with an empty array and a non-zero code for --count.
    quiet = run_tail(["--mqtt", f"127.0.0.1:{mosquitto.port}", "--camera", "nowhere", "--count", "1",
                      "--timeout", "0.5", "--json"], lambda: None)
    assert quiet.returncode == 1 and json.loads(quiet.stdout) == []
    assert "stopped after 0 of 1 events" in quiet.stderr


def test_tail_unreachable_broker_is_one_error_line() -> None:
    port = free_port()
    result = subprocess.run([sys.executable, "-m", "facewatch", "tail", "--mqtt", f"127.0.0.1:{port}",
                             "--json"],
                            cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"facewatch: error: cannot connect to MQTT broker 127.0.0.1:{port}: Connection refused"]
    assert json.loads(result.stdout)["exit_code"] == 1
