"""The `publisher` process: events from every other process, out through every transport.

It is the only writer of `seq`, so event numbers rise by one in publication order whichever
process produced the event.  On stop it drains what is already queued before closing the
transports (the supervisor's stop timeout bounds how long that may take).
"""

from __future__ import annotations

import logging
import queue
import time
from typing import Any

from facewatch.config.daemon import DaemonConfig
from facewatch.events.records import CameraStatus, Event
from facewatch.metrics import Metrics
from facewatch.publishers.build import build_publishers
from facewatch.publishers.fanout import Fanout
from facewatch.streams.reader import StreamState, StreamStatus
from facewatch.supervisor.process import ChildContext

log = logging.getLogger(__name__)

_DRAIN_S = 3.0
# A ZeroMQ subscriber that was waiting for the daemon connects only after the PUB socket is
# bound (libzmq retries every 100 ms by default), and PUB drops whatever is sent before that:
# the first events (a file camera is online within ~50 ms of start) would be lost to it.
# Events wait in the queue meanwhile; this is zguide's "slow joiner" settle time.
ZMQ_SETTLE_S = 0.5


def _as_event(item: Any, metrics: Metrics) -> Event | None:
    if isinstance(item, StreamStatus):
        if item.state is StreamState.RECONNECTING:
            metrics.reconnects.labels(item.camera).inc()
        return CameraStatus.from_stream_status(item)
    if isinstance(item, Event):
        return item
    log.error("ignoring an unexpected item on the event queue: %r", type(item).__name__)
    return None


class PublisherLoop:
    def __init__(self, config: DaemonConfig, events: Any, metrics: Metrics,
                 sequence: Any = None) -> None:
        """`sequence` (a multiprocessing.Value('q'), owned by the supervisor) carries the next
        `seq` across publisher restarts: a restarted publisher (a crash, or a reload that
        changed the outputs) must go on from where the last one stopped, not from 1, or
        consumers would see numbers repeat within one daemon run."""
        self.events = events
        self.metrics = metrics
        self.sequence = sequence
        first = int(sequence.value) if sequence is not None else 1
        self.fanout = Fanout(build_publishers(config), first_seq=first)
        self._failed: dict[str, int] = {}

    def start(self) -> None:
        self.fanout.start()

    def handle(self, item: Any) -> None:
        event = _as_event(item, self.metrics)
        if event is None:
            return
        stamped = self.fanout.publish(event)
        if self.sequence is not None:
            self.sequence.value = self.fanout.next_seq
        self.metrics.events.labels(stamped.type).inc()
        if stamped.published_ts is not None:
            self.metrics.publish_latency.labels(stamped.type).observe(
                max(0.0, stamped.published_ts - stamped.ts))
        for name, stats in self.fanout.stats().items():
            new = stats.failed - self._failed.get(name, 0)
            if new:
                self.metrics.publish_failures.labels(name).inc(new)
                self._failed[name] = stats.failed

    def step(self, timeout: float) -> bool:
        try:
            item = self.events.get(timeout=timeout)
        except queue.Empty:
            return False
        self.metrics.queue_depth.labels("events").set(self.events.qsize())
        self.handle(item)
        return True

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.step(0.05):
            pass

    def stop(self) -> None:
        self.fanout.stop()


def run_publisher(ctx: ChildContext, config: DaemonConfig, events: Any,
                  sequence: Any = None) -> None:
    loop = PublisherLoop(config, events, Metrics(), sequence)
    loop.start()
    if config.outputs.zmq is not None:
        ctx.stop_event.wait(ZMQ_SETTLE_S)
    ctx.ready()
    try:
        while not ctx.stopping():
            loop.step(0.5)
            ctx.beat()
        loop.drain(_DRAIN_S)
    finally:
        loop.stop()
