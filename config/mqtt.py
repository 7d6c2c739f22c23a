"""`outputs.mqtt:` — the MQTT broker events are published to.

The password is a secret: written inline (best as `${MQTT_PASSWORD}`), read from
`password_file`, or, with neither, from `$CREDENTIALS_DIRECTORY/mqtt_password` when systemd
provides it (`LoadCredential=mqtt_password:/etc/facewatch/mqtt.pass`).  Files are read by
`resolve()`, not while validating.
"""

from __future__ import annotations

import re
import ssl
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from facewatch.config.base import ConfigPath, Section, located_error

# systemd credential consulted when neither password nor password_file is given.
MQTT_PASSWORD_CREDENTIAL = "mqtt_password"
DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
# A face at the door is seen for seconds; "home" is a longer thing.  Ten minutes says "just
# seen" without flickering off between two passes in front of a camera.
DEFAULT_PRESENCE_MINUTES = 10.0
_HOST = re.compile(r"^[A-Za-z0-9._:-]{1,253}$")


def check_topic_prefix(value: str) -> str:
    """A topic prefix: levels separated by `/`, no wildcards, no empty level, no leading `$`."""
    if not value or value.startswith(("/", "$")) or value.endswith("/") or "//" in value:
        raise located_error((), "expected topic levels like facewatch or home/facewatch: "
                                "no leading $ or /, no trailing /, no empty level")
    if any(ch in value for ch in "+#\0") or any(ch.isspace() for ch in value):
        raise located_error((), "must not contain +, #, NUL or whitespace")
    return value


class MqttTls(Section):
    ca: ConfigPath | None = Field(
        default=None,
        description="CA certificate file (PEM) to verify the broker; default: the system's CAs.")
    cert: ConfigPath | None = Field(
        default=None, description="Client certificate (PEM), for brokers that require one.")
    key: ConfigPath | None = Field(default=None, description="Private key of the client certificate (PEM).")

    @model_validator(mode="after")
    def _pairs(self) -> MqttTls:
        if (self.cert is None) != (self.key is None):
            missing = "key" if self.key is None else "cert"
            raise located_error((missing,), "cert and key go together: give both or neither")
        return self

    def ssl_context(self) -> ssl.SSLContext:
        """The client's TLS settings: TLS 1.2 or later; the broker's certificate checked against
        `ca` (else the system's CAs) and its host name against the certificate; `cert` and
        `key` presented when given.  Reads the files (use a resolved config: absolute paths);
        raises `TlsFileError` naming the field and the file that cannot be used."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED + check_hostname
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.ca is not None:
            try:
                context.load_verify_locations(cafile=str(self.ca))
            except (OSError, ValueError) as exc:
                raise TlsFileError("ca", f"{self.ca}: cannot load it as PEM CA certificates "
                                         f"({_ssl_reason(exc)})") from None
        else:
            context.load_default_certs()
        if self.cert is not None and self.key is not None:
            for name, path in (("cert", self.cert), ("key", self.key)):
                try:
                    path.open("rb").close()
                except OSError as exc:
                    raise TlsFileError(name, f"{path}: {exc.strerror}") from None
            try:
                context.load_cert_chain(str(self.cert), str(self.key), password=_no_passphrase)
            except (OSError, ValueError) as exc:
                raise TlsFileError("key", f"{self.cert} and {self.key} are not a PEM certificate "
                                          f"and its unencrypted private key "
                                          f"({_ssl_reason(exc)})") from None
        return context


class TlsFileError(ValueError):
    """A TLS file that cannot be used; `field` is `ca`, `cert` or `key`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _no_passphrase() -> str:
    # Without a callback, OpenSSL would prompt on the terminal for an encrypted key.
    raise ValueError("the key is encrypted with a passphrase; give an unencrypted key")


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split())


class MqttOutput(Section):
    host: str = Field(description="Broker host name or IP address (no scheme, no port).")
    port: int = Field(
        default=DEFAULT_PORT, ge=1, le=65535,
        description=f"Broker port; default {DEFAULT_PORT}, or {DEFAULT_TLS_PORT} with tls.")
    username: str | None = Field(
        default=None, min_length=1, description="User name, if the broker requires one.")
    password: SecretStr | None = Field(
        default=None, description="Password (write it as ${ENV_VAR}); never logged.  Empty means not "
                          "given.")
    password_file: ConfigPath | None = Field(
        default=None, description="File holding the password (one line), instead of password.  Without "
                          "either, $CREDENTIALS_DIRECTORY/mqtt_password is used when present.")
    tls: MqttTls | None = Field(
        default=None, description="TLS settings; `tls: true` for TLS with the system's CAs.")
    prefix: str = Field(
        default="facewatch", max_length=200,
        description="Topic prefix: <prefix>/available, <prefix>/events, <prefix>/<camera>/...")
    qos: Literal[0, 1, 2] = Field(
        default=1, description="QoS of events; 1 = at least once, acknowledged by the broker.")
    client_id: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$",
        description="MQTT client id; default facewatch-<hostname>.  Two clients with the same id "
                    "disconnect each other.")
    keepalive: int = Field(default=60, ge=5, le=3600, description="Seconds between keep-alive pings.")
    home_assistant: bool = Field(
        default=False,
        description="Publish Home Assistant MQTT discovery and the states behind it: per camera the "
                    "last recognised name, someone recognised, an unknown face, and an image of the "
                    "last recognised face; per person in the gallery when and where they were last "
                    "seen and whether they are present (seen in the last presence_minutes).")
    discovery_prefix: str = Field(
        default="homeassistant", max_length=200, description="Home Assistant's discovery topic prefix.")
    presence_minutes: float = Field(
        default=DEFAULT_PRESENCE_MINUTES, gt=0, le=7 * 24 * 60,
        description="A person's Home Assistant presence sensor is on while they were seen in the "
                    "last this many minutes (fractions allowed: 0.5 is 30 s).")

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            tls = data.get("tls")
            if tls is True:
                data["tls"] = {}
            elif tls is False:
                data["tls"] = None
            if "port" not in data:
                data["port"] = DEFAULT_TLS_PORT if data.get("tls") is not None else DEFAULT_PORT
        return data

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        if "://" in value:
            raise located_error((), "give the host name only, without a scheme (use tls: for TLS)")
        if not _HOST.fullmatch(value):  # not match: its `$` lets "host\n" through
            raise located_error((), "expected a host name or IP address (IPv6 without brackets)")
        return value

    @field_validator("password", mode="before")
    @classmethod
    def _empty_password(cls, value: Any) -> Any:
        # `password: ${MQTT_PASSWORD:-}` with the variable unset means "not given here", so
        # that $CREDENTIALS_DIRECTORY can supply it instead.
        return None if value == "" else value

    @field_validator("prefix", "discovery_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        return check_topic_prefix(value)

    @model_validator(mode="after")
    def _check_credentials(self) -> MqttOutput:
        if self.password is not None and self.password_file is not None:
            raise located_error(("password_file",), "give password or password_file, not both")
        if self.username is None and (self.password is not None or self.password_file is not None):
            where = "password" if self.password is not None else "password_file"
            raise located_error((where,), "a password needs a username")
        return self

    @property
    def address(self) -> str:
        """host:port, for messages."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
