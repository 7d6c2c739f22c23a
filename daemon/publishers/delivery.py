"""At-least-once delivery through the outbox to a transport that acknowledges (MQTT QoS 1).

Events reach the transport only from the outbox, oldest first, and only while it is
connected: during a broker outage they wait on disk, not in the transport's memory, and once
it is back they go out in `seq` order, before anything newer.  At most `window` events are
handed over and not yet acknowledged at a time, so a broker that stops answering without
closing the connection holds a bounded number in paho's memory; the rest wait on disk.

After a reconnection paho first re-sends, by itself, what it still held unacknowledged from
before (flagged DUP).  Handing newer events at that moment could put them on the wire ahead of
those (paho calls on_connect, which makes `connected` true, before its resend loop), so the
delivery first waits for those acknowledgements.  If they never come (paho dropped them),
they are handed again from the outbox after `resend_after_s`; consumers deduplicate on
`event_id`.  A reconnection is noticed by polling `connected`: paho waits at least its
minimum reconnect delay (1 s) before reconnecting and `pump` runs several times a second, so
a disconnection is not missed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from facewatch.events import Event
from facewatch.publishers.base import AckingPublisher, PublisherError
from facewatch.publishers.outbox import Outbox

log = logging.getLogger(__name__)

_LOG_EVERY_S = 60.0
# After a refused hand-over (paho's own queue full), wait this long before trying again.
_RETRY_S = 1.0


class AckedDelivery:
    def __init__(self, publisher: AckingPublisher, outbox: Outbox, *, window: int = 100,
                 resend_after_s: float = 30.0,
                 on_failure: Callable[[], None] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.publisher = publisher
        self.outbox = outbox
        self.window = window
        self.resend_after_s = resend_after_s
        self._on_failure = on_failure
        self._monotonic = monotonic
        self._connected = False
        self._connected_at = 0.0
        self._was_connected_before = False
        self._resync = False  # waiting for paho to resend what it held from the last connection
        self._retry_at = 0.0
        self.failures = 0
        self._failing = 0
        self._reported_at = -_LOG_EVERY_S

    def start(self) -> None:
        self.publisher.start()

    def stop(self) -> None:
        self.publisher.stop()

    def pump(self) -> bool:
        """Hand over what may go now; True if more is due and could go at once."""
        now = self._monotonic()
        if not self.publisher.connected:
            self._connected = False
            return False
        if not self._connected:
            self._connected = True
            self._connected_at = now
            # paho re-sends unacknowledged messages of the last connection by itself
            self._resync = self._was_connected_before and self.outbox.handed_count() > 0
            self._was_connected_before = True
        if self._resync:
            if self.outbox.handed_count() == 0:
                self._resync = False
            elif now - self._connected_at >= self.resend_after_s:
                stuck = self.outbox.handed_count()
                log.warning("MQTT: %d event(s) sent before the reconnection were not "
                            "acknowledged within %.0f s of it; sending them again", stuck,
                            self.resend_after_s)
                self.outbox.unhand_all()
                self._resync = False
            else:
                return False
        if now < self._retry_at:
            return False
        room = self.window - self.outbox.handed_count()
        if room <= 0:
            return False
        due = self.outbox.due(room)
        for event in due:
            self.outbox.handed(event)  # before: the acknowledgement may come first
            try:
                self.publisher.publish(event)
            except PublisherError as exc:
                self.outbox.unhand(event)
                self._failed(event, str(exc))
                self._retry_at = now + _RETRY_S
                return False
            if self._failing:
                log.info("MQTT takes events again after %d refused hand-over(s)", self._failing)
                self._failing = 0
        return len(due) == room

    def settle(self, seconds: float) -> bool:
        """Deliver and wait for acknowledgements, for at most `seconds` (at stop); True if
        nothing is left waiting."""
        deadline = self._monotonic() + seconds
        while True:
            self.pump()
            if self.outbox.handed_count() == 0 and not self.outbox.due(1):
                return True
            if self._monotonic() >= deadline or not self.publisher.connected:
                return False
            time.sleep(0.01)

    def _failed(self, event: Event, reason: str) -> None:
        self.failures += 1
        self._failing += 1
        if self._on_failure is not None:
            self._on_failure()
        now = self._monotonic()
        if self._failing == 1 or now - self._reported_at >= _LOG_EVERY_S:
            self._reported_at = now
            log.warning("MQTT refused event %s (%s), %d refusal(s) in a row; it stays in the "
                        "outbox: %s", event.seq, event.type, self._failing, " ".join(reason.split()))
