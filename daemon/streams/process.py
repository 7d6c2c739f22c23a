"""The `source:<camera>` process: decode one camera into its frame ring, report its status.

Live cameras never wait for analysis: a frame goes into the ring and its reference onto the
shared queue, and if analysis is behind, older frames are dropped (and counted) downstream.
Files read as fast as possible do wait: each frame takes a permit that the inference process
returns once it has read the frame, so no frame of a file is overwritten before analysis.
"""

from __future__ import annotations

import logging
import queue
from dataclasses import dataclass
from typing import Any

from facewatch.frames.ring import FrameRing, FrameTooLargeError
from facewatch.metrics import Metrics
from facewatch.streams.reader import CameraFrame, CameraReader, StreamStatus
from facewatch.streams.settings import StreamSettings
from facewatch.supervisor.process import ChildContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamChannels:
    """The shared objects a source process writes to (all picklable for spawn)."""

    ring_name: str
    frames: Any  # multiprocessing.Queue of FrameRef, shared by all cameras
    statuses: Any  # multiprocessing.Queue of StreamStatus (to the publisher)
    permits: Any | None  # multiprocessing.Semaphore for lossless files, else None


def run_source(ctx: ChildContext, camera: str, settings: StreamSettings,
               channels: StreamChannels) -> None:
    ring = FrameRing.attach(channels.ring_name)
    reader = CameraReader(camera, settings, stop=ctx.stop_event)
    metrics = Metrics()
    decoded = metrics.frames_decoded.labels(camera)
    queue_full = metrics.frames_dropped.labels(camera, "queue_full")
    counted = 0
    oversize_warned = False
    try:
        for record in reader:
            ctx.beat()
            decoded.inc(reader.frames_decoded - counted)
            counted = reader.frames_decoded
            if isinstance(record, StreamStatus):
                channels.statuses.put(record)
                if not ctx.ready_event.is_set():
                    ctx.ready()  # "opened": online or not, this camera has reported
                continue
            assert isinstance(record, CameraFrame)
            if channels.permits is not None and not _acquire(ctx, channels.permits):
                break
            try:
                ref = ring.write(record.image, record.capture_ts)
            except FrameTooLargeError as exc:
                if not oversize_warned:
                    log.error("%s: %s", camera, exc)
                    oversize_warned = True
                if channels.permits is not None:
                    channels.permits.release()
                continue
            try:
                channels.frames.put_nowait(ref)
            except queue.Full:
                queue_full.inc()
                if channels.permits is not None:
                    channels.permits.release()
    finally:
        ring.close()


def _acquire(ctx: ChildContext, permits: Any) -> bool:
    """Wait for analysis to make room, staying responsive to stop requests."""
    while not ctx.stopping():
        if permits.acquire(timeout=0.5):
            return True
        ctx.beat()
    return False
