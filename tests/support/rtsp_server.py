"""A real RTSP server on localhost that plays an H.264 MP4 file in an endless loop, for tests.

    python -m tests.support.rtsp_server --port 8554 --file clip.mp4 --mount /door

prints `READY rtsp://127.0.0.1:8554/door` on stdout once it listens, then serves until SIGTERM
or SIGINT; tests also kill -9, SIGSTOP and restart it.  `--port 0` picks a free port and
prints it.

Looping without re-encoding: the file's H.264 access units are demuxed into memory once
(`filesrc ! qtdemux ! h264parse ! appsink`).  Each client gets its own media pipeline,
`appsrc ! h264parse ! rtph264pay`, and a feeder thread pushes the access units over and over
at the file's frame rate with timestamps that keep rising, as a live camera's would.  Looping
inside a media factory by seeking fights the server's own state handling, and decoding plus
x264enc to loop costs a core on a 2-core box; re-payloading costs almost nothing.  A client
receives the clip from its first (IDR) frame, so it decodes from its first packet.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gi  # type: ignore[import-untyped]  # PyGObject ships no type information

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstApp, GstRtspServer  # type: ignore[import-untyped]  # noqa: F401

# After a pause longer than this (the process was SIGSTOPped), the feeder resumes "now"
# instead of pushing the backlog as fast as it can.
_MAX_LAG_NS = 500 * Gst.MSECOND


@dataclass(frozen=True)
class AccessUnit:
    data: bytes
    pts: int  # ns from the first access unit
    duration: int  # ns
    keyframe: bool


@dataclass(frozen=True)
class Clip:
    caps: str
    units: tuple[AccessUnit, ...]
    length_ns: int


def load_clip(path: Path) -> Clip:
    """Every H.264 access unit of an MP4 file, with the caps to push them under."""
    pipeline = Gst.parse_launch(
        "filesrc name=src ! qtdemux ! h264parse ! video/x-h264,alignment=au ! appsink name=sink sync=false")
    pipeline.get_by_name("src").set_property("location", str(path))
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    units: list[AccessUnit] = []
    caps = ""
    first_pts: int | None = None
    try:
        while (sample := sink.try_pull_sample(5 * Gst.SECOND)) is not None:
            buffer = sample.get_buffer()
            caps = caps or sample.get_caps().to_string()
            first_pts = buffer.pts if first_pts is None else first_pts
            units.append(AccessUnit(
                data=buffer.extract_dup(0, buffer.get_size()),
                pts=buffer.pts - first_pts,
                duration=buffer.duration,
                keyframe=not buffer.has_flags(Gst.BufferFlags.DELTA_UNIT)))
        message = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
        if message is not None:
            raise SystemExit(f"{path}: cannot demux H.264 from it ({message.parse_error()[0].message})")
    finally:
        pipeline.set_state(Gst.State.NULL)
    if not units or not units[0].keyframe:
        raise SystemExit(f"{path}: no H.264 video starting with a keyframe")
    return Clip(caps=caps, units=tuple(units), length_ns=units[-1].pts + units[-1].duration)


class Feeder(threading.Thread):
    """Pushes one media's access units into its appsrc, looping, paced by the pipeline clock."""

    def __init__(self, appsrc: Any, clip: Clip) -> None:
        super().__init__(daemon=True)
        self._appsrc = appsrc
        self._clip = clip
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.is_set() and self._appsrc.get_state(0)[1] != Gst.State.PLAYING:
            time.sleep(0.005)
        clock = self._appsrc.get_clock()
        if clock is None:
            return
        base = self._appsrc.get_base_time()
        units = self._clip.units
        offset = clock.get_time() - base  # running time at which unit 0 of pass 0 goes out
        index = 0
        while not self._stop.is_set():
            unit = units[index % len(units)]
            pts = offset + (index // len(units)) * self._clip.length_ns + unit.pts
            lag = clock.get_time() - base - pts
            if lag > _MAX_LAG_NS:
                offset += lag
                pts += lag
            elif lag < 0:
                time.sleep(-lag / Gst.SECOND)
            buffer = Gst.Buffer.new_wrapped(unit.data)
            buffer.pts = pts
            buffer.dts = pts
            buffer.duration = unit.duration
            if not unit.keyframe:
                buffer.set_flags(Gst.BufferFlags.DELTA_UNIT)
            if self._appsrc.emit("push-buffer", buffer) != Gst.FlowReturn.OK:
                return  # flushing: the media is being torn down
            index += 1


class LoopingFactory(GstRtspServer.RTSPMediaFactory):  # type: ignore[misc]
    """One media per client, fed by its own `Feeder`."""

    def __init__(self, clip: Clip) -> None:
        super().__init__()
        self._clip = clip
        self.set_shared(False)
        self.set_launch(
            "( appsrc name=src is-live=true format=time do-timestamp=false "
            "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )")
        self.connect("media-configure", self._configure)

    def _configure(self, _factory: Any, media: Any) -> None:
        appsrc = media.get_element().get_by_name_recurse_up("src")
        appsrc.set_property("caps", Gst.Caps.from_string(self._clip.caps))
        feeder = Feeder(appsrc, self._clip)
        media.connect("unprepared", lambda _media: feeder.stop())
        feeder.start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--file", type=Path, required=True, help="an MP4 file with H.264 video")
    parser.add_argument("--mount", default="/stream", help="path of the stream, e.g. /door")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    if not args.file.is_file():
        print(f"{args.file}: no such file", file=sys.stderr)
        return 2

    Gst.init(None)
    clip = load_clip(args.file)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    server.get_mount_points().add_factory(args.mount, LoopingFactory(clip))
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, _quit, loop)
    print(f"READY rtsp://{args.host}:{server.get_bound_port()}{args.mount}", flush=True)
    loop.run()
    return 0


def _quit(loop: Any) -> bool:
    loop.quit()
    return False  # GLib.SOURCE_REMOVE


if __name__ == "__main__":
    raise SystemExit(main())
