"""`facewatch tail`: print the live events of a running daemon, from ZeroMQ or MQTT."""

from __future__ import annotations

import argparse
import os
import queue
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facewatch.cli.common import without_options
from facewatch.cli.output import json_text, say, warn
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
    # Only the common options that apply here: this command loads no models.
    common = without_options(common, "--models", "--threads")
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
    t.add_argument("--curve-server-key", type=Path, metavar="FILE",
                   help="ZeroMQ CURVE: the daemon's public key (server.key from `facewatch zmq "
                        "keygen`); encrypts, and is needed when the daemon sets outputs.zmq.curve")
    t.add_argument("--curve-client-key", type=Path, metavar="FILE",
                   help="ZeroMQ CURVE: this client's key pair (NAME.key_secret), for a daemon "
                        "that only admits authorized_keys; default: a new key pair per run")
    t.set_defaults(handler=_tail)


class _ZmqSource:
    def __init__(self, url: str, types: list[str] | None, cameras: list[str] | None,
                 server_key: Path | None = None, client_key: Path | None = None) -> None:
        import zmq

        self._zmq = zmq
        curve = _curve_keys(server_key, client_key)
        self._context: Any = zmq.Context()
        self._socket: Any = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            server_public, public, secret = curve
            self._socket.setsockopt(zmq.CURVE_SERVERKEY, server_public)
            self._socket.setsockopt(zmq.CURVE_PUBLICKEY, public)
            self._socket.setsockopt(zmq.CURVE_SECRETKEY, secret)
        self._url, self._curve, self._warned = url, curve is not None, False
        self._monitor: Any = self._socket.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
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
        ready = dict(self._poller.poll(int(timeout_s * 1000)))
        if self._monitor in ready:
            self._handshake_failed(self._monitor.recv_multipart())
        if self._socket not in ready:
            return None
        frames = self._socket.recv_multipart()
        return frames[-1] if len(frames) >= 2 else None

    def _handshake_failed(self, message: list[bytes]) -> None:
        """Say once why nothing arrives: a SUB socket whose handshake fails just waits forever."""
        from zmq.utils.monitor import parse_monitor_message

        event = parse_monitor_message(message)["event"]
        if self._warned:
            return
        self._warned = True
        zmq = self._zmq
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            why = "the daemon refused this client's CURVE key (is its .key in authorized_keys?)"
        elif self._curve:
            why = ("the CURVE handshake failed: is --curve-server-key the daemon's public key, "
                   "and does the daemon use CURVE?")
        else:
            why = "the handshake failed: the daemon may require CURVE (give --curve-server-key)"
        warn(f"--zmq {self._url}: {why}; retrying")

    def close(self) -> None:
        self._socket.disable_monitor()
        self._monitor.close(0)
        self._socket.close(0)
        self._context.term()


def _curve_keys(server_key: Path | None, client_key: Path | None
                ) -> tuple[bytes, bytes, bytes] | None:
    """(server public, client public, client secret) for a CURVE client, or None without CURVE."""
    if server_key is None:
        if client_key is not None:
            raise BadInputError("--curve-client-key needs --curve-server-key")
        return None
    import zmq

    from facewatch.publishers.zmq import CurveKeyError, load_keypair, load_public_key

    try:
        server_public = load_public_key(server_key, "--curve-server-key")
        public, secret = (load_keypair(client_key, "--curve-client-key") if client_key is not None
                          else zmq.curve_keypair())
    except CurveKeyError as exc:
        raise BadInputError(f"{exc.field}: {exc}") from None
    return server_public, public, secret


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
        else _ZmqSource(args.zmq or DEFAULT_ZMQ, args.types, args.cameras,
                        args.curve_server_key, args.curve_client_key))
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
                say(describe(event))  # names and reasons come from the bus: never raw
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how an open-ended tail ends
    finally:
        source.close()
    if args.json:
        sys.stdout.write(json_text(collected) + "\n")
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
