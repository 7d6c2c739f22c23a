"""Typed message channels between the daemon's processes.

A `Channel` carries messages of one type from any number of writer processes to one reader
process.  It is a Unix SOCK_SEQPACKET socket pair made by the supervisor before it starts
the children, and not a `multiprocessing.Queue`, because of what happens when a process is
killed outright (SIGKILL, the OOM killer, a segfault in native code):

- a `multiprocessing.Queue` reader killed while it waits leaves the queue's reader lock held
  for good, and its restarted successor then waits for ever; a queue also makes three named
  POSIX semaphores, which a group SIGKILL leaks into /dev/shm;
- a socket has no lock to leave held and nothing named to leak: each message is one packet,
  written whole or not at all by one `send` (so writers need no lock either), and the packets
  wait in the kernel for as long as any process holds the reading end.  The supervisor holds
  both ends, so what is queued survives the death of the reader and of every writer.

Messages are encoded by the channel's `Codec`: explicit bytes (JSON for events, as on the
wire), never pickles.  Capacity is the socket's send buffer: `put` blocks (with a timeout) or
`put_nowait` refuses when it is full, so every channel is bounded.

The interface follows `queue.Queue` (`put`, `put_nowait`, `get`, `get_nowait`, raising
`queue.Full` and `queue.Empty`), so a loop can be driven by a plain `queue.Queue` in tests.
"""

from __future__ import annotations

import array
import fcntl
import json
import logging
import queue
import select
import socket
import termios
import time
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, Protocol, TypeVar

from facewatch.events.codec import from_json, to_json
from facewatch.events.schema import Event
from facewatch.frames.ring import FrameRef

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

# A message larger than this is refused by the sender (it would not fit the socket buffer).
MAX_MESSAGE_BYTES = 1 << 20


class ChannelError(RuntimeError):
    """A message that cannot be sent at all (too large), as opposed to a full channel."""


class Codec(Protocol[T]):
    def encode(self, message: T) -> bytes: ...

    def decode(self, data: bytes) -> T: ...


class Inbox(Protocol[T_co]):
    """The reading side, as a loop sees it (a `Channel`, or a plain queue in tests)."""

    def get(self, block: bool = True, timeout: float | None = None) -> T_co: ...

    def pending_bytes(self) -> int: ...


class Channel(Generic[T]):
    """One reader, many writers; bounded; survives the death of any of them."""

    def __init__(self, name: str, codec: Codec[T], capacity_bytes: int = 256 * 1024) -> None:
        self.name = name
        self.codec = codec
        self._reader, self._writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # The kernel doubles what it is given and caps it at net.core.wmem_max.
        self._writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, capacity_bytes)
        self._reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, capacity_bytes)
        self._writer.setblocking(False)
        self._reader.setblocking(False)

    # Writing ----------------------------------------------------------------------------

    def put_nowait(self, message: T) -> None:
        """Send or raise `queue.Full`; never blocks."""
        data = self._encode(message)
        try:
            self._writer.send(data)
        except BlockingIOError:
            raise queue.Full from None

    def put(self, message: T, block: bool = True, timeout: float | None = None) -> None:
        """Send, waiting up to `timeout` s for room; `queue.Full` if there was none."""
        data = self._encode(message)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                self._writer.send(data)
                return
            except BlockingIOError:
                if not block:
                    raise queue.Full from None
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise queue.Full
            select.select([], [self._writer], [], 0.2 if left is None else min(left, 0.2))

    def _encode(self, message: T) -> bytes:
        data = self.codec.encode(message)
        if len(data) > MAX_MESSAGE_BYTES:
            raise ChannelError(f"{self.name}: a message of {len(data)} bytes is over the "
                               f"{MAX_MESSAGE_BYTES}-byte limit")
        return data

    # Reading ----------------------------------------------------------------------------

    def get_nowait(self) -> T:
        return self.get(block=False)

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """The next message; `queue.Empty` if none came within `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                data = self._reader.recv(MAX_MESSAGE_BYTES)
                return self.codec.decode(data)
            except BlockingIOError:
                if not block:
                    raise queue.Empty from None
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise queue.Empty
            select.select([self._reader], [], [], 1.0 if left is None else left)

    def pending_bytes(self) -> int:
        """Bytes of messages waiting to be read (FIONREAD sums every queued packet)."""
        count = array.array("i", [0])
        try:
            fcntl.ioctl(self._reader.fileno(), termios.FIONREAD, count)
        except OSError:
            return 0
        return int(count[0])

    def close(self) -> None:
        self._reader.close()
        self._writer.close()


class BufferedSender(Generic[T]):
    """A writer that never blocks its loop: what the channel cannot take now waits in a
    bounded local buffer and is sent, in order, by the next `flush` (call it every loop).

    For events: the publisher may be restarting, and the inference process must go on
    analysing meanwhile.  Beyond `max_buffered` messages the oldest are dropped and counted."""

    def __init__(self, channel: Any, max_buffered: int = 100_000) -> None:
        self.channel = channel
        self.max_buffered = max_buffered
        self.dropped = 0
        self._buffer: deque[T] = deque()

    def send(self, message: T) -> None:
        self._buffer.append(message)
        if len(self._buffer) > self.max_buffered:
            self._buffer.popleft()
            self.dropped += 1
        self.flush()

    def flush(self, timeout: float = 0.0) -> int:
        """Send what the channel takes now (waiting up to `timeout` s in all); how many wait."""
        deadline = time.monotonic() + timeout
        while self._buffer:
            try:
                self.channel.put_nowait(self._buffer[0])
            except queue.Full:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(left, 0.01))
                continue
            self._buffer.popleft()
        return len(self._buffer)

    @property
    def waiting(self) -> int:
        return len(self._buffer)


# Codecs -----------------------------------------------------------------------------------


class ControlCommand(Enum):
    """What the supervisor can ask of the inference process."""

    RELOAD_GALLERY = "reload-gallery"


@dataclass(frozen=True)
class ControlCodec:
    def encode(self, message: ControlCommand) -> bytes:
        return message.value.encode()

    def decode(self, data: bytes) -> ControlCommand:
        return ControlCommand(data.decode())


@dataclass(frozen=True)
class JsonCodec:
    """For small records that are plain JSON data (dict in, dict out)."""

    def encode(self, message: dict[str, Any]) -> bytes:
        return json.dumps(message, separators=(",", ":")).encode()

    def decode(self, data: bytes) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(data)
        return decoded


@dataclass(frozen=True)
class LogRecordCodec:
    """Log records from the children to the supervisor's listener, already formatted by
    `QueueHandler.prepare` (message merged, traceback as text); None is the listener's
    stop sentinel."""

    _FIELDS = ("name", "levelno", "levelname", "msg", "created", "msecs", "relativeCreated",
               "process", "processName", "thread", "threadName", "exc_text", "stack_info",
               "pathname", "filename", "module", "lineno", "funcName")

    def encode(self, message: logging.LogRecord | None) -> bytes:
        if message is None:
            return b"null"
        data = {k: getattr(message, k, None) for k in self._FIELDS}
        data["msg"] = str(data["msg"])
        return json.dumps(data, default=str).encode()

    def decode(self, data: bytes) -> logging.LogRecord | None:
        fields = json.loads(data)
        return None if fields is None else logging.makeLogRecord(fields)


@dataclass(frozen=True)
class FrameRefCodec:
    def encode(self, message: FrameRef) -> bytes:
        return json.dumps([message.camera, message.slot, message.seq, message.capture_ts,
                           message.width, message.height], separators=(",", ":")).encode()

    def decode(self, data: bytes) -> FrameRef:
        camera, slot, seq, capture_ts, width, height = json.loads(data)
        return FrameRef(camera, slot, seq, capture_ts, width, height)


@dataclass(frozen=True)
class EventCodec:
    """Events in their published JSON form (`facewatch.events.codec`)."""

    def encode(self, message: Event) -> bytes:
        return to_json(message)

    def decode(self, data: bytes) -> Event:
        return from_json(data)


# What the processes share ---------------------------------------------------------------


@dataclass(frozen=True)
class LosslessCredit:
    """What a lossless source shares with the inference process (made with the ring).

    The inference process sets `analysed` to a frame's ring sequence number once the frame is
    analysed and its events are queued (frames of one camera are analysed in order), then
    rings the doorbell.  Unanalysed frames are therefore `ring.next_seq - 1 - analysed`, which
    is exact whatever happened to the processes: a counter of permits would be off after the
    inference process died holding some.  A restarted one reads the unanalysed frames back
    from the ring.
    """

    analysed: Any  # a lock-free shared int64 ('q'): ring seq of the last analysed frame, -1: none
    doorbell: Any  # a socket pair: one byte written after each analysed frame (see `ring`)

    def unanalysed(self, next_seq: int) -> int:
        return next_seq - 1 - int(self.analysed.value)

    def ring(self) -> None:
        try:
            self.doorbell[1].send(b"\0")
        except (BlockingIOError, OSError):
            pass  # a full doorbell already wakes the source

    def wait(self, timeout: float) -> None:
        """Sleep until the doorbell rings or `timeout` s pass; the count decides, not this."""
        reader = self.doorbell[0]
        if select.select([reader], [], [], timeout)[0]:
            try:
                while reader.recv(4096):
                    pass
            except (BlockingIOError, OSError):
                pass


def lossless_credit(ctx: Any) -> LosslessCredit:
    """A new credit, made by the supervisor with `ctx` (its spawn context)."""
    reader, writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    reader.setblocking(False)
    writer.setblocking(False)
    return LosslessCredit(ctx.RawValue("q", -1), (reader, writer))


@dataclass(frozen=True)
class StreamChannels:
    """What a `source:<camera>` process writes to."""

    ring_name: str
    frames: Channel[FrameRef]  # shared by all cameras, read by the inference process
    events: Channel[Event]  # camera.status events, read by the publisher
    lossless: LosslessCredit | None  # for files read as fast as possible, else None


@dataclass(frozen=True)
class InferenceChannels:
    """What the inference process reads and writes."""

    rings: dict[str, str]  # camera → ring name
    frames: Channel[FrameRef]
    events: Channel[Event]  # to the publisher
    control: Channel[ControlCommand]  # from the supervisor
    lossless: dict[str, LosslessCredit]  # camera → its credit, for lossless (non-live) cameras
    library: Any = None  # Channel[TrackRecord] to the library process, when it runs
