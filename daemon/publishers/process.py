"""The `publisher` process: events from every other process, out through every transport.

Each event is first numbered by the outbox (`<state_dir>/outbox.sqlite`), which persists the
counter, so `seq` rises by one per event across publisher restarts and daemon restarts alike:
the outbox is the only source of `seq`.  With MQTT configured the outbox also stores the
event until the broker acknowledges it (see `facewatch.publishers.delivery`); ZeroMQ and the
JSON-lines file confirm nothing and get each event once, as soon as it is stored.

On stop it drains what is already queued and gives MQTT a moment to acknowledge what is in
flight before closing the transports (the supervisor's stop timeout bounds how long that may
take); whatever is still unacknowledged stays in the outbox for the next run.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from facewatch.config.daemon import DaemonConfig
from facewatch.errors import EXIT_CONFIG, ConfigError, FacewatchError
from facewatch.events.schema import Event
from facewatch.events.urls import media_links
from facewatch.metrics import Metrics
from facewatch.processes.channels import Inbox
from facewatch.processes.child import ChildContext, ChildKind
from facewatch.publishers.base import acknowledges, ticks
from facewatch.publishers.build import build_publishers
from facewatch.publishers.delivery import AckedDelivery
from facewatch.publishers.fanout import Fanout
from facewatch.publishers.outbox import Outbox

log = logging.getLogger(__name__)

# The last to stop: it drains what the others queued.
KIND = ChildKind("publisher", stop_timeout_s=4.0, stop_order=3)
OUTBOX_FILE = "outbox.sqlite"
_DRAIN_S = 3.0
_SETTLE_S = 1.5
# How often the outbox's bounds are enforced and its size exported.
_HOUSEKEEPING_S = 10.0
_GAUGE_EVERY_S = 1.0
# The loop never sleeps longer than this: the MQTT delivery notices a lost connection by
# polling (see facewatch.publishers.delivery).
_POLL_S = 0.2
# A ZeroMQ subscriber that was waiting for the daemon connects only after the PUB socket is
# bound (libzmq retries every 100 ms by default), and PUB drops whatever is sent before that:
# the first events (a file camera is online within ~50 ms of start) would be lost to it.
# Events wait in the queue meanwhile; this is zguide's "slow joiner" settle time.
ZMQ_SETTLE_S = 0.5


def outbox_path(config: DaemonConfig) -> Path:
    assert config.state_dir is not None, "a resolved config has a state_dir"
    return Path(config.state_dir) / OUTBOX_FILE


class PublisherLoop:
    def __init__(self, config: DaemonConfig, events: Inbox[Event], metrics: Metrics,
                 monotonic: Any = time.monotonic, api_feed: Any = None,
                 runtime_dir: Path | None = None) -> None:
        self.events = events
        self.metrics = metrics
        self._monotonic = monotonic
        path = outbox_path(config)
        try:
            self.outbox = Outbox(path, max_events=config.outbox.max_events,
                                 max_age_s=config.outbox.max_age_s)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"{path}: cannot open the outbox ({exc}); check state_dir") from None
        publishers = build_publishers(config, on_ack=self.outbox.ack, api_feed=api_feed,
                                      runtime_dir=runtime_dir)
        # A transport that acknowledges (MQTT) is fed from the outbox; the others get each
        # event once, as soon as it is stored.
        self.fanout = Fanout([p for p in publishers if not acknowledges(p)])
        self._ticking = [p for p in publishers if ticks(p)]
        # snapshot_url and crop_url, when the API serves them (facewatch.events.urls)
        self.links = media_links(config)
        if self.links is not None and config.api.public_url is None:
            log.info("events link to their faces at %s (set api.public_url if others reach "
                     "this machine by another name)", self.links.base)
        self.delivery: AckedDelivery | None = None
        for publisher in publishers:
            if acknowledges(publisher):
                failures = metrics.publish_failures.labels(publisher.name)
                self.delivery = AckedDelivery(publisher, self.outbox, on_failure=failures.inc)
        self._failed: dict[str, int] = {}
        self._housekeeping_at = 0.0
        self._gauge_at = 0.0

    def start(self) -> None:
        """Open every transport; raises (one line) if one never can, e.g. a port in use."""
        self.fanout.start()
        if self.delivery is not None:
            try:
                self.delivery.start()
            except BaseException:
                self.fanout.stop()
                raise
            pending = self.outbox.pending()
            if pending:
                log.info("outbox: %d event(s) from an earlier run wait for the MQTT broker",
                         pending)
        self._housekeeping()

    def handle(self, event: Event) -> None:
        if self.links is not None:
            event = self.links.add_to(event)
        # on disk (when a transport confirms delivery) before any transport sees it
        stamped = self.outbox.add(event, keep=self.delivery is not None)
        self.fanout.deliver(stamped)
        if self.delivery is not None:
            self.delivery.pump()
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
        """Handle one queued item (waiting up to `timeout` s) and move the MQTT backlog on;
        True if an item was handled."""
        backlog = self.delivery is not None and self.delivery.pump()
        self._periodic()
        try:
            # a backlog to send: look for new events without waiting, then send more
            item = self.events.get(timeout=0.001 if backlog else min(timeout, _POLL_S))
        except queue.Empty:
            return False
        self.metrics.queue_bytes.labels("events").set(self.events.pending_bytes())
        self.handle(item)
        return True

    def drain(self, seconds: float) -> None:
        deadline = self._monotonic() + seconds
        while self._monotonic() < deadline and self.step(0.05):
            pass
        if self.delivery is not None and not self.delivery.settle(_SETTLE_S):
            log.info("outbox: %d event(s) not yet acknowledged by the MQTT broker are kept "
                     "for the next start", self.outbox.pending())

    def stop(self) -> None:
        try:
            if self.delivery is not None:
                self.delivery.stop()
            self.fanout.stop()
        finally:
            self.metrics.outbox_pending.set(self.outbox.pending())
            self.outbox.close()

    def _periodic(self) -> None:
        for publisher in self._ticking:
            publisher.tick()
        now = self._monotonic()
        if now - self._housekeeping_at >= _HOUSEKEEPING_S:
            self._housekeeping()
        if now - self._gauge_at >= _GAUGE_EVERY_S:
            self._gauge_at = now
            self.metrics.outbox_pending.set(self.outbox.pending())

    def _housekeeping(self) -> None:
        self._housekeeping_at = self._monotonic()
        dropped = self.outbox.enforce_limits()  # logs what it dropped
        if dropped:
            self.metrics.outbox_dropped.inc(dropped)


def run_publisher(ctx: ChildContext, config: DaemonConfig, events: Inbox[Event],
                  api_feed: Any = None, runtime_dir: Path | None = None) -> None:
    loop: PublisherLoop | None = None
    try:
        loop = PublisherLoop(config, events, Metrics(), api_feed=api_feed,
                             runtime_dir=runtime_dir)
        loop.start()
    except FacewatchError as exc:
        # A bind address in use, unreadable certificates, an unwritable state_dir: restarting
        # cannot help.  The supervisor turns this exit code into its own at start.
        log.error("%s", " ".join(str(exc).split()))
        if loop is not None:
            loop.outbox.close()
        sys.exit(EXIT_CONFIG)
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
