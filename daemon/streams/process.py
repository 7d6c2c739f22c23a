"""The `source:<camera>` process: decode one camera into its frame ring, report its status.

Live cameras never wait for analysis: a frame goes into the ring and its reference onto the
shared queue, and if analysis is behind, older frames are dropped (and counted) downstream.
Files read as fast as possible do wait (`LosslessCredit`): a frame is written only while fewer
than `slots - 1` frames of the ring are unanalysed, and its reference is put on the queue even
if that means waiting for room, so no frame of such a file is overwritten or dropped before
the inference process has analysed it -- even across its restart (see `facewatch.inference`).
"""

from __future__ import annotations

import logging
import queue
from dataclasses import dataclass
from typing import Any

from facewatch.frames.ring import FrameRing, FrameTooLargeError
from facewatch.metrics import Metrics
from facewatch.processes.child import ChildContext
from facewatch.streams.reader import CameraFrame, CameraReader, StreamState, StreamStatus
from facewatch.streams.settings import StreamSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LosslessCredit:
    """What a lossless source shares with the inference process (created by the supervisor with the ring).

    The inference process sets `analysed` to a frame's ring sequence number once the frame is analysed
    and its events are queued (frames of one camera are analysed in order), then rings the
    doorbell.  Unanalysed frames are therefore `ring.next_seq - 1 - analysed`, which is exact
    whatever happened to the processes: a counter of permits would be off after an inference process
    died holding some.  A restarted inference process reads the unanalysed frames back from the ring.
    """

    analysed: Any  # multiprocessing.Value('q'): ring seq of the last analysed frame, -1: none
    doorbell: Any  # multiprocessing.Semaphore, released after each analysed frame

    def unanalysed(self, ring: FrameRing) -> int:
        return ring.next_seq - 1 - int(self.analysed.value)


@dataclass(frozen=True)
class StreamChannels:
    """The shared objects a source process writes to (all picklable for spawn)."""

    ring_name: str
    frames: Any  # multiprocessing.Queue of FrameRef, shared by all cameras
    statuses: Any  # multiprocessing.Queue of StreamStatus (to the publisher)
    lossless: LosslessCredit | None  # for files read as fast as possible, else None


def run_source(ctx: ChildContext, camera: str, settings: StreamSettings,
               channels: StreamChannels) -> None:
    ring = FrameRing.attach(channels.ring_name)
    reader = CameraReader(camera, settings, stop=ctx.stop_event)
    metrics = Metrics()
    decoded = metrics.frames_decoded.labels(camera)
    queue_full = metrics.frames_dropped.labels(camera, "queue_full")
    counted = 0
    oversize_warned = False
    last_logged: tuple[str, str] | None = None
    try:
        for record in reader:
            ctx.beat()
            decoded.inc(reader.frames_decoded - counted)
            counted = reader.frames_decoded
            if isinstance(record, StreamStatus):
                channels.statuses.put(record)
                last_logged = _log_status(record, settings.shown_url, last_logged)
                if not ctx.ready_event.is_set():
                    ctx.ready()  # "opened": online or not, this camera has reported
                continue
            assert isinstance(record, CameraFrame)
            credit = channels.lossless
            if credit is not None and not _wait_for_room(ctx, ring, credit):
                break
            try:
                ref = ring.write(record.image, record.capture_ts)
            except FrameTooLargeError as exc:
                if not oversize_warned:
                    log.error("%s: %s", camera, exc)
                    oversize_warned = True
                continue
            if credit is not None:
                if not _put(ctx, channels.frames, ref):
                    break
                continue
            try:
                channels.frames.put_nowait(ref)
            except queue.Full:
                queue_full.inc()
    finally:
        ring.close()


def _log_status(status: StreamStatus, url: str, last: tuple[str, str] | None) -> tuple[str, str]:
    """Log a camera's change of state for whoever reads the journal (consumers get the
    camera.status events).  A camera that stays away is one warning, not one per retry: the
    same state and cause again is logged at debug level only."""
    key = (status.state.value, status.cause)
    retry = f"; retrying in {status.retry_in_s:g} s" if status.retry_in_s is not None else ""
    level = logging.INFO if status.state is StreamState.ONLINE or status.cause in ("eof", "stopped") \
        else logging.WARNING
    log.log(level if key != last else logging.DEBUG, "camera %s (%s) is %s: %s%s",
            status.camera, url, status.state.value, status.reason, retry)
    return key


def _wait_for_room(ctx: ChildContext, ring: FrameRing, credit: LosslessCredit) -> bool:
    """Wait until writing a frame overwrites no unanalysed one, staying responsive to stop
    requests; False if asked to stop."""
    while credit.unanalysed(ring) >= ring.slots - 1:
        if ctx.stopping():
            return False
        # the doorbell only wakes us up: the count above is what decides
        credit.doorbell.acquire(timeout=0.2)
        ctx.beat()
    return True


def _put(ctx: ChildContext, frames: Any, ref: Any) -> bool:
    """Queue a lossless frame's reference, waiting for room rather than dropping it."""
    while not ctx.stopping():
        try:
            frames.put(ref, timeout=0.5)
            return True
        except queue.Full:
            ctx.beat()
    return False
