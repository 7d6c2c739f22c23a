"""FrameBatcher: fairness, dropping stale live frames, keeping every frame of a file, waiting."""

from __future__ import annotations

import queue
import time

from facewatch.frames.ring import FrameRef
from facewatch.inference.batcher import BatchSettings, FrameBatcher


def ref(camera: str, seq: int, ts: float | None = None) -> FrameRef:
    return FrameRef(camera, seq % 6, seq, float(seq) if ts is None else ts, 640, 360)


def batcher(source: queue.Queue[FrameRef], live: set[str], cameras: int, max_batch: int = 8,
            max_wait_ms: float = 20.0) -> FrameBatcher:
    return FrameBatcher(source, BatchSettings(max_batch, max_wait_ms), frozenset(live),
                        active_cameras=cameras)


def test_a_batch_takes_one_frame_per_camera_oldest_first() -> None:
    q: queue.Queue[FrameRef] = queue.Queue()
    b = batcher(q, {"a", "b", "c"}, cameras=3)
    for r in (ref("a", 1, 10.0), ref("b", 1, 9.0), ref("c", 1, 11.0)):
        q.put(r)
    assert [(r.camera, r.capture_ts) for r in b.next_batch(1.0)] == \
        [("b", 9.0), ("a", 10.0), ("c", 11.0)]


def test_max_batch_bounds_a_batch_and_the_rest_wait_their_turn() -> None:
    q: queue.Queue[FrameRef] = queue.Queue()
    b = batcher(q, {"a", "b", "c"}, cameras=3, max_batch=2)
    for cam in "abc":
        q.put(ref(cam, 1))
    assert len(b.next_batch(1.0)) == 2
    assert len(b.next_batch(1.0)) == 1


def test_a_live_camera_that_fell_behind_gets_its_newest_frame_and_counts_the_rest() -> None:
    q: queue.Queue[FrameRef] = queue.Queue()
    b = batcher(q, {"door"}, cameras=1)
    for seq in range(1, 6):
        q.put(ref("door", seq))
    assert [r.seq for r in b.next_batch(1.0)] == [5]
    assert b.dropped == {"door": 4}


def test_a_lossless_file_keeps_every_frame_in_order_once_even_after_a_resume() -> None:
    q: queue.Queue[FrameRef] = queue.Queue()
    b = batcher(q, set(), cameras=1)
    b.resume([ref("file", 3), ref("file", 4)])  # read back from the ring by a new process
    for seq in (3, 4, 5, 6):  # their references were still queued too
        q.put(ref("file", seq))
    seen = []
    while batch := b.next_batch(0.05):
        seen += [r.seq for r in batch]
    assert seen == [3, 4, 5, 6]
    assert b.dropped == {}


def test_it_waits_for_the_other_cameras_at_most_max_wait() -> None:
    q: queue.Queue[FrameRef] = queue.Queue()
    b = batcher(q, {"a", "b"}, cameras=2, max_wait_ms=200.0)
    q.put(ref("a", 1))
    t0 = time.monotonic()
    assert [r.camera for r in b.next_batch(1.0)] == ["a"]  # b never came
    waited = time.monotonic() - t0
    assert 0.15 <= waited < 1.0
    patient = batcher(q, {"a", "b"}, cameras=2, max_wait_ms=1000.0)
    q.put(ref("a", 2))
    q.put(ref("b", 1))
    t0 = time.monotonic()
    assert {r.camera for r in patient.next_batch(1.0)} == {"a", "b"}  # all there: no waiting
    assert time.monotonic() - t0 < 0.9


def test_nothing_within_the_timeout_is_an_empty_batch() -> None:
    b = batcher(queue.Queue(), {"a"}, cameras=1)
    assert b.next_batch(0.05) == []
