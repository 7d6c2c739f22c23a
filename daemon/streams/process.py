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

from facewatch.events.schema import CameraStatus
from facewatch.frames.ring import FrameRef, FrameRing, FrameTooLargeError
from facewatch.metrics import Metrics
from facewatch.processes.channels import Channel, LosslessCredit, StreamChannels
from facewatch.processes.child import ChildContext, ChildKind
from facewatch.streams.reader import CameraFrame, CameraReader, StreamState, StreamStatus
from facewatch.streams.settings import StreamSettings

log = logging.getLogger(__name__)

# Its heartbeat limit is set per camera by the supervisor (reconnection backoff + the
# no-frame watchdog); a file that does not loop finishes by itself.
KIND = ChildKind("source", may_finish=True, stop_timeout_s=1.0, stop_order=0,
                 preload=("facewatch.streams.preload",))
# A camera.status event that cannot be queued within this long is dropped (and logged):
# the publisher is restarting, and the next change of state will tell anyway.
_STATUS_PUT_S = 2.0


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
                if record.state is StreamState.RECONNECTING:
                    metrics.reconnects.labels(camera).inc()
                _send_status(channels, record)
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
    while credit.unanalysed(ring.next_seq) >= ring.slots - 1:
        if ctx.stopping():
            return False
        # the doorbell only wakes us up: the count above is what decides
        credit.wait(timeout=0.2)
        ctx.beat()
    return True


def _send_status(channels: StreamChannels, status: StreamStatus) -> None:
    """The camera's change of state, as the event it becomes, to the publisher."""
    try:
        channels.events.put(CameraStatus.from_stream_status(status), timeout=_STATUS_PUT_S)
    except queue.Full:
        log.warning("camera %s: the %s status was not queued (the publisher is not reading)",
                    status.camera, status.state.value)


def _put(ctx: ChildContext, frames: Channel[FrameRef], ref: FrameRef) -> bool:
    """Queue a lossless frame's reference, waiting for room rather than dropping it."""
    while not ctx.stopping():
        try:
            frames.put(ref, timeout=0.5)
            return True
        except queue.Full:
            ctx.beat()
    return False
