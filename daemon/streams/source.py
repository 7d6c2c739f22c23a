"""The interface every decoder backend implements: open, read a frame with a timeout, close.

A backend decodes every frame of one connection and knows nothing about reconnection,
watchdogs or the analysis rate; `facewatch.streams.reader.CameraReader` adds those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from facewatch.errors import FacewatchError


class StreamError(FacewatchError):
    """The source failed (cannot connect, connection lost, decoder error); the message is one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EndOfStream(Exception):
    """The source has no more frames (end of a file that does not loop, or the server ended the stream)."""


@dataclass(frozen=True, eq=False)
class DecodedFrame:
    """One decoded frame.

    `image` is HxWx3 uint8 RGB, C-contiguous and read-only: frames are values that
    several consumers may hold; copy before drawing on one.
    """

    image: np.ndarray
    # Wall-clock time (time.time()) at which the frame left the decoder, i.e. was pulled
    # from the pipeline.  For live sources this is arrival + jitter buffer + decode, tens of
    # milliseconds after the camera exposed it; camera clocks are too often wrong to use theirs.
    capture_ts: float
    # Seconds since this source's first frame, from the stream's own timestamps; continues
    # across loops of a file.  Decimation uses it, so a file read faster than real time is
    # still thinned by its own timeline.
    stream_ts: float
    # 0-based count of frames this source has decoded since it was opened.
    index: int


class FrameSource(Protocol):
    """One connection to one camera or file."""

    def open(self) -> None:
        """Start decoding; raises `StreamError` when the source cannot be opened at all."""
        ...

    def read(self, timeout_s: float) -> DecodedFrame | None:
        """The next frame, or None if none came within about `timeout_s`.

        Raises `EndOfStream` at the end of a non-looping file (or when a server ends the
        stream) and `StreamError` when the connection or the decoder fails.
        """
        ...

    def close(self) -> None:
        """Stop decoding and release everything; safe to call twice or after a failed open."""
        ...
