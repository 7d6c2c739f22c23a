"""Numbering events as the outbox does, for tests of transports without an outbox."""

from __future__ import annotations

import itertools
import queue
import time
from collections.abc import Callable
from typing import TypeVar

from facewatch.events import Event
from facewatch.publishers.fanout import Fanout

T = TypeVar("T")


class PlainInbox(queue.Queue[T]):
    """A plain queue where a loop reads a channel (`facewatch.processes.channels.Inbox`)."""

    def pending_bytes(self) -> int:
        return self.qsize()  # not bytes: a gauge that only has to move


def stamped_sender(fanout: Fanout, first_seq: int = 1,
                   clock: Callable[[], float] = time.time) -> Callable[[Event], Event]:
    """A function that stamps each event with the next `seq` (and `published_ts`), hands it to
    `fanout` and returns the stamped event: what the publisher process does with the outbox."""
    numbers = itertools.count(first_seq)

    def send(event: Event) -> Event:
        stamped = event.stamped(next(numbers), clock())
        fanout.deliver(stamped)
        return stamped

    return send
