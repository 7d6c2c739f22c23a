"""The outbox: numbering that survives restarts, storage until acknowledged, bounds; and the
MQTT delivery through it, against a real broker."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from facewatch.config.mqtt import MqttOutput
from facewatch.events import CameraStatus, FaceUnknown
from facewatch.publishers.delivery import AckedDelivery
from facewatch.publishers.mqtt import MqttPublisher
from facewatch.publishers.outbox import Outbox
from tests.support.daemon import MqttEvents, wait_until
from tests.support.mosquitto import Mosquitto, mosquitto_available


def _event(i: int) -> FaceUnknown:
    return FaceUnknown(camera="door", ts=1000.0 + i, track_id=i, score=0.1, bbox=(0, 0, 10, 10))


def test_seq_continues_across_restarts_and_events_wait_for_their_ack(tmp_path: Path) -> None:
    path = tmp_path / "state" / "outbox.sqlite"
    box = Outbox(path)
    stamped = [box.add(_event(i), keep=True) for i in range(5)]
    assert [e.seq for e in stamped] == [1, 2, 3, 4, 5]
    assert all(e.published_ts is not None for e in stamped)
    box.add(CameraStatus(camera="door", ts=1.0, state="online"), keep=False)  # not stored
    assert box.pending() == 5
    for e in stamped[:2]:
        box.handed(e)
    assert [e.seq for e in box.due()] == [3, 4, 5]  # handed ones are not due twice
    box.ack(stamped[0].event_id)
    box.close()

    again = Outbox(path)
    assert again.next_seq == 7  # numbering continues: 6 went to the status event
    # after a restart every unacknowledged event is due again, in order, unchanged
    due = again.due()
    assert [e.seq for e in due] == [2, 3, 4, 5]
    assert due[0] == stamped[1]
    for e in due:
        again.handed(e)
        again.ack(e.event_id)
    assert again.pending() == 0 and again.due() == []
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_lost_connection_makes_unacknowledged_events_due_again(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite")
    events = [box.add(_event(i), keep=True) for i in range(3)]
    for e in events:
        box.handed(e)
    box.ack(events[0].event_id)
    assert box.due() == []
    box.unhand_all()
    assert [e.seq for e in box.due()] == [2, 3]


def test_bounds_drop_the_oldest_and_count_them(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path, max_events=3, max_age_s=100.0)
    events = [box.add(_event(i), keep=True) for i in range(5)]
    box.handed(events[0])
    assert box.enforce_limits() == 2
    assert [e.seq for e in box.due()] == [3, 4, 5]
    assert box.enforce_limits(now=10_000_000_000.0) == 3  # all too old now
    assert box.pending() == 0 and box.dropped == 5
    box.close()
    assert Outbox(path).dropped == 5  # the count survives a restart, like the events


def test_mqtt_delivery_waits_on_disk_during_an_outage_and_catches_up_in_order(
        tmp_path: Path) -> None:
    """The publisher process's MQTT path against a real broker: nothing is handed to paho
    while it is disconnected (events wait in the outbox), and afterwards the backlog goes out
    oldest first, each event acknowledged and deleted."""
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    broker = Mosquitto(tmp_path / "broker", persistence=True)
    broker.start()
    box = Outbox(tmp_path / "outbox.sqlite")
    publisher = MqttPublisher(MqttOutput(host=broker.host, port=broker.port), on_ack=box.ack,
                              reconnect_min_s=1, reconnect_max_s=1)
    delivery = AckedDelivery(publisher, box)
    subscriber = MqttEvents(broker, "facewatch/events", session="outbox-test")
    try:
        delivery.start()
        assert publisher.wait_connected(10)

        def deliver(n: int, first: int) -> None:
            for i in range(first, first + n):
                box.add(_event(i), keep=True)
                delivery.pump()

        def drained() -> bool:
            delivery.pump()
            return box.pending() == 0

        deliver(5, 0)
        wait_until(drained, 10, "the first events acknowledged")

        broker.stop()
        wait_until(lambda: not publisher.connected, 10, "the disconnection noticed")
        deliver(10, 5)
        assert box.handed_count() == 0 and len(box.due()) == 10  # on disk, not in paho

        broker.start()
        wait_until(drained, 30, "the backlog acknowledged after the outage")
        wait_until(lambda: len({e.event_id for e in subscriber.events}) == 15, 10,
                   "all 15 events at the subscriber")
        first_arrivals: list[int | None] = []
        for e in subscriber.events:
            if e.seq not in first_arrivals:
                first_arrivals.append(e.seq)
        assert first_arrivals == list(range(1, 16))
    finally:
        subscriber.close()
        delivery.stop()
        box.close()
        broker.stop()


def _fill_the_disk(outbox: Outbox) -> int:
    """SQLite's own limit on the database's size: writes then fail with SQLITE_FULL, "database
    or disk is full", exactly as on a full filesystem.  Events are stored until the first is
    refused; returns how many were stored."""
    pages = outbox._db.execute("PRAGMA page_count").fetchone()[0]
    outbox._db.execute(f"PRAGMA max_page_count = {pages}")
    stored = 0
    while outbox.disk_error is None:
        outbox.add(_event(100 + stored), keep=True)
        stored += 1
        assert stored < 1000, "the database never filled up"
    return stored - 1


def test_a_full_disk_keeps_events_in_memory_in_order_and_numbering_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", max_in_memory=5)
    try:
        with caplog.at_level(logging.WARNING):
            stored = _fill_the_disk(outbox)
            held = [outbox.add(_event(i), keep=True) for i in range(3)]
        assert outbox.disk_error is not None and "full" in outbox.disk_error
        assert len([r for r in caplog.records if "cannot write" in r.getMessage()]) == 1
        # numbering went on; everything is delivered like stored events, oldest first
        seqs = list(range(1, stored + 5))
        assert [e.seq for e in held] == seqs[-3:]
        assert [e.seq for e in outbox.due(limit=10_000)] == seqs
        assert outbox.pending() == len(seqs)
        outbox.ack(held[0].event_id)
        seqs.remove(held[0].seq)
        assert [e.seq for e in outbox.due(limit=10_000)] == seqs
        # beyond max_in_memory (5) the oldest held events go, counted: 3 were held (the first
        # refused and two more), 4 come now
        more = [outbox.add(_event(i), keep=True) for i in range(4)]
        assert outbox.enforce_limits() == 2
        assert len(outbox.due(limit=10_000)) == len(seqs) + 4 - 2
        # the disk is back: numbering carries on, and is written again
        outbox._db.execute("PRAGMA max_page_count = 1073741823")
        after = outbox.add(_event(9), keep=True)
        assert after.seq == (more[-1].seq or 0) + 1 and outbox.disk_error is None
    finally:
        outbox.close()
    again = Outbox(tmp_path / "outbox.sqlite")
    try:
        assert again.next_seq == (after.seq or 0) + 1
    finally:
        again.close()
