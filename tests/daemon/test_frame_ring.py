"""The shared-memory frame ring, across real processes (spawn and independent interpreters)."""

from __future__ import annotations

import multiprocessing as mp
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from multiprocessing.queues import Queue
from pathlib import Path

import numpy as np
import pytest

from facewatch.frames.ring import (
    FrameRef,
    FrameRing,
    FrameRingError,
    FrameTooLargeError,
)

_REPO = Path(__file__).resolve().parents[2]


def shm_exists(name: str) -> bool:
    return Path("/dev/shm", name).exists()


def pattern(seq: int, height: int = 36, width: int = 64) -> np.ndarray:
    """A frame whose every byte says which frame it is, so a torn copy shows."""
    return np.full((height, width, 3), seq % 251, dtype=np.uint8)


@pytest.fixture
def ring() -> Iterator[FrameRing]:
    with FrameRing.create("door", slots=4, max_width=64, max_height=36) as created:
        yield created


# -- children (module level so that spawn can import them) ---------------------------------


def _write_frames(name: str, count: int, refs: Queue[FrameRef]) -> None:
    with FrameRing.attach(name) as ring:
        for seq in range(count):
            refs.put(ring.write(pattern(seq), capture_ts=1000.0 + seq))


def _write_continuously(name: str, seconds: float, refs: Queue[FrameRef | None]) -> None:
    rng = np.random.default_rng(2)
    with FrameRing.attach(name) as ring:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ref = ring.write(pattern(ring.next_seq, 360, 640), capture_ts=time.time())
            if ref.seq % 3 == 0:  # hand on only some refs, as a decimating producer would
                refs.put(ref)
            time.sleep(rng.uniform(0, 0.002))
    refs.put(None)


def _read_lagging(name: str, refs: Queue[FrameRef | None], results: Queue[str | None]) -> None:
    """Reads each ref after a random delay; reports "ok", "dropped" or "torn" for each."""
    rng = np.random.default_rng(3)
    with FrameRing.attach(name) as ring:
        while (ref := refs.get(timeout=20)) is not None:
            time.sleep(rng.uniform(0, 0.003))
            frame = ring.read(ref)
            if frame is None:
                results.put("dropped")
            else:
                results.put("ok" if frame.shape == (360, 640, 3) and (frame == ref.seq % 251).all() else "torn")
    results.put(None)


# -- tests ---------------------------------------------------------------------------------


def test_write_then_read_in_one_process(ring: FrameRing) -> None:
    frame = np.random.default_rng(1).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    ref = ring.write(frame, capture_ts=123.5)
    assert ref == FrameRef(camera="door", slot=0, seq=0, capture_ts=123.5, width=50, height=30)
    copy = ring.read(ref)
    assert copy is not None and np.array_equal(copy, frame)
    copy[:] = 0  # the copy is the caller's; the slot is untouched
    again = ring.read(ref)
    assert again is not None and np.array_equal(again, frame)


def test_a_frame_ref_is_small_and_picklable() -> None:
    ref = FrameRef(camera="door", slot=3, seq=123456, capture_ts=1.7e9, width=1920, height=1080)
    data = pickle.dumps(ref)
    assert len(data) < 200 and pickle.loads(data) == ref


def test_the_ring_itself_cannot_be_pickled(ring: FrameRing) -> None:
    with pytest.raises(TypeError, match=r"FrameRing\.attach"):
        pickle.dumps(ring)


def test_overwritten_frame_reads_as_none_and_counts_a_drop(ring: FrameRing) -> None:
    first = ring.write(pattern(0), capture_ts=0.0)
    refs = [ring.write(pattern(seq), capture_ts=float(seq)) for seq in range(1, 5)]
    assert refs[-1].slot == first.slot  # 4 slots: the 5th frame reuses slot 0
    assert ring.read(first) is None
    assert ring.dropped == 1
    newest = ring.read(refs[-1])
    assert newest is not None and (newest == 4).all()
    assert ring.dropped == 1


def test_oversize_frame_is_an_error(ring: FrameRing) -> None:
    with pytest.raises(FrameTooLargeError, match=r"frame 65x36 does not fit ring 'door' \(max 64x36\)"):
        ring.write(np.zeros((36, 65, 3), np.uint8), capture_ts=0.0)
    with pytest.raises(FrameRingError, match="HxWx3 uint8"):
        ring.write(np.zeros((36, 64), np.uint8), capture_ts=0.0)
    with pytest.raises(FrameRingError, match="HxWx3 uint8"):
        ring.write(np.zeros((36, 64, 3), np.float32), capture_ts=0.0)
    assert ring.next_seq == 0


def test_owner_unlinks_on_close_and_attached_handles_do_not() -> None:
    owner = FrameRing.create("door", slots=2, max_width=8, max_height=8)
    attached = FrameRing.attach(owner.name)
    attached.close()
    assert shm_exists(owner.name)
    owner.close()
    assert not shm_exists(owner.name)
    owner.close()  # idempotent
    with pytest.raises(FrameRingError, match="does not exist"):
        FrameRing.attach(owner.name)
    with pytest.raises(FrameRingError, match="is closed"):
        owner.write(pattern(0, 8, 8), capture_ts=0.0)


def test_second_writer_handle_continues_the_sequence(ring: FrameRing) -> None:
    ring.write(pattern(0), capture_ts=0.0)
    with FrameRing.attach(ring.name) as restarted_writer:
        assert restarted_writer.write(pattern(1), capture_ts=1.0).seq == 1
    assert ring.next_seq == 2


def test_spawned_writer_and_parent_reader(ring: FrameRing) -> None:
    ctx = mp.get_context("spawn")
    refs: Queue[FrameRef] = ctx.Queue()
    child = ctx.Process(target=_write_frames, args=(ring.name, 4, refs))
    child.start()
    got = [refs.get(timeout=20) for _ in range(4)]
    child.join(20)
    assert child.exitcode == 0
    # The child attached, wrote and exited: the ring must still be there for everyone else.
    assert shm_exists(ring.name)
    for seq, ref in enumerate(got):
        assert (ref.seq, ref.slot, ref.capture_ts) == (seq, seq, 1000.0 + seq)
        frame = ring.read(ref)
        assert frame is not None and np.array_equal(frame, pattern(seq))


def test_independent_process_attaching_leaves_the_ring_alone(ring: FrameRing) -> None:
    """Python 3.11's resource tracker would unlink a segment an unrelated process merely attached."""
    ref = ring.write(pattern(7), capture_ts=7.0)
    script = (
        "import sys\n"
        "from facewatch.frames.ring import FrameRef, FrameRing\n"
        "with FrameRing.attach(sys.argv[1]) as ring:\n"
        "    frame = ring.read(FrameRef('door', 0, 0, 7.0, 64, 36))\n"
        "    assert frame is not None and (frame == 7).all()\n")
    done = subprocess.run([sys.executable, "-c", script, ring.name], cwd=_REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no resource_tracker "leaked shared_memory" warnings
    assert shm_exists(ring.name)
    frame = ring.read(ref)
    assert frame is not None and (frame == 7).all()


def test_concurrent_writer_never_hands_a_torn_frame_to_a_slow_reader() -> None:
    """A writer keeps overwriting a 2-slot ring while a reader in another process lags behind
    by a random delay: each frame comes back whole and the one asked for, or as None."""
    ctx = mp.get_context("spawn")
    with FrameRing.create("door", slots=2, max_width=640, max_height=360) as ring:
        refs: Queue[FrameRef | None] = ctx.Queue()
        results: Queue[str | None] = ctx.Queue()
        writer = ctx.Process(target=_write_continuously, args=(ring.name, 1.5, refs))
        reader = ctx.Process(target=_read_lagging, args=(ring.name, refs, results))
        reader.start()
        writer.start()
        outcomes: list[str] = []
        while (outcome := results.get(timeout=30)) is not None:
            outcomes.append(outcome)
        writer.join(10)
        reader.join(10)
        assert (writer.exitcode, reader.exitcode) == (0, 0)
    counts = {kind: outcomes.count(kind) for kind in ("ok", "dropped", "torn")}
    assert counts["torn"] == 0, counts
    assert counts["ok"] > 0 and counts["dropped"] > 0, counts


def test_attach_rejects_foreign_shared_memory() -> None:
    from multiprocessing.shared_memory import SharedMemory

    foreign = SharedMemory(create=True, size=4096)
    try:
        with pytest.raises(FrameRingError, match="not a facewatch frame ring"):
            FrameRing.attach(foreign.name)
    finally:
        foreign.close()
        foreign.unlink()


def test_default_names_are_posix_safe_and_unique() -> None:
    with FrameRing.create("front door/left", slots=2, max_width=8, max_height=8) as a, \
            FrameRing.create("front door/left", slots=2, max_width=8, max_height=8) as b:
        assert a.name != b.name
        assert "/" not in a.name and " " not in a.name
        assert a.camera == "front door/left"
