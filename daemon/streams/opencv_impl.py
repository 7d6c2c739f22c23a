"""OpenCV backend: cv2.VideoCapture over FFmpeg (V4L2 for devices), the fallback where GStreamer is missing.

VideoCapture.read() blocks inside FFmpeg with no usable timeout: against a stopped server it
retries its read timeout thousands of times.  So one decode thread per connection owns the
capture and feeds a small queue, and `read(timeout)` waits on the queue; the reader's watchdog
then sees a stall as it does with GStreamer.  The queue behaves like the GStreamer appsink:
live sources and real-time files keep the newest frames and drop older ones, files read as
fast as possible block the decoder and lose nothing.

A decode thread stuck in FFmpeg when the connection is closed cannot be interrupted: it is
left to finish (and release its capture) on its own once FFmpeg returns.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import cv2

from facewatch.streams.settings import StreamSettings
from facewatch.streams.source import DecodedFrame, EndOfStream, StreamError
from facewatch.streams.urls import SourceKind, file_path

log = logging.getLogger(__name__)

_OPTIONS_VAR = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_options_lock = threading.Lock()
# FFmpeg's open includes DESCRIBE/SETUP/PLAY and probing the first frames; never less than this.
_MIN_OPEN_TIMEOUT_S = 5.0
_LIVE_QUEUE = 2
_FILE_QUEUE = 4
# The decode thread checks for a stop request at least this often while it waits.
_TICK_S = 0.1

_Item = DecodedFrame | EndOfStream | StreamError


class OpenCvFrameSource:
    """A `FrameSource` over one cv2.VideoCapture, decoded in its own thread."""

    def __init__(self, settings: StreamSettings) -> None:
        self._settings = settings
        self._kind = settings.kind
        self._lossless = self._kind is SourceKind.FILE and not settings.realtime
        self._queue: queue.Queue[_Item] = queue.Queue(_FILE_QUEUE if self._lossless else _LIVE_QUEUE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed: EndOfStream | StreamError | None = None

    def open(self) -> None:
        if self._thread is not None:
            raise RuntimeError("OpenCvFrameSource.open() called twice")
        capture = _open_capture(self._settings)
        self._thread = threading.Thread(
            target=_Decoder(self._settings, capture, self._queue, self._stop).run,
            name=f"decode {self._settings.shown_url}", daemon=True)
        self._thread.start()

    def read(self, timeout_s: float) -> DecodedFrame | None:
        if self._thread is None:
            raise RuntimeError("OpenCvFrameSource.read() before open()")
        if self._failed is not None:
            raise self._failed
        try:
            item = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None
        if isinstance(item, DecodedFrame):
            return item
        self._failed = item
        raise item

    def close(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(2 * _TICK_S)
            if thread.is_alive():
                log.debug("%s: decode thread still blocked in FFmpeg; it will exit on its own",
                          self._settings.shown_url)


class _Decoder:
    """The decode thread's loop; it owns the capture and releases it when it ends."""

    def __init__(self, settings: StreamSettings, capture: Any, out: queue.Queue[_Item],
                 stop: threading.Event) -> None:
        self._settings = settings
        self._kind = settings.kind
        self._capture = capture
        self._out = out
        self._stop = stop
        self._lossless = self._kind is SourceKind.FILE and not settings.realtime
        self._paced = self._kind is SourceKind.FILE and settings.realtime
        self._index = 0
        # Stream-time bookkeeping, as in the GStreamer backend: stream_ts keeps rising across loops.
        self._pos0: float | None = None
        self._loop_offset = 0.0
        self._last_ts = 0.0
        fps = capture.get(cv2.CAP_PROP_FPS)
        self._frame_s = 1 / fps if fps and 1 <= fps <= 240 else 1 / 30
        # Real-time files: the monotonic time at which stream_ts 0 is due.
        self._start: float | None = None

    def run(self) -> None:
        try:
            while not self._stop.is_set():
                item = self._next()
                if self._paced and isinstance(item, DecodedFrame):
                    self._wait_until_due(item.stream_ts)
                self._put(item)
                if not isinstance(item, DecodedFrame):
                    return
        finally:
            self._capture.release()

    def _next(self) -> _Item:
        ok, bgr = self._capture.read()
        if not ok:
            if self._kind is not SourceKind.FILE:
                return StreamError(
                    f"no frame from {self._settings.shown_url} (connection lost or closed)")
            if not self._settings.loop:
                return EndOfStream(f"end of {self._settings.shown_url}")
            try:
                self._rewind()
            except StreamError as exc:
                return exc
            ok, bgr = self._capture.read()
            if not ok:
                return StreamError(f"{self._settings.shown_url} yields no frame after rewinding")
        capture_ts = time.time()
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        rgb.flags.writeable = False
        position = self._capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if self._pos0 is None:
            self._pos0 = position
        stream_ts = self._loop_offset + max(0.0, position - self._pos0)
        self._last_ts = stream_ts
        frame = DecodedFrame(image=rgb, capture_ts=capture_ts, stream_ts=stream_ts, index=self._index)
        self._index += 1
        return frame

    def _rewind(self) -> None:
        # Reopening is slower than seeking but works for every container FFmpeg reads.
        self._loop_offset = self._last_ts + self._frame_s
        self._pos0 = None
        self._capture.release()
        self._capture = _open_capture(self._settings)

    def _wait_until_due(self, stream_ts: float) -> None:
        now = time.monotonic()
        if self._start is None:
            self._start = now - stream_ts
        due = self._start + stream_ts
        while not self._stop.is_set() and (wait := due - time.monotonic()) > 0:
            time.sleep(min(wait, _TICK_S))

    def _put(self, item: _Item) -> None:
        if self._lossless:
            while not self._stop.is_set():
                try:
                    self._out.put(item, timeout=_TICK_S)
                    return
                except queue.Full:
                    continue
            return
        while True:  # keep the newest: drop the oldest queued frame to make room
            try:
                self._out.put_nowait(item)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._out.get_nowait()


def _open_capture(settings: StreamSettings) -> Any:
    kind = settings.kind
    if kind is SourceKind.DEVICE:
        capture = cv2.VideoCapture(str(file_path(settings.url)), cv2.CAP_V4L2)
    else:
        target = str(file_path(settings.url)) if kind is SourceKind.FILE else settings.url
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(max(_MIN_OPEN_TIMEOUT_S, settings.no_frame_timeout_s) * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(settings.no_frame_timeout_s * 1000),
        ]
        transport = settings.rtsp_transport if kind is SourceKind.RTSP else "auto"
        with _ffmpeg_options(transport):
            capture = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
    if not capture.isOpened():
        capture.release()
        raise StreamError(f"OpenCV cannot open {settings.shown_url}{_why_unopened(settings)}")
    return capture


def _why_unopened(settings: StreamSettings) -> str:
    """What can be told about a file VideoCapture refused (OpenCV itself says nothing)."""
    if settings.kind is not SourceKind.FILE:
        return ""
    path = file_path(settings.url)
    try:
        size = path.stat().st_size
        with path.open("rb"):
            pass
    except FileNotFoundError:
        return ": no such file"
    except PermissionError:
        return ": permission denied"
    except OSError as exc:
        return f": {exc.strerror}"
    if size == 0:
        return ": the file is empty"
    return ": not a video FFmpeg can decode here (another kind of file, or a container or codec it lacks)"


@contextlib.contextmanager
def _ffmpeg_options(transport: str) -> Iterator[None]:
    """Set FFmpeg's RTSP transport for the VideoCapture opened inside the block.

    OpenCV offers no open parameter for it, only the process-wide environment variable
    OPENCV_FFMPEG_CAPTURE_OPTIONS, read when a capture opens.  It is set for the duration of
    the open, under a lock, and restored; a value the user exported is left alone.
    """
    if transport == "auto" or _OPTIONS_VAR in os.environ:
        yield
        return
    with _options_lock:
        os.environ[_OPTIONS_VAR] = f"rtsp_transport;{transport}"
        try:
            yield
        finally:
            del os.environ[_OPTIONS_VAR]
