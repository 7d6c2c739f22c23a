"""The daemon as a user runs it, for end-to-end tests: `facewatch run --config FILE` in a
subprocess, and consumers that record what it publishes on ZeroMQ and MQTT.

    daemon = DaemonProcess(config_file, models_dir, tmp_path)
    zmq_events = ZmqEvents(endpoint)     # before the daemon starts: PUB keeps no history
    zmq_events.follow(daemon)            # a wait fails at once, with the log, if it exits
    mqtt = MqttEvents(broker, "facewatch/#")
    daemon.start()
    first = zmq_events.wait_for(recognized("ada"), 90, "Ada recognised")
    daemon.terminate()
    assert daemon.wait(10) == 0

Waits are generous (a loaded 2-core machine decodes, detects and embeds on the same cores as
the test) and only bound how long a test may hang: tests assert on what was published, never
on how fast.  Speed is measured by `facewatch bench`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import paho.mqtt.client as mqtt
import yaml
import zmq
from paho.mqtt.enums import CallbackAPIVersion

from facewatch.events import CameraStatus, Event, FaceRecognized, from_json
from tests.support.mosquitto import Mosquitto, free_port

_REPO = Path(__file__).resolve().parents[2]

Predicate = Callable[[Event], bool]


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str,
               diagnostics: Callable[[], str] | None = None,
               gone: Callable[[], str | None] | None = None) -> None:
    """Poll `condition` until it holds; AssertionError after `timeout_s`, or as soon as `gone`
    says why it never will (e.g. the daemon has exited), after a last look."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        why = gone() if gone is not None else None
        if why is not None:
            time.sleep(1.0)  # what was already on its way
            if condition():
                return
        if why is not None or time.monotonic() > deadline:
            extra = f"\n{diagnostics()}" if diagnostics is not None else ""
            reason = why or f"timed out after {timeout_s:g} s"
            raise AssertionError(f"{reason} waiting for {what}{extra}")
        time.sleep(0.05)


def write_yaml(path: Path, data: dict[str, Any], header: str = "") -> Path:
    """`data` as YAML, after `header` (comments), replacing the file in one rename so that a
    polling reader never sees it half written.  A daemon config gets an API port of its own
    (see `own_api_port`), kept in `data` so that rewriting it keeps the same port."""
    if "cameras" in data and "api" not in data:
        data["api"] = {"port": free_port()}
    text = header + yaml.safe_dump(data, sort_keys=False)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


# -- the daemon ---------------------------------------------------------------------------------


class DaemonProcess:
    """`python -m facewatch run --config FILE`, its stderr kept in a log file."""

    def __init__(self, config: Path, models_dir: Path, log_dir: Path) -> None:
        self.config = config
        self.models_dir = models_dir
        self.log_path = log_dir / f"daemon-{config.stem}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the daemon is not started")
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process is not None else None

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("the daemon is already started")
        own_api_port(self.config)
        env = {**os.environ, "FACEWATCH_MODELS": str(self.models_dir), "PYTHONUNBUFFERED": "1"}
        # systemd's variables would change where the daemon writes and whom it notifies
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "STATE_DIRECTORY",
                     "RUNTIME_DIRECTORY", "CREDENTIALS_DIRECTORY"):
            env.pop(name, None)
        with self.log_path.open("ab") as log:
            # its own process group, so that stop() can end every process of it
            self._process = subprocess.Popen(
                [sys.executable, "-m", "facewatch", "run", "--config", str(self.config)],
                cwd=_REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)

    def send(self, signum: int) -> None:
        if self._process is None:
            raise RuntimeError("the daemon is not started")
        self._process.send_signal(signum)

    def send_to_group(self, signum: int) -> None:
        """Signal the daemon and all its children at once, as systemd's default
        KillMode=control-group and `timeout` do (the daemon leads its own session)."""
        if self._process is None:
            raise RuntimeError("the daemon is not started")
        os.killpg(self._process.pid, signum)

    def terminate(self) -> None:
        self.send(signal.SIGTERM)

    def wait(self, timeout_s: float) -> int:
        """The exit code; raises AssertionError (with the log's tail) if still running."""
        if self._process is None:
            raise RuntimeError("the daemon is not started")
        try:
            return self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the daemon did not exit within {timeout_s:g} s:\n"
                                 f"{self.log_tail()}") from None

    def children(self) -> list[int]:
        """Process ids of every live process below the daemon's main process (the
        supervisor): its children, and theirs -- the cameras' source processes are forked by
        a server the supervisor starts (see facewatch.processes.child)."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces and parentheses
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
        out, todo = [], [self.pid]
        while todo:
            parent = todo.pop()
            below = [pid for pid, ppid in parents.items() if ppid == parent]
            out += below
            todo += below
        return out

    def child(self, role: str) -> int | None:
        """The pid of the child process playing `role` ("inference", "publisher",
        "source:door"), from the name it gives itself (`fw.<role>`, cut to the kernel's 15
        characters; see facewatch.processes.child)."""
        comm = f"fw.{role}"[:15]
        for pid in self.children():
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == comm:
                    return pid
            except OSError:
                continue
        return None

    @staticmethod
    def running(pid: int) -> bool:
        """Whether `pid` is a live process (a zombie nobody has reaped yet counts as ended)."""
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"

    def stop(self) -> None:
        """End it whatever state it is in: SIGTERM, then SIGKILL to its whole process group
        (children included, should the supervisor itself be gone)."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        process.wait(10)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def gone(self) -> str | None:
        """Why no more events will come, if the daemon has exited; else None."""
        code = self.returncode
        if code is None:
            return None
        return f"the daemon exited with code {code}, log {self.log_path}:\n{self.log_tail()}\n"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, _type: type[BaseException] | None, _value: BaseException | None,
                 _traceback: TracebackType | None) -> None:
        self.stop()


def own_api_port(config: Path) -> None:
    """Tests run several daemons at once: each config without an `api:` section gets a free
    port for its API (appended, so the lines of everything else stay where they were)."""
    try:
        data = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError):
        return  # a broken config is what the test is about
    if isinstance(data, dict) and "cameras" in data and "api" not in data:
        with config.open("a") as f:
            f.write(f"\napi: {{port: {free_port()}}}\n")


def run_once(config: Path, models_dir: Path, timeout_s: float = 60.0
             ) -> subprocess.CompletedProcess[str]:
    """`facewatch run` to completion, for configs that must make it exit by itself."""
    own_api_port(config)
    env = {**os.environ, "FACEWATCH_MODELS": str(models_dir)}
    env.pop("NOTIFY_SOCKET", None)
    return subprocess.run([sys.executable, "-m", "facewatch", "run", "--config", str(config)],
                          cwd=_REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout_s, check=False)


# -- consumers ------------------------------------------------------------------------------------


class EventLog:
    """Events in arrival order, appended by a receiving thread, read by the test."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._daemon: DaemonProcess | None = None

    def follow(self, daemon: DaemonProcess) -> None:
        """Waits end at once, with the daemon's log, if `daemon` exits before they are met."""
        self._daemon = daemon

    def _append(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def mark(self) -> int:
        """A position to look after (`since=`), e.g. before restarting a camera."""
        with self._lock:
            return len(self._events)

    def matching(self, predicate: Predicate, since: int = 0) -> list[Event]:
        return [e for e in self.events[since:] if predicate(e)]

    def wait_for(self, predicate: Predicate, timeout_s: float, what: str, since: int = 0) -> Event:
        """The first event after `since` that matches; AssertionError after `timeout_s`."""
        found: list[Event] = []

        def seen() -> bool:
            found[:] = self.matching(predicate, since)
            return bool(found)

        wait_until(seen, timeout_s, f"{what} on {self.name}", self.summary,
                   self._daemon.gone if self._daemon is not None else None)
        return found[0]

    def summary(self, last: int = 40) -> str:
        lines = [describe(e) for e in self.events[-last:]]
        return f"last {len(lines)} events on {self.name}:\n  " + "\n  ".join(lines)


def describe(event: Event) -> str:
    """One line per event, for failure messages."""
    parts = [f"#{event.seq}", event.type, event.camera]
    for name in ("track_id", "identity", "state", "reason", "score", "bbox"):
        value = getattr(event, name, None)
        if value is not None and value != "":
            parts.append(f"{name}={value}")
    return " ".join(str(p) for p in parts)


class ZmqEvents(EventLog):
    """A SUB socket on the daemon's PUB endpoint, subscribed to everything, read in a thread."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(f"ZeroMQ {endpoint}")
        self.topics: list[bytes] = []
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RCVTIMEO, 100)
        self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        # ZeroMQ connects before the daemon binds and keeps retrying, so nothing published
        # after the daemon's socket is up is missed.
        self._socket.connect(endpoint)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zmq-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                topic, payload = self._socket.recv_multipart()
            except zmq.Again:
                continue
            self.topics.append(topic)
            self._append(from_json(payload))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close(0)
        self._context.term()


@dataclass(frozen=True)
class MqttMessage:
    topic: str
    payload: bytes
    retain: bool
    received_at: float = field(default=0.0, compare=False)  # time.time() when it arrived


class MqttEvents(EventLog):
    """An MQTT consumer (QoS 1): every message kept; the events from `<prefix>/events`.

    With `session` (a client id) it keeps a persistent session (clean_session=False): while it
    is disconnected the broker queues what it would have received -- across a broker restart
    too, when the broker persists its state (`Mosquitto(persistence=True)`) -- and it
    reconnects within about a second of the broker coming back."""

    def __init__(self, broker: Mosquitto, topic: str = "facewatch/#", prefix: str = "facewatch",
                 timeout_s: float = 10.0, session: str | None = None) -> None:
        super().__init__(f"MQTT {broker.host}:{broker.port}")
        self.prefix = prefix
        self._messages: list[MqttMessage] = []
        subscribed = threading.Event()
        if session is None:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        else:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=session,
                                      clean_session=False)
            self.client.reconnect_delay_set(min_delay=1, max_delay=1)
            # the session keeps the subscription; subscribing again on every reconnection
            # covers a broker that lost it
            self.client.on_connect = lambda client, *_args: client.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_args: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        if session is None:
            self.client.subscribe(topic, qos=1)
        if not subscribed.wait(timeout_s):
            self.close()
            raise AssertionError(f"no SUBACK from the broker at {broker.host}:{broker.port}")

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        record = MqttMessage(message.topic, bytes(message.payload), bool(message.retain), time.time())
        with self._lock:
            self._messages.append(record)
        if record.topic == f"{self.prefix}/events":
            self._append(from_json(record.payload))

    def messages(self, topic: str) -> list[MqttMessage]:
        with self._lock:
            return [m for m in self._messages if m.topic == topic]

    def messages_under(self, prefix: str) -> list[MqttMessage]:
        """Every message on a topic that starts with `prefix`, in arrival order."""
        with self._lock:
            return [m for m in self._messages if m.topic.startswith(prefix)]

    def wait_for_message(self, topic: str, predicate: Callable[[MqttMessage], bool],
                         timeout_s: float, what: str) -> MqttMessage:
        found: list[MqttMessage] = []

        def seen() -> bool:
            found[:] = [m for m in self.messages(topic) if predicate(m)]
            return bool(found)

        wait_until(seen, timeout_s, f"{what} on {topic}",
                   lambda: f"messages on {topic}: {[m.payload[:120] for m in self.messages(topic)]}")
        return found[0]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def scrape(port: int) -> dict[str, float]:
    """The daemon's Prometheus endpoint as {"name{labels}": value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def metrics_up(port: int) -> bool:
    """Whether the daemon's Prometheus endpoint answers (it starts with the supervisor)."""
    try:
        scrape(port)
    except OSError:
        return False
    return True


def metric_sum(port: int, name: str, **labels: str) -> float:
    """The sum of every series of `name` whose labels include `labels`; 0 before its first
    sample."""
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    total = 0.0
    for key, value in scrape(port).items():
        series, _, rest = key.partition("{")
        if series == name and all(w in rest for w in wanted):
            total += value
    return total


def status_state(message: MqttMessage) -> str:
    """The camera state in a `<prefix>/<camera>/status` message."""
    state: str = json.loads(message.payload)["state"]
    return state


# -- reading the events ---------------------------------------------------------------------------


def of_type(*types: str) -> Predicate:
    return lambda e: e.type in types


def recognized(identity: str) -> Predicate:
    return lambda e: isinstance(e, FaceRecognized) and e.identity == identity


def camera_state(state: str, camera: str | None = None) -> Predicate:
    return lambda e: (isinstance(e, CameraStatus) and e.state == state
                      and (camera is None or e.camera == camera))


def unique(events: list[Event]) -> list[Event]:
    """Each event once, at its first arrival, in order (MQTT QoS 1 delivers at least once)."""
    seen: set[str] = set()
    out = []
    for e in events:
        if e.event_id not in seen:
            seen.add(e.event_id)
            out.append(e)
    return out
