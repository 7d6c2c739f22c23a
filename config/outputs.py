"""`outputs:` — where events go: a ZeroMQ PUB socket, an MQTT broker, a JSON-lines file.

    outputs:
      zmq: {bind: "tcp://127.0.0.1:5556"}   # the default; `zmq: false` turns it off
      mqtt: {host: 127.0.0.1}               # optional, see facewatch.config.mqtt
      jsonl: /var/lib/facewatch/events.jsonl  # optional

ZeroMQ can be encrypted and authenticated with CURVE (keys from `facewatch zmq keygen DIR`):

      zmq:
        bind: "tcp://0.0.0.0:5556"
        allow_remote: true
        curve:
          secret_key_file: /etc/facewatch/zmq/server.key_secret   # the PUB socket's key pair
          authorized_keys: /etc/facewatch/zmq/clients             # optional: *.key of allowed clients
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import Field, field_validator, model_validator

from facewatch.config.base import ConfigPath, Section, located_error
from facewatch.config.mqtt import MqttOutput

DEFAULT_ZMQ_BIND = "tcp://127.0.0.1:5556"

_REMOTE_BIND_WHY = (
    "would publish events to the network: events name people, and without curve a ZeroMQ PUB "
    "socket has neither authentication nor encryption, so anyone who can reach the port can "
    "subscribe. Bind to 127.0.0.1 (and reach it over SSH, or use MQTT with TLS and a password), "
    "or set curve (with authorized_keys) and allow_remote: true")


def parse_zmq_bind(endpoint: str) -> tuple[str, str, str]:
    """("tcp", host, port) or ("ipc", path, ""); raises ValueError with a one-line reason."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        raise ValueError("expected tcp://HOST:PORT or ipc:///path/to/socket")
    if scheme == "ipc":
        if not rest or rest == "@":
            raise ValueError("ipc:// needs a socket path, e.g. ipc:///run/facewatch/events.sock")
        return scheme, rest, ""
    if scheme != "tcp":
        raise ValueError(f"unsupported transport {scheme!r}: use tcp:// or ipc://")
    host, colon, port = rest.rpartition(":")
    if not colon or not host:
        raise ValueError("expected tcp://HOST:PORT, e.g. tcp://127.0.0.1:5556")
    if port != "*" and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"port {port!r} is not 1-65535 (or * for any free port)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or any(ch.isspace() or ch in "/[]" for ch in host):
        raise ValueError("expected tcp://HOST:PORT, e.g. tcp://127.0.0.1:5556")
    return scheme, host, port


def check_bind_address(value: str) -> str:
    """A listening address for an HTTP endpoint: an IP address or localhost (a field
    validator's body: raises the located error)."""
    if value == "localhost":
        return value
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise located_error((), f"{value!r} is not an IP address (use e.g. 127.0.0.1, :: or "
                                f"0.0.0.0)") from None
    return value


def is_loopback_host(host: str) -> bool:
    if host in ("localhost", "lo"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # `*`, an interface name such as eth0, or a host name


class ZmqCurve(Section):
    secret_key_file: ConfigPath = Field(
        description="The PUB socket's CURVE key pair: a ZeroMQ certificate file holding public-key "
                    "and secret-key, as `facewatch zmq keygen` writes it (server.key_secret, mode "
                    "0600).  Keys are read from files only, never written in the config.  Clients "
                    "need the matching public key (server.key).")
    authorized_keys: ConfigPath | None = Field(
        default=None,
        description="Folder of the public keys (*.key) of the clients allowed to subscribe; "
                    "others are refused.  Default: any client that has the server's public key "
                    "(encrypted, but not authenticated).")


class ZmqOutput(Section):
    bind: str = Field(
        default=DEFAULT_ZMQ_BIND,
        description="Endpoint of the PUB socket: tcp://HOST:PORT (port * picks a free one) or "
                    "ipc:///path.  Non-loopback addresses need allow_remote.")
    allow_remote: bool = Field(
        default=False, description="Allow binding a non-loopback address (events become readable by "
                           "anyone who can reach the port).")
    send_hwm: int = Field(
        default=10_000, ge=1, le=10_000_000,
        description="Messages queued per slow subscriber before ZeroMQ drops for that subscriber.")
    curve: ZmqCurve | None = Field(
        default=None,
        description="Encrypt with ZeroMQ CURVE (the PUB socket is the CURVE server), and with "
                    "authorized_keys, accept only the clients listed; off by default.")

    @field_validator("bind")
    @classmethod
    def _check_bind(cls, value: str) -> str:
        try:
            parse_zmq_bind(value)
        except ValueError as exc:
            raise located_error((), f"{value!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _check_remote(self) -> ZmqOutput:
        scheme, host, _port = parse_zmq_bind(self.bind)
        if scheme == "tcp" and not self.allow_remote and not is_loopback_host(host):
            raise located_error(("bind",), f"{self.bind} {_REMOTE_BIND_WHY}")
        return self


class JsonlOutput(Section):
    path: ConfigPath = Field(
        description="File events are appended to, one JSON object per line (created 0600, its "
                    "folder 0700); reopened when logrotate moves it away.")


class OutputsConfig(Section):
    zmq: ZmqOutput | None = Field(
        default_factory=ZmqOutput,
        description=f"ZeroMQ PUB socket, on by default at {DEFAULT_ZMQ_BIND}; false turns it off.")
    mqtt: MqttOutput | None = Field(default=None, description="MQTT broker; off unless given.")
    jsonl: JsonlOutput | None = Field(
        default=None, description="JSON-lines file: a path, or {path: ...}; off unless given.")

    @field_validator("zmq", mode="before")
    @classmethod
    def _zmq_switch(cls, value: Any) -> Any:
        # An empty `zmq:` means "the defaults", not "off": only an explicit false turns it off.
        if value is False:
            return None
        return {} if value is None or value is True else value

    @field_validator("mqtt", mode="before")
    @classmethod
    def _mqtt_switch(cls, value: Any) -> Any:
        return None if value is False else value

    @field_validator("jsonl", mode="before")
    @classmethod
    def _jsonl_shorthand(cls, value: Any) -> Any:
        if value is False:
            return None
        return {"path": value} if isinstance(value, str) else value
