"""`logging:` — how much the daemon says (on stderr, i.e. the journal under systemd)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from facewatch.config.base import Section

LogLevel = Literal["debug", "info", "warning", "error"]


class LoggingConfig(Section):
    level: LogLevel = Field(default="info", description="debug, info, warning or error.")

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @property
    def numeric_level(self) -> int:
        import logging

        return int(logging.getLevelName(self.level.upper()))
