"""The interface every transport implements, and its error.

A publisher is started once, is handed events that already carry `seq` and `published_ts`
(`Fanout` stamps them), and is stopped once.  `publish` must not block on the network: a slow
or absent consumer is the transport's problem (drop, queue or buffer), never the caller's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeGuard

from facewatch.errors import FacewatchError
from facewatch.events import Event

# Called with an event's `event_id` once its transport has confirmed delivery.
AckHook = Callable[[str], None]


class PublisherError(FacewatchError):
    """A transport could not start, or could not take an event; the message is one line."""


class Publisher(Protocol):
    name: str  # "zmq", "mqtt", "jsonl": used in logs and metrics
    # True for a transport that confirms delivery (MQTT QoS 1: `AckingPublisher`); it is then
    # fed from the outbox, which keeps each event until confirmed.
    acknowledges: bool

    def start(self) -> None:
        """Open sockets or files; raises `PublisherError` (or `ConfigError`) if it never can."""
        ...

    def publish(self, event: Event) -> None:
        """Send one stamped event; raises `PublisherError` if this event was not taken."""
        ...

    def stop(self) -> None:
        """Flush what can be flushed quickly and release everything; safe to call twice."""
        ...


class AckingPublisher(Publisher, Protocol):
    """A transport that confirms delivery: it calls its ack hook per event, and says whether
    it is connected (events wait in the outbox while it is not)."""

    @property
    def connected(self) -> bool: ...


def acknowledges(publisher: Publisher) -> TypeGuard[AckingPublisher]:
    return publisher.acknowledges


class TickingPublisher(Publisher, Protocol):
    """A transport with states that change with time alone (MQTT's Home Assistant presence):
    the publisher loop calls `tick` several times a second."""

    def tick(self) -> None: ...


def ticks(publisher: Publisher) -> TypeGuard[TickingPublisher]:
    return callable(getattr(publisher, "tick", None))
