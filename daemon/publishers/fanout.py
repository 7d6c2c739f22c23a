"""Hand each event to every transport that takes it once (ZeroMQ, JSON lines).

Events arrive stamped (`seq`, `published_ts`) by the outbox, which owns the numbering.

A transport that fails (raises) does not stop the others.  Each failure is counted; the first
of a run of failures is logged with its reason, then at most one summary a minute, and the
recovery once it publishes again, so a broker outage does not flood the journal.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from facewatch.events import Event
from facewatch.publishers.base import Publisher, PublisherError

log = logging.getLogger(__name__)

LOG_EVERY_S = 60.0


@dataclass
class PublisherStats:
    published: int = 0
    failed: int = 0
    last_error: str | None = None
    # Failures since the last success, and when that run was last reported.
    failing: int = 0
    reported_at: float = 0.0


class Fanout:
    def __init__(self, publishers: Sequence[Publisher], *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        names = [p.name for p in publishers]
        if len(set(names)) != len(names):
            raise ValueError(f"publisher names must be unique, got {names}")
        self.publishers = tuple(publishers)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._stats = {p.name: PublisherStats() for p in publishers}
        self._started: list[Publisher] = []

    def start(self) -> None:
        """Start every publisher; if one cannot start, stop those started and re-raise."""
        for publisher in self.publishers:
            try:
                publisher.start()
            except BaseException:
                self.stop()
                raise
            self._started.append(publisher)

    def deliver(self, stamped: Event) -> None:
        """Send an event that already carries its `seq` everywhere."""
        if stamped.seq is None:
            raise ValueError("deliver() needs an event stamped by the outbox")
        with self._lock:
            for publisher in self.publishers:
                self._publish_one(publisher, stamped)

    def stop(self) -> None:
        """Stop started publishers in reverse order; a failing stop is logged, not raised."""
        while self._started:
            publisher = self._started.pop()
            try:
                publisher.stop()
            except Exception as exc:
                log.warning("publisher %s did not stop cleanly: %s", publisher.name, exc,
                            exc_info=not isinstance(exc, PublisherError))

    def stats(self) -> dict[str, PublisherStats]:
        """A copy of the counters, per publisher name."""
        with self._lock:
            return {name: PublisherStats(**vars(s)) for name, s in self._stats.items()}

    def _publish_one(self, publisher: Publisher, event: Event) -> None:
        stats = self._stats[publisher.name]
        try:
            publisher.publish(event)
        except Exception as exc:
            stats.failed += 1
            stats.failing += 1
            stats.last_error = " ".join(str(exc).split()) or type(exc).__name__
            now = self._monotonic()
            if stats.failing == 1:
                # Anything but a PublisherError is a bug: keep its traceback.
                log.warning("publisher %s failed on event %s (%s): %s", publisher.name,
                            event.seq, event.type, stats.last_error,
                            exc_info=not isinstance(exc, PublisherError))
                stats.reported_at = now
            elif now - stats.reported_at >= LOG_EVERY_S:
                log.warning("publisher %s: %d events failed in a row; latest: %s",
                            publisher.name, stats.failing, stats.last_error)
                stats.reported_at = now
            return
        stats.published += 1
        if stats.failing:
            log.info("publisher %s publishes again after %d failed events", publisher.name,
                     stats.failing)
            stats.failing = 0
