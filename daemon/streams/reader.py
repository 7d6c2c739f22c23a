"""One camera, kept coming: reconnection with backoff, a no-frame watchdog, decimation, status.

`CameraReader` is an iterator of typed records: `CameraFrame` for each frame handed on and
`StreamStatus` for each change of state (and each failed attempt while reconnecting).  It runs
in the caller's thread and stops when its stop flag is set, after `max_frames` frames, or at the
end of a file that does not loop; the last record is always an OFFLINE status.

    reader = CameraReader("door", StreamSettings("rtsp://cam/stream", fps=10))
    for record in reader:
        if isinstance(record, CameraFrame): ...
        else: log.info("%s is %s: %s", record.camera, record.state.value, record.reason)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Literal, Protocol

import numpy as np

from facewatch.streams.decimation import Decimator
from facewatch.streams.settings import StreamSettings
from facewatch.streams.source import EndOfStream, FrameSource, StreamError
from facewatch.streams.urls import SourceKind, scrub

# The longest a single read blocks: bounds how late a stop request or the watchdog is seen.
_READ_SLICE_S = 0.2


class StreamState(Enum):
    ONLINE = "online"
    OFFLINE = "offline"
    RECONNECTING = "reconnecting"


# Why the state changed, as a closed set for metrics and tests; `reason` says it in words.
StatusCause = Literal["connected", "eof", "unreachable", "stalled", "lost", "stopped"]


@dataclass(frozen=True)
class StreamStatus:
    camera: str
    state: StreamState
    cause: StatusCause
    # One line for people: "eof", "unreachable: Could not open resource ...", "no frames for 5 s".
    reason: str
    # Wall clock (time.time()) when the change was noticed.
    at: float
    # Consecutive failed attempts so far (RECONNECTING only), and the wait before the next.
    attempt: int = 0
    retry_in_s: float | None = None


@dataclass(frozen=True, eq=False)
class CameraFrame:
    """A frame handed on for analysis: HxWx3 uint8 RGB, read-only."""

    camera: str
    # Frames handed on by this reader, from 0; keeps rising across reconnections.
    seq: int
    image: np.ndarray
    # Wall clock when the frame left the decoder (see `DecodedFrame.capture_ts`).
    capture_ts: float
    # Seconds on the current connection's own timeline (see `DecodedFrame.stream_ts`).
    stream_ts: float


class StopFlag(Protocol):
    """threading.Event or multiprocessing.Event."""

    def is_set(self) -> bool: ...

    def set(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...


SourceFactory = Callable[[StreamSettings], FrameSource]


@dataclass(frozen=True)
class _Ended:
    """How one connection ended."""

    cause: StatusCause
    reason: str
    final: bool  # no reconnection: the reader goes OFFLINE and stops
    delivered: bool  # the connection decoded at least one frame


class CameraReader:
    def __init__(
        self,
        camera: str,
        settings: StreamSettings,
        *,
        stop: StopFlag | None = None,
        max_frames: int | None = None,
        source_factory: SourceFactory | None = None,
    ) -> None:
        """`stop` may be shared with the owning process; `source_factory` defaults to
        `facewatch.streams.auto.create_source` (backend picked by `settings.decoder`)."""
        if source_factory is None:
            from facewatch.streams.auto import create_source

            source_factory = create_source
        self.camera = camera
        self.settings = settings
        self._stop: StopFlag = stop if stop is not None else threading.Event()
        self._max_frames = max_frames
        self._factory = source_factory
        self._decimator = Decimator(settings.fps)
        self._seq = 0
        self._decoded = 0

    def stop(self) -> None:
        """Ask the iteration to end (thread-safe); seen within about 0.2 s, except during the
        OpenCV backend's blocking open (up to max(5 s, no_frame_timeout_s))."""
        self._stop.set()

    @property
    def frames_decoded(self) -> int:
        """Every frame the decoder produced, including those decimation skipped."""
        return self._decoded

    def __iter__(self) -> Iterator[CameraFrame | StreamStatus]:
        failures = 0
        while not self._done():
            ended = yield from self._connection()
            if ended is None:
                break
            if ended.final:
                yield self._status(StreamState.OFFLINE, ended.cause, ended.reason)
                return
            failures = 1 if ended.delivered else failures + 1
            s = self.settings
            delay = min(s.reconnect_initial_s * 2 ** (failures - 1), s.reconnect_max_s)
            yield self._status(
                StreamState.RECONNECTING, ended.cause, ended.reason, attempt=failures, retry_in_s=delay)
            if self._stop.wait(delay):
                break
        yield self._status(StreamState.OFFLINE, "stopped", "stopped")

    def _connection(self) -> Generator[CameraFrame | StreamStatus, None, _Ended | None]:
        """Open the source once and hand on its frames; None when asked to stop."""
        s = self.settings
        is_file = s.kind is SourceKind.FILE
        source = self._factory(s)
        self._decimator.reset()
        delivered = False
        try:
            try:
                source.open()
            except StreamError as exc:
                return _Ended("unreachable", f"unreachable: {exc.reason}", final=is_file, delivered=False)
            last_frame = time.monotonic()
            while not self._done():
                try:
                    decoded = source.read(_READ_SLICE_S)
                except EndOfStream:
                    # A file that does not loop is finished; a live source that ends is lost.
                    if is_file:
                        return _Ended("eof", "eof", final=True, delivered=delivered)
                    return _Ended("eof", "eof: the server ended the stream", final=False, delivered=delivered)
                except StreamError as exc:
                    if delivered:
                        return _Ended("lost", f"stream error: {exc.reason}", final=is_file, delivered=True)
                    return _Ended("unreachable", f"unreachable: {exc.reason}", final=is_file, delivered=False)
                now = time.monotonic()
                if decoded is None:
                    if now - last_frame >= s.no_frame_timeout_s:
                        return _Ended(
                            "stalled", f"no frames for {s.no_frame_timeout_s:g} s", final=False, delivered=delivered)
                    continue
                last_frame = now
                self._decoded += 1
                if not delivered:
                    delivered = True
                    yield self._status(StreamState.ONLINE, "connected", "online")
                if not self._decimator.take(decoded.stream_ts):
                    continue
                image = decoded.image if s.max_size is None else fit_within(decoded.image, s.max_size)
                yield CameraFrame(
                    camera=self.camera, seq=self._seq, image=image,
                    capture_ts=decoded.capture_ts, stream_ts=decoded.stream_ts)
                self._seq += 1
            return None
        finally:
            source.close()

    def _done(self) -> bool:
        return self._stop.is_set() or (self._max_frames is not None and self._seq >= self._max_frames)

    def _status(
        self, state: StreamState, cause: StatusCause, reason: str,
        attempt: int = 0, retry_in_s: float | None = None,
    ) -> StreamStatus:
        # Whatever a backend put in the reason, the camera's password never leaves the reader.
        return StreamStatus(
            camera=self.camera, state=state, cause=cause, reason=scrub(reason, self.settings.url),
            at=time.time(), attempt=attempt, retry_in_s=retry_in_s)


def fit_within(image: np.ndarray, max_size: tuple[int, int]) -> np.ndarray:
    """`image` downscaled to fit (max_width, max_height), keeping its aspect ratio; unchanged if it fits.

    Done here, on frames already chosen by decimation, rather than in the decoder pipeline,
    so that skipped frames cost no scaling and both backends scale alike.
    """
    height, width = image.shape[:2]
    max_width, max_height = max_size
    if width <= max_width and height <= max_height:
        return image
    import cv2  # only needed when a size cap is set

    scale = min(max_width / width, max_height / height)
    size = (min(max_width, max(1, round(width * scale))), min(max_height, max(1, round(height * scale))))
    resized: np.ndarray = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    resized.flags.writeable = False
    return resized
