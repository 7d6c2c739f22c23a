"""`facewatch config check` and `facewatch tail`: the daemon's config and its live events.

`facewatch run` (the daemon itself) lives elsewhere; what it needs from here is exported by
`facewatch.config` (`load_config`, `resolve`), `facewatch.events` and `facewatch.publishers`.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facewatch.cli.output import emit, warn
from facewatch.errors import EXIT_FAILURE, BadInputError, FacewatchError
from facewatch.events import (
    EVENT_TYPES,
    CameraStatus,
    Event,
    EventFormatError,
    FaceRecognized,
    FaceUnknown,
    TrackEnded,
    TrackStarted,
    from_json,
    to_dict,
)

DEFAULT_ZMQ = "tcp://127.0.0.1:5556"
MQTT_PASSWORD_ENV = "FACEWATCH_MQTT_PASSWORD"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    # Only the common options that apply here: these commands load no models.
    common = _without(common, "--models", "--threads")
    c = sub.add_parser("config", help="check a daemon configuration file")
    csub = c.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = csub.add_parser(
        "check", parents=[common],
        help="validate FILE: exit 0 if valid, 3 with `file:line: field: problem` if not")
    check.add_argument("file", type=Path, metavar="FILE")
    check.set_defaults(handler=_check)

    t = sub.add_parser(
        "tail", parents=[common], help="print live events from a running daemon",
        description="Print live events, one line each; with --json, one JSON array of the "
                    "events when it ends (after --count events, --timeout or Ctrl-C).")
    src = t.add_mutually_exclusive_group()
    src.add_argument("--zmq", metavar="URL",
                     help=f"subscribe to this ZeroMQ endpoint (default: {DEFAULT_ZMQ})")
    src.add_argument("--mqtt", metavar="HOST[:PORT]", help="read <prefix>/events from this MQTT broker")
    t.add_argument("--prefix", default="facewatch", help="MQTT topic prefix (default: facewatch)")
    t.add_argument("--username", help=f"MQTT user name; the password is read from ${MQTT_PASSWORD_ENV}")
    t.add_argument("--type", dest="types", action="append", choices=sorted(EVENT_TYPES),
                   metavar="TYPE", help="only this event type (repeatable): "
                                        + ", ".join(sorted(EVENT_TYPES)))
    t.add_argument("--camera", dest="cameras", action="append", metavar="NAME",
                   help="only this camera (repeatable)")
    t.add_argument("--count", type=int, metavar="N", help="stop after N events")
    t.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds")
    t.set_defaults(handler=_tail)


def _without(parent: argparse.ArgumentParser, *options: str) -> argparse.ArgumentParser:
    trimmed = argparse.ArgumentParser(add_help=False)
    for action in parent._actions:
        if not set(action.option_strings) & set(options):
            trimmed._add_action(action)
    return trimmed


# -- config check ---------------------------------------------------------------------------

def _check(args: argparse.Namespace) -> int:
    from facewatch.config import load_config, resolve

    config = resolve(load_config(args.file))
    outputs = config.outputs
    described = []
    if outputs.zmq is not None:
        described.append(f"zmq {outputs.zmq.bind}")
    if outputs.mqtt is not None:
        described.append(f"mqtt {outputs.mqtt.address}")
    if outputs.jsonl is not None:
        described.append(f"jsonl {outputs.jsonl.path}")
    public = config.public_dict()
    cameras = ", ".join(f"{c['name']} ({c['url']})" + ("" if c["enabled"] else " disabled")
                        for c in public["cameras"])
    emit(args.json, {"file": str(args.file), "valid": True, "config": public},
         [f"{args.file}: valid",
          f"  cameras: {cameras}",
          f"  gallery: {config.gallery}",
          f"  outputs: {', '.join(described) or 'none'}",
          f"  state:   {config.state_dir}"])
    return 0


# -- tail -------------------------------------------------------------------------------------

class _ZmqSource:
    def __init__(self, url: str, types: list[str] | None, cameras: list[str] | None) -> None:
        import zmq

        self._zmq = zmq
        self._context: Any = zmq.Context()
        self._socket: Any = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        if url.startswith("tcp://[") or url.count(":") > 2:
            self._socket.setsockopt(zmq.IPV6, 1)
        try:
            self._socket.connect(url)
        except zmq.ZMQError as exc:
            self.close()
            raise BadInputError(f"--zmq {url}: {exc.strerror}") from None
        # Narrow on the publisher's side where the topic allows it; matches are checked exactly
        # afterwards, since ZeroMQ subscriptions are byte prefixes.
        prefixes = [f"{t}/{c}" for t in types for c in cameras] if types and cameras else \
            (list(types) if types else [""])
        for prefix in prefixes:
            self._socket.setsockopt(zmq.SUBSCRIBE, prefix.encode())

    def receive(self, timeout_s: float) -> bytes | None:
        if not self._socket.poll(int(timeout_s * 1000)):
            return None
        frames = self._socket.recv_multipart()
        return frames[-1] if len(frames) >= 2 else None

    def close(self) -> None:
        self._socket.close(0)
        self._context.term()


class _MqttSource:
    def __init__(self, address: str, prefix: str, username: str | None) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        host, port = _host_port(address)
        self._queue: queue.Queue[bytes | Exception] = queue.Queue()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self._client.suppress_exceptions = True
        topic = f"{prefix}/events"

        def on_connect(client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if reason.is_failure:
                self._queue.put(FacewatchError(f"MQTT broker {address} refused the connection: {reason}"))
            else:
                client.subscribe(topic, qos=1)

        def on_message(_c: Any, _u: Any, message: Any) -> None:
            self._queue.put(message.payload)

        self._client.on_connect = on_connect
        self._client.on_message = on_message
        if username:
            self._client.username_pw_set(username, os.environ.get(MQTT_PASSWORD_ENV))
        try:
            self._client.connect(host, port)
        except OSError as exc:
            raise FacewatchError(f"cannot connect to MQTT broker {host}:{port}: "
                                 f"{exc.strerror or exc}") from None
        self._client.loop_start()

    def receive(self, timeout_s: float) -> bytes | None:
        try:
            item = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _host_port(address: str) -> tuple[str, int]:
    host, colon, port = address.rpartition(":")
    if not colon or host.endswith(":"):  # no port, or a bare IPv6 address
        return address.strip("[]"), 1883
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise BadInputError(f"--mqtt {address}: expected HOST or HOST:PORT")
    return host.strip("[]"), int(port)


def _tail(args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 1:
        raise BadInputError(f"--count {args.count}: must be at least 1")
    if args.timeout is not None and args.timeout <= 0:
        raise BadInputError(f"--timeout {args.timeout}: must be > 0")
    source: _ZmqSource | _MqttSource = (
        _MqttSource(args.mqtt, args.prefix, args.username) if args.mqtt
        else _ZmqSource(args.zmq or DEFAULT_ZMQ, args.types, args.cameras))
    deadline = time.monotonic() + args.timeout if args.timeout else None
    collected: list[dict[str, Any]] = []
    seen = 0
    try:
        while args.count is None or seen < args.count:
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                break
            raw = source.receive(wait)
            if raw is None:
                continue
            try:
                event = from_json(raw)
            except EventFormatError as exc:
                warn(f"skipped a message that is not an event: {exc}")
                continue
            if (args.types and event.type not in args.types) or \
                    (args.cameras and event.camera not in args.cameras):
                continue
            seen += 1
            if args.json:
                collected.append(to_dict(event))
            else:
                sys.stdout.write(describe(event) + "\n")
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how an open-ended tail ends
    finally:
        source.close()
    if args.json:
        sys.stdout.write(json.dumps(collected, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    if args.count is not None and seen < args.count:
        warn(f"stopped after {seen} of {args.count} events")
        return EXIT_FAILURE
    return 0


# -- one line per event -------------------------------------------------------------------------

def _track_started(e: TrackStarted) -> str:
    return f"track {e.track_id} started, detector score {e.score:.2f}"


def _recognized(e: FaceRecognized) -> str:
    snapshot = f", snapshot {e.snapshot}" if e.snapshot else ""
    return f"track {e.track_id}: {e.name} ({e.identity}), similarity {e.score:.3f}{snapshot}"


def _unknown(e: FaceUnknown) -> str:
    return f"track {e.track_id}: unknown face, best similarity {e.score:.3f}"


def _track_ended(e: TrackEnded) -> str:
    who = f"{e.name} ({e.identity})" if e.identity else "not recognised"
    return f"track {e.track_id} ended after {e.duration_s:.1f} s: {who}"


def _camera_status(e: CameraStatus) -> str:
    return f"{e.state}" + (f": {e.reason}" if e.reason else "")


_DESCRIBE: dict[type[Event], Callable[[Any], str]] = {
    TrackStarted: _track_started, FaceRecognized: _recognized, FaceUnknown: _unknown,
    TrackEnded: _track_ended, CameraStatus: _camera_status,
}


def describe(event: Event) -> str:
    """`12:00:03.125 door  face.recognized  track 3: Ada Lovelace (ada), similarity 0.712`."""
    clock = time.strftime("%H:%M:%S", time.localtime(event.ts)) + f".{int(event.ts % 1 * 1000):03d}"
    return f"{clock} {event.camera:<10} {event.type:<15} {_DESCRIBE[type(event)](event)}"
