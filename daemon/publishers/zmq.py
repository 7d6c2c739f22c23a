"""ZeroMQ PUB socket: every event as two frames, [topic, JSON].

The topic frame is `<type>/<camera>` in UTF-8, e.g. `face.recognized/door`.  ZeroMQ filters
subscriptions by byte prefix, so:

    SUBSCRIBE ""                      every event
    SUBSCRIBE "face.recognized"       recognitions from every camera
    SUBSCRIBE "track."                track.started and track.ended
    SUBSCRIBE "face.recognized/door"  recognitions from door -- and from door2, door-back, ...:
                                      compare the topic frame (or `camera`) for an exact match

The second frame is the event's JSON (`facewatch.events.to_json`).  PUB never blocks: a
subscriber that falls `send_hwm` messages behind loses messages, and a subscriber that connects
late misses what came before (use MQTT or the JSON-lines file for history).

CURVE (`outputs.zmq.curve`): the PUB socket is a CURVE server with the key pair in
`secret_key_file`; traffic is encrypted, and a client must know the server's public key to
connect at all.  With `authorized_keys`, a ZAP handler in this process also checks the client's
public key against the `*.key` files in that folder, so only those clients may subscribe.
Keys are ZeroMQ certificate files (`facewatch zmq keygen DIR` writes `NAME.key`, the public key
to hand out, and `NAME.key_secret`, 0600, the pair to keep).
"""

from __future__ import annotations

import datetime
import logging
import os
from pathlib import Path
from typing import Any

import zmq
import zmq.auth

from facewatch.config.outputs import ZmqCurve
from facewatch.events import Event, to_json
from facewatch.publishers.base import PublisherError

log = logging.getLogger(__name__)

_Z85_KEY_LENGTH = 40
_ZAP_DOMAIN = "facewatch"


class CurveKeyError(ValueError):
    """A CURVE key file that cannot be used; `field` is the config key that names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _read_certificate(path: Path, field: str) -> tuple[bytes, bytes | None]:
    try:
        public, secret = zmq.auth.load_certificate(path)
    except OSError as exc:
        raise CurveKeyError(field, f"{path}: {exc.strerror or 'no such file'}") from None
    except (ValueError, UnicodeDecodeError):
        raise CurveKeyError(field, f"{path}: not a ZeroMQ certificate (no public-key line); "
                                   f"write one with `facewatch zmq keygen`") from None
    for name, key in (("public-key", public), ("secret-key", secret)):
        if key is not None and not _is_z85_key(key):
            raise CurveKeyError(field, f"{path}: its {name} is not a 40-character Z85 CURVE key")
    return public, secret


def _is_z85_key(key: bytes) -> bool:
    if len(key) != _Z85_KEY_LENGTH:
        return False
    try:
        zmq.utils.z85.decode(key)
    except (ValueError, KeyError):
        return False
    return True


def load_keypair(path: Path, field: str = "secret_key_file") -> tuple[bytes, bytes]:
    """(public, secret) Z85 keys from a certificate file that holds both."""
    public, secret = _read_certificate(path, field)
    if secret is None:
        raise CurveKeyError(field, f"{path} holds only a public key; give the .key_secret file "
                                   f"written with it")
    return public, secret


def load_public_key(path: Path, field: str = "server key") -> bytes:
    """The public key in a certificate file (`NAME.key` or `NAME.key_secret`)."""
    return _read_certificate(path, field)[0]


def load_authorized_keys(folder: Path, field: str = "authorized_keys") -> set[bytes]:
    """The public keys of the `*.key` files in `folder`; at least one."""
    if not folder.is_dir():
        raise CurveKeyError(field, f"{folder}: not a folder of client public keys (*.key)")
    keys = {load_public_key(path, field) for path in sorted(folder.glob("*.key"))}
    if not keys:
        raise CurveKeyError(field, f"{folder} holds no *.key file, so no client could subscribe")
    return keys


def write_keypair(folder: Path, name: str) -> tuple[Path, Path]:
    """A new CURVE key pair as `folder/NAME.key` (public, 0644) and `NAME.key_secret` (0600).

    The folder is created 0700 when missing; existing files are never overwritten.
    """
    public, secret = zmq.curve_keypair()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    banner = (f"#   ZeroMQ CURVE certificate written by facewatch zmq keygen, {stamp}\n"
              f"#   Z85 keys; see facewatch.publishers.zmq\n")
    body = f'metadata\ncurve\n    public-key = "{public.decode()}"\n'
    public_path, secret_path = folder / f"{name}.key", folder / f"{name}.key_secret"
    for path, text, mode in (
            (secret_path, banner + body + f'    secret-key = "{secret.decode()}"\n', 0o600),
            (public_path, banner + body, 0o644)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)  # the umask may have taken bits away; never added any
            f.write(text)
    return public_path, secret_path


def _reason(exc: zmq.ZMQError) -> str:
    # pyzmq's own message appends the address; the C library's is the plain reason.
    return zmq.strerror(exc.errno) if exc.errno else str(exc)


def topic_of(event: Event) -> bytes:
    return f"{event.type}/{event.camera}".encode()


class ZmqPublisher:
    name = "zmq"
    acknowledges = False

    def __init__(self, bind: str = "tcp://127.0.0.1:5556", *, send_hwm: int = 10_000,
                 linger_ms: int = 500, curve: ZmqCurve | None = None) -> None:
        """`curve` should come from a resolved config (absolute paths)."""
        self.bind = bind
        self.send_hwm = send_hwm
        self.linger_ms = linger_ms
        self.curve = curve
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._socket: zmq.Socket[bytes] | None = None
        self._endpoint: str | None = None
        self._authenticator: Any = None

    @property
    def endpoint(self) -> str:
        """The bound endpoint, with the real port when the config said `*`."""
        if self._endpoint is None:
            raise RuntimeError("the ZeroMQ publisher is not started")
        return self._endpoint

    def start(self) -> None:
        if self._socket is not None:
            return
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()  # our own: no global instance
        socket = context.socket(zmq.PUB)
        socket.setsockopt(zmq.SNDHWM, self.send_hwm)
        socket.setsockopt(zmq.LINGER, self.linger_ms)
        if self.bind.startswith("tcp://[") or self.bind.count(":") > 2:
            socket.setsockopt(zmq.IPV6, 1)
        try:
            if self.curve is not None:
                self._secure(context, socket, self.curve)
            socket.bind(self.bind)
        except (zmq.ZMQError, CurveKeyError) as exc:
            socket.close(0)
            self._stop_authenticator()
            context.term()
            if isinstance(exc, CurveKeyError):
                raise PublisherError(f"outputs.zmq.curve.{exc.field}: {exc}") from None
            raise PublisherError(f"outputs.zmq.bind {self.bind}: cannot bind ({_reason(exc)})") from None
        self._context, self._socket = context, socket
        self._endpoint = socket.getsockopt_string(zmq.LAST_ENDPOINT)
        secured = ""
        if self.curve is not None:
            secured = " with CURVE" + (f", clients from {self.curve.authorized_keys}"
                                       if self.curve.authorized_keys else "")
        log.info("publishing events on ZeroMQ %s%s", self._endpoint, secured)

    def _secure(self, context: zmq.Context[Any], socket: zmq.Socket[bytes], curve: ZmqCurve) -> None:
        public, secret = load_keypair(Path(curve.secret_key_file))
        if curve.authorized_keys is not None:
            from zmq.auth.thread import ThreadAuthenticator

            keys = load_authorized_keys(Path(curve.authorized_keys))
            # ZAP: libzmq asks this thread about every CURVE handshake; it answers from the
            # public keys loaded here.  Without a handler, any client with the server key is in.
            self._authenticator = ThreadAuthenticator(context, log=logging.getLogger(f"{__name__}.auth"))
            self._authenticator.start()
            self._authenticator.certs[_ZAP_DOMAIN] = {key: True for key in keys}
            socket.setsockopt(zmq.ZAP_DOMAIN, _ZAP_DOMAIN.encode())
        socket.setsockopt(zmq.CURVE_SERVER, 1)
        socket.setsockopt(zmq.CURVE_PUBLICKEY, public)
        socket.setsockopt(zmq.CURVE_SECRETKEY, secret)

    def _stop_authenticator(self) -> None:
        authenticator, self._authenticator = self._authenticator, None
        if authenticator is not None:
            authenticator.stop()

    def publish(self, event: Event) -> None:
        if self._socket is None:
            raise PublisherError("the ZeroMQ publisher is not started")
        try:
            self._socket.send_multipart([topic_of(event), to_json(event)], flags=zmq.NOBLOCK)
        except zmq.Again:
            # PUB drops at the high-water mark instead of raising; this is only defensive.
            raise PublisherError("ZeroMQ send queue full: event dropped") from None
        except zmq.ZMQError as exc:
            raise PublisherError(f"ZeroMQ send failed: {_reason(exc)}") from None

    def stop(self) -> None:
        socket, context = self._socket, self._context
        self._socket = self._context = None
        if socket is not None:
            socket.close(self.linger_ms)
        self._stop_authenticator()
        if context is not None:
            context.term()
