"""The outbox: numbering that survives restarts, storage until acknowledged, bounds."""

from __future__ import annotations

import stat
from pathlib import Path

from facewatch.events import CameraStatus, FaceUnknown
from facewatch.publishers.outbox import Outbox


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
