"""`metrics:` — the Prometheus endpoint."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from facewatch.config.base import Section, located_error
from facewatch.config.outputs import check_bind_address, is_loopback_host

_REMOTE_BIND_WHY = (
    "would serve metrics to the network: they name every camera and count its frames, "
    "reconnections and recognitions, and the endpoint has no authentication. Bind to 127.0.0.1 "
    "(and scrape through a local agent or an SSH tunnel), or set allow_remote: true")


class MetricsConfig(Section):
    enabled: bool = Field(default=True, description="Serve Prometheus metrics over HTTP.")
    bind: str = Field(
        default="127.0.0.1",
        description="Address to listen on (an IP address or localhost).  Non-loopback addresses "
                    "(0.0.0.0 for all) need allow_remote.")
    allow_remote: bool = Field(
        default=False, description="Allow binding a non-loopback address (the metrics become "
                                   "readable by anyone who can reach the port).")
    port: int = Field(default=9108, ge=1, le=65535, description="TCP port of the /metrics endpoint.")

    @field_validator("bind")
    @classmethod
    def _check_bind(cls, value: str) -> str:
        return check_bind_address(value)

    @model_validator(mode="after")
    def _check_remote(self) -> MetricsConfig:
        if self.enabled and not self.allow_remote and not is_loopback_host(self.bind):
            raise located_error(("bind",), f"{self.bind} {_REMOTE_BIND_WHY}")
        return self
