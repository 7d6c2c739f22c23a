"""The channels between the daemon's processes, with real spawned processes and real signals."""

from __future__ import annotations

import logging
import logging.handlers
import os
import queue
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from facewatch.events import CameraStatus, FaceRecognized, TrackStarted
from facewatch.frames.ring import FrameRef
from facewatch.processes.channels import (
    MAX_MESSAGE_BYTES,
    BufferedSender,
    Channel,
    ChannelError,
    ControlCodec,
    ControlCommand,
    EventCodec,
    FrameRefCodec,
    JsonCodec,
    LogRecordCodec,
    lossless_credit,
)
from facewatch.processes.child import SPAWN


@pytest.fixture
def make() -> Iterator[Callable[..., Channel[Any]]]:
    """Channels made by a test, closed after it (open sockets are errors under pytest here)."""
    made: list[Channel[Any]] = []

    def factory(name: str, codec: Any, capacity_bytes: int = 256 * 1024) -> Channel[Any]:
        made.append(Channel(name, codec, capacity_bytes))
        return made[-1]

    yield factory
    for channel in made:
        channel.close()


def _writer(channel: Channel[dict[str, Any]], name: str, count: int) -> None:
    for i in range(count):
        channel.put({"writer": name, "i": i}, timeout=10)


def _reader(channel: Channel[dict[str, Any]], out: Channel[dict[str, Any]], count: int) -> None:
    for _ in range(count):
        out.put(channel.get(timeout=10), timeout=10)


def _blocked_reader(channel: Channel[dict[str, Any]], ready: Any) -> None:
    ready.value = 1
    channel.get(timeout=60)  # killed while it waits


def _sem_files() -> set[str]:
    return {n for n in os.listdir("/dev/shm") if n.startswith("sem.")}


def test_many_writer_processes_one_reader_each_in_order(make: Callable[..., Channel[Any]]) -> None:
    channel: Channel[dict[str, Any]] = make("test", JsonCodec())
    writers = [SPAWN.Process(target=_writer, args=(channel, name, 200)) for name in "abc"]
    for w in writers:
        w.start()
    got = [channel.get(timeout=20) for _ in range(600)]
    for w in writers:
        w.join(10)
        assert w.exitcode == 0
    for name in "abc":
        assert [m["i"] for m in got if m["writer"] == name] == list(range(200))
    with pytest.raises(queue.Empty):
        channel.get(timeout=0.05)


def test_a_reader_killed_while_it_waits_leaves_nothing_held_and_nothing_lost(make: Callable[..., Channel[Any]]) -> None:
    """The failure of multiprocessing.Queue this replaces: a reader SIGKILLed inside get()
    kept the queue's reader lock, and its successor waited for ever.  Here the successor gets
    every message written meanwhile."""
    channel: Channel[dict[str, Any]] = make("test", JsonCodec())
    ready = SPAWN.RawValue("i", 0)
    victim = SPAWN.Process(target=_blocked_reader, args=(channel, ready))
    victim.start()
    deadline = time.monotonic() + 20
    while not ready.value and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # inside get(), waiting
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(10)
    for i in range(50):
        channel.put_nowait({"i": i})
    out: Channel[dict[str, Any]] = make("out", JsonCodec())
    successor = SPAWN.Process(target=_reader, args=(channel, out, 50))
    successor.start()
    got = [out.get(timeout=20)["i"] for _ in range(50)]
    successor.join(10)
    assert got == list(range(50))
    assert successor.exitcode == 0


def test_channels_make_no_named_semaphores() -> None:
    """A group SIGKILL leaves nothing in /dev/shm to clean up: there is nothing named."""
    before = _sem_files()
    channels = [Channel(f"c{i}", JsonCodec()) for i in range(5)]
    credit = lossless_credit(SPAWN)
    assert _sem_files() == before
    for c in channels:
        c.close()
    credit.doorbell[0].close()
    credit.doorbell[1].close()


def test_a_full_channel_refuses_without_blocking_and_waits_with_a_timeout(make: Callable[..., Channel[Any]]) -> None:
    channel: Channel[dict[str, Any]] = make("small", JsonCodec(), capacity_bytes=4096)
    sent = 0
    with pytest.raises(queue.Full):
        while True:
            channel.put_nowait({"i": sent, "pad": "x" * 100})
            sent += 1
    assert 5 < sent < 1000
    t0 = time.monotonic()
    with pytest.raises(queue.Full):
        channel.put({"i": -1}, timeout=0.3)
    assert time.monotonic() - t0 >= 0.25
    assert channel.pending_bytes() > sent * 100
    assert channel.get_nowait()["i"] == 0  # room again, in order
    channel.put_nowait({"i": sent})


def test_a_message_too_large_is_an_error_not_a_full_channel(make: Callable[..., Channel[Any]]) -> None:
    channel: Channel[dict[str, Any]] = make("test", JsonCodec())
    with pytest.raises(ChannelError, match="over the"):
        channel.put_nowait({"pad": "x" * MAX_MESSAGE_BYTES})


def test_buffered_sender_keeps_order_through_a_full_channel_and_drops_the_oldest(make: Callable[..., Channel[Any]]) -> None:
    channel: Channel[dict[str, Any]] = make("small", JsonCodec(), capacity_bytes=4096)
    sender: BufferedSender[dict[str, Any]] = BufferedSender(channel, max_buffered=100)
    for i in range(300):
        sender.send({"i": i, "pad": "x" * 100})
    assert sender.waiting == 100 and sender.dropped > 0
    got: list[int] = []
    while sender.waiting or got == [] or channel.pending_bytes():
        try:
            got.append(channel.get(timeout=0.1)["i"])
        except queue.Empty:
            break
        sender.flush()
    assert got == sorted(got) and got[-1] == 299
    assert len(got) + sender.dropped == 300


def test_codecs_round_trip() -> None:
    ref = FrameRef("door", 3, 17, 1718000000.125, 640, 360)
    assert FrameRefCodec().decode(FrameRefCodec().encode(ref)) == ref
    assert ControlCodec().decode(ControlCodec().encode(ControlCommand.RELOAD_GALLERY)) is \
        ControlCommand.RELOAD_GALLERY
    events = EventCodec()
    for event in (TrackStarted(camera="door", ts=1.0, track_id=5, bbox=(1, 2, 3, 4), score=0.9),
                  FaceRecognized(camera="door", ts=2.0, track_id=5, identity="ada", name="Ada",
                                 score=0.71, bbox=(1, 2, 3, 4), snapshot=None,
                                 metadata={"team": "lab"}),
                  CameraStatus(camera="door", ts=3.0, state="reconnecting", reason="eof")):
        assert events.decode(events.encode(event)) == event


def test_log_records_cross_with_their_traceback(tmp_path: Path) -> None:
    codec = LogRecordCodec()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord("facewatch.test", logging.ERROR, __file__, 1,
                                                   "failed %s", ("here",), sys.exc_info())
    handler = logging.handlers.QueueHandler(queue.Queue())  # what the children use
    prepared = handler.prepare(record)
    back = codec.decode(codec.encode(prepared))
    assert back is not None
    assert back.getMessage().startswith("failed here")
    assert "ValueError: boom" in back.getMessage()
    assert back.levelno == logging.ERROR and back.name == "facewatch.test"
    assert codec.decode(codec.encode(None)) is None


def test_lossless_doorbell_wakes_a_waiting_source() -> None:
    credit = lossless_credit(SPAWN)
    try:
        _ring_and_wait(credit)
    finally:
        credit.doorbell[0].close()
        credit.doorbell[1].close()


def _ring_and_wait(credit: Any) -> None:
    t0 = time.monotonic()
    credit.wait(0.2)  # nobody rang
    assert time.monotonic() - t0 >= 0.15
    for _ in range(50):  # more rings than the socket holds: never blocks
        credit.ring()
    t0 = time.monotonic()
    credit.wait(5.0)
    assert time.monotonic() - t0 < 1.0
    credit.analysed.value = 7
    assert credit.unanalysed(10) == 2
    assert isinstance(credit.doorbell[0], socket.socket)

