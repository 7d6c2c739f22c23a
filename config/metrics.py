"""`metrics:` — the Prometheus endpoint."""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator

from facewatch.config.base import Section, located_error


class MetricsConfig(Section):
    enabled: bool = Field(default=True, description="Serve Prometheus metrics over HTTP.")
    bind: str = Field(
        default="127.0.0.1",
        description="Address to listen on (an IP address or localhost); 0.0.0.0 for all.")
    port: int = Field(default=9108, ge=1, le=65535, description="TCP port of the /metrics endpoint.")

    @field_validator("bind")
    @classmethod
    def _check_bind(cls, value: str) -> str:
        if value == "localhost":
            return value
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise located_error((), f"{value!r} is not an IP address (use e.g. 127.0.0.1, :: or "
                                    f"0.0.0.0)") from None
        return value
