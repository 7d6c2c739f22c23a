"""`api:` — the HTTP API and the review page, served by the daemon's `api` process.

    api:
      enabled: true            # the default
      bind: 127.0.0.1          # loopback by default; anything else needs a token
      port: 8765
      token_file: /etc/facewatch/api.token   # or $CREDENTIALS_DIRECTORY/api_token under systemd

Requests need `Authorization: Bearer <token>` whenever a token is set.  Bound to anything but
loopback, a token is required: the daemon refuses to start without one (exit 3), since the API
shows faces and edits the gallery.  The token is a secret like the MQTT password: read from a
file by `resolve()`, never written in the config, never logged.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from facewatch.config.base import ConfigPath, Section, located_error
from facewatch.config.outputs import check_bind_address

API_TOKEN_CREDENTIAL = "api_token"
# Shortest token accepted: a guessable token on a network port is no protection.
MIN_TOKEN_CHARS = 16


class ApiConfig(Section):
    enabled: bool = Field(default=True, description="Serve the HTTP API and the review page.")
    bind: str = Field(
        default="127.0.0.1",
        description="Address to listen on (an IP address or localhost).  Any other than loopback "
                    "needs a token (token_file).")
    port: int = Field(default=8765, ge=1, le=65535, description="TCP port of the API and the page.")
    token_file: ConfigPath | None = Field(
        default=None,
        description="File holding the bearer token (one line, at least 16 characters); without "
                    "it, $CREDENTIALS_DIRECTORY/api_token when systemd provides it.  Required "
                    "off loopback.")
    token: SecretStr | None = Field(
        default=None, exclude=True,
        description="Set by facewatch from token_file; not written in the config.")
    public_url: str | None = Field(
        default=None, max_length=2000,
        description="The URL the API is reached at from elsewhere (e.g. "
                    "http://nvr.lan:8765); events then carry snapshot_url and crop_url for "
                    "notifications.  Default: http://<bind>:<port> when bound to an address "
                    "others can reach (the machine's host name for 0.0.0.0 or ::), else none.")
    max_upload_mb: float = Field(
        default=20.0, gt=0, le=200, description="Largest image accepted by an upload, in MB.")

    @field_validator("bind")
    @classmethod
    def _check_bind(cls, value: str) -> str:
        return check_bind_address(value)

    @field_validator("token")
    @classmethod
    def _no_inline_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            raise located_error((), "write the token in a file and name it in token_file")
        return value

    @field_validator("public_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise located_error((), "expected http://host:port or https://...")
        return value.rstrip("/") if value else value
