"""`outbox:` — events kept on disk until the MQTT broker has acknowledged them.

Every event is numbered and, when MQTT is configured, stored in `<state_dir>/outbox.sqlite`
before any transport sees it; the broker's acknowledgement deletes it.  During a broker outage
events wait there (not in memory), and they survive a restart of the daemon.  The bounds keep
a long outage from filling the disk: beyond them the oldest events are dropped, counted in
`facewatch_outbox_dropped_total` and logged.

    outbox:
      max_events: 100000      # undelivered events kept at most
      max_age_h: 168          # an undelivered event older than this is dropped
"""

from __future__ import annotations

from pydantic import Field

from facewatch.config.base import Section


class OutboxConfig(Section):
    max_events: int = Field(
        default=100_000, ge=1, le=100_000_000,
        description="Undelivered MQTT events kept on disk at most; the oldest are dropped "
                    "(and counted) beyond this.")
    max_age_h: float = Field(
        default=168.0, gt=0, le=24 * 366,
        description="Hours an undelivered MQTT event is kept before it is dropped (and counted).")

    @property
    def max_age_s(self) -> float:
        return self.max_age_h * 3600.0
