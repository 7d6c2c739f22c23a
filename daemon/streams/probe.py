"""Open a stream and read one frame, within a time limit: what `facewatch cameras add` checks
before it writes a camera into the config, so a wrong URL, password or codec is one line now
rather than a camera that never comes online."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

from facewatch.streams.reader import CameraFrame, CameraReader, StreamState, StreamStatus
from facewatch.streams.settings import StreamSettings
from facewatch.streams.source import StreamError


@dataclass(frozen=True)
class ProbeResult:
    width: int
    height: int
    seconds: float  # from opening to the first frame


def probe_stream(settings: StreamSettings, timeout_s: float = 15.0, camera: str = "probe"
                 ) -> ProbeResult:
    """The size of the first frame the stream gives; `StreamError` (reason with the URL's
    password hidden) if it cannot be opened or decoded, or gives no frame within `timeout_s`."""
    # every decoded frame counts (no decimation), and the first failure is the answer
    probe = replace(settings, fps=None, no_frame_timeout_s=timeout_s, loop=False,
                    reconnect_initial_s=timeout_s, reconnect_max_s=timeout_s)
    reader = CameraReader(camera, probe, max_frames=1)
    answer: list[CameraFrame | StreamStatus] = []
    done = threading.Event()
    started = time.monotonic()

    def read() -> None:
        try:
            for record in reader:
                if isinstance(record, CameraFrame) or record.state is not StreamState.ONLINE:
                    answer.append(record)
                    break
        finally:
            done.set()

    # A daemon thread: OpenCV's open cannot be interrupted, and must not hold up the answer.
    threading.Thread(target=read, name=f"probe:{camera}", daemon=True).start()
    finished = done.wait(timeout_s)
    reader.stop()
    if not finished or not answer:
        raise StreamError(f"{settings.shown_url}: no frame within {timeout_s:g} s")
    record = answer[0]
    if isinstance(record, StreamStatus):
        raise StreamError(f"{settings.shown_url}: {record.reason}")
    height, width = record.image.shape[:2]
    return ProbeResult(int(width), int(height), time.monotonic() - started)
