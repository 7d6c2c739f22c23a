"""GStreamer backend: rtspsrc, uridecodebin or v4l2src → decodebin → RGB → appsink.

One thread owns a connection and needs no GLib main loop: frames are pulled from appsink with
`try_pull_sample` in short slices and the bus is polled between slices, so an error posted by
any element surfaces from `read()` within about 0.1 s.  decodebin picks decoders by rank, so a
hardware decoder (nvh264dec, nvv4l2decoder, vaapi) is used whenever its plugin is installed.

Importing this module loads GStreamer's typelibs; `facewatch.streams.auto` imports it only when
the GStreamer backend is selected.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import gi  # PyGObject ships no type information (see [tool.mypy] overrides)
import numpy as np

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstVideo", "1.0")
# Loading GstApp is what gives appsink elements their try_pull_sample / is_eos methods.
from gi.repository import Gst, GstApp, GstVideo  # noqa: F401

from facewatch.streams.settings import StreamSettings
from facewatch.streams.source import DecodedFrame, EndOfStream, StreamError
from facewatch.streams.urls import SourceKind, file_path, scrub, without_credentials

log = logging.getLogger(__name__)

# A pull blocks at most this long before the bus is checked for errors again.
_POLL_S = 0.1
# appsink queue depth.  Live: the newest frames win, older ones are dropped (drop=true).
# Files read as fast as possible: a full queue blocks the decoder, so no frame is lost.
_LIVE_QUEUE = 2
_FILE_QUEUE = 4
_RGB_CAPS = "video/x-raw,format=RGB"
_VIDEO_CAPS = "video/x-raw(ANY)"  # any memory: NVMM from Jetson decoders too

_init_lock = threading.Lock()


def init_gstreamer() -> None:
    """Initialise GStreamer once per process (idempotent, thread-safe)."""
    with _init_lock:
        if not Gst.is_initialized():
            Gst.init(None)


def required_elements(kind: SourceKind) -> tuple[str, ...]:
    sources = {
        SourceKind.RTSP: ("rtspsrc", "decodebin"),
        SourceKind.HTTP: ("uridecodebin",),
        SourceKind.FILE: ("uridecodebin",),
        SourceKind.DEVICE: ("v4l2src", "decodebin"),
    }
    return sources[kind] + ("videoconvert", "capsfilter", "appsink")


def missing_elements(kind: SourceKind) -> list[str]:
    """The GStreamer elements a `kind` source needs that this installation lacks."""
    init_gstreamer()
    return [name for name in required_elements(kind) if Gst.ElementFactory.find(name) is None]


class GstFrameSource:
    """A `FrameSource` over one GStreamer pipeline."""

    def __init__(self, settings: StreamSettings) -> None:
        init_gstreamer()
        self._settings = settings
        self._kind = settings.kind
        self._pipeline: Any = None
        self._sink: Any = None
        self._eos = False
        self._index = 0
        # Stream-time bookkeeping: the first PTS of the current pass over the file, and
        # how far earlier passes got, so that stream_ts keeps rising across loops.
        self._pts0: int | None = None
        self._mono0: float | None = None
        self._loop_offset = 0.0
        self._last_ts = 0.0
        self._last_duration = 0.0
        # Where the first frame sits on the file's timeline: loops seek here, not to 0, so
        # that an MP4 edit list starting with an empty edit (the Hamilton clip has 0.85 s)
        # does not freeze a real-time loop at every pass.
        self._first_position: int | None = None

    def open(self) -> None:
        if self._pipeline is not None:
            raise RuntimeError("GstFrameSource.open() called twice")
        self._pipeline, self._sink = self._build()
        if self._pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            try:
                self._poll_bus()
                reason = "the pipeline refused to start"
            except StreamError as exc:
                reason = exc.reason
            self.close()
            raise StreamError(reason)

    def read(self, timeout_s: float) -> DecodedFrame | None:
        if self._pipeline is None:
            raise RuntimeError("GstFrameSource.read() before open()")
        deadline = time.monotonic() + timeout_s
        while True:
            self._poll_bus()
            wait = min(_POLL_S, max(0.0, deadline - time.monotonic()))
            started = time.monotonic()
            sample = self._sink.try_pull_sample(int(wait * Gst.SECOND))
            if sample is not None:
                return self._to_frame(sample, capture_ts=time.time())
            if self._sink.is_eos():
                self._poll_bus()  # an error, if any, explains the EOS better than EOS does
                if self._eos:
                    if not self._settings.loop:
                        raise EndOfStream(f"end of {self._settings.shown_url}")
                    self._rewind()
                    continue
            if time.monotonic() >= deadline:
                return None
            if time.monotonic() - started < wait / 2:
                # appsink answers at once while it is not started or draining towards EOS;
                # don't spin on it.
                time.sleep(0.005)

    def close(self) -> None:
        pipeline, self._pipeline, self._sink = self._pipeline, None, None
        if pipeline is not None:
            # rtspsrc sends TEARDOWN on the way down; its teardown-timeout (set in _build)
            # bounds that wait when the server no longer answers.
            pipeline.set_state(Gst.State.NULL)

    # -- pipeline -------------------------------------------------------------------------

    def _build(self) -> tuple[Any, Any]:
        pipeline = Gst.Pipeline.new(None)
        convert = _make("videoconvert")
        caps = _make("capsfilter")
        caps.set_property("caps", Gst.Caps.from_string(_RGB_CAPS))
        sink = _make("appsink")
        self._configure_sink(sink)
        for element in (convert, caps, sink):
            pipeline.add(element)
        convert.link(caps)
        caps.link(sink)
        target = convert.get_static_pad("sink")

        if self._kind is SourceKind.RTSP:
            source = self._rtspsrc()
            decode = _make("decodebin")
            pipeline.add(source)
            pipeline.add(decode)
            source.connect("select-stream", _video_streams_only)
            source.connect("pad-added", _link_rtp_video, decode.get_static_pad("sink"))
            decode.connect("pad-added", _link_decoded_video, target)
        elif self._kind is SourceKind.DEVICE:
            source = _make("v4l2src")
            source.set_property("device", str(file_path(self._settings.url)))
            decode = _make("decodebin")
            pipeline.add(source)
            pipeline.add(decode)
            source.link(decode)
            decode.connect("pad-added", _link_decoded_video, target)
        else:
            source = _make("uridecodebin")
            source.set_property("uri", self._uri())
            # Decode the video only: an audio track left unlinked was still decoded (CPU, and
            # a decoder's buffers in every source process).
            source.set_property("caps", Gst.Caps.from_string(_VIDEO_CAPS))
            source.set_property("expose-all-streams", False)
            pipeline.add(source)
            source.connect("pad-added", _link_decoded_video, target)
        return pipeline, sink

    def _configure_sink(self, sink: Any) -> None:
        s = self._settings
        sink.set_property("emit-signals", False)
        sink.set_property("enable-last-sample", False)
        if self._kind.is_live:
            # Render as soon as decoded (no clock wait) and keep only the newest frames.
            sync, drop, depth = False, True, _LIVE_QUEUE
        elif s.realtime:
            # Play a file on the pipeline clock like a camera: a slow consumer loses frames.
            sync, drop, depth = True, True, _LIVE_QUEUE
        else:
            # As fast as the consumer pulls, and lossless: a full queue blocks the decoder.
            sync, drop, depth = False, False, _FILE_QUEUE
        sink.set_property("sync", sync)
        sink.set_property("drop", drop)
        sink.set_property("max-buffers", depth)

    def _rtspsrc(self) -> Any:
        s = self._settings
        location, user, password = without_credentials(s.url)
        source = _make("rtspsrc")
        source.set_property("location", location)
        if user is not None:
            source.set_property("user-id", user)
        if password is not None:
            source.set_property("user-pw", password)
        source.set_property("latency", s.rtsp_latency_ms)
        source.set_property("drop-on-latency", True)
        if s.rtsp_transport == "tcp":
            Gst.util_set_object_arg(source, "protocols", "tcp")
        elif s.rtsp_transport == "udp":
            Gst.util_set_object_arg(source, "protocols", "udp")
        # rtspsrc's own TCP timeout stays well behind the reader's watchdog, so a stall is
        # reported once, by the watchdog, with its clearer reason.
        tcp_timeout_s = max(20.0, 2 * s.no_frame_timeout_s)
        source.set_property("tcp-timeout", int(tcp_timeout_s * 1_000_000))
        if source.find_property("teardown-timeout") is not None:  # GStreamer >= 1.20
            source.set_property("teardown-timeout", 100 * Gst.MSECOND)
        return source

    def _uri(self) -> str:
        if self._kind is SourceKind.HTTP or self._settings.url.startswith("file:"):
            return self._settings.url
        uri: str = Gst.filename_to_uri(str(file_path(self._settings.url)))
        return uri

    # -- frames ---------------------------------------------------------------------------

    def _to_frame(self, sample: Any, capture_ts: float) -> DecodedFrame:
        info = GstVideo.VideoInfo.new_from_caps(sample.get_caps())
        buffer = sample.get_buffer()
        image = _rgb_image(buffer.extract_dup(0, buffer.get_size()), info.width, info.height, info.stride[0])
        now = time.monotonic()
        if buffer.pts == Gst.CLOCK_TIME_NONE:
            if self._mono0 is None:
                self._mono0 = now
            stream_ts = self._loop_offset + (now - self._mono0)
        else:
            if self._pts0 is None:
                self._pts0 = buffer.pts
            if self._first_position is None:
                position = sample.get_segment().to_stream_time(Gst.Format.TIME, buffer.pts)
                self._first_position = position if 0 <= position != Gst.CLOCK_TIME_NONE else 0
            stream_ts = self._loop_offset + (buffer.pts - self._pts0) / Gst.SECOND
        if buffer.duration != Gst.CLOCK_TIME_NONE:
            self._last_duration = buffer.duration / Gst.SECOND
        self._last_ts = stream_ts
        frame = DecodedFrame(image=image, capture_ts=capture_ts, stream_ts=stream_ts, index=self._index)
        self._index += 1
        return frame

    def _rewind(self) -> None:
        # The next pass starts one frame after this one ended, so stream_ts stays monotonic.
        self._loop_offset = self._last_ts + (self._last_duration or 1 / 30)
        self._pts0 = None
        self._mono0 = None
        self._eos = False
        flags = Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT
        if not self._pipeline.seek_simple(Gst.Format.TIME, flags, self._first_position or 0):
            # Not seekable (some containers, some HTTP servers): start the pipeline over.
            log.debug("%s: seek failed, restarting the pipeline to loop", self._settings.shown_url)
            self._pipeline.set_state(Gst.State.NULL)
            if self._pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
                self._poll_bus()
                raise StreamError(f"cannot restart {self._settings.shown_url} to loop it")

    # -- bus ------------------------------------------------------------------------------

    def _poll_bus(self) -> None:
        """Drain the bus: raise on an error, remember EOS, log warnings."""
        bus = self._pipeline.get_bus()
        wanted = Gst.MessageType.ERROR | Gst.MessageType.EOS | Gst.MessageType.WARNING
        while True:
            # pop_filtered discards the messages it is not asked for, so the bus never grows.
            message = bus.pop_filtered(wanted)
            if message is None:
                return
            if message.type == Gst.MessageType.EOS:
                self._eos = True
            elif message.type == Gst.MessageType.ERROR:
                error, debug = message.parse_error()
                raise StreamError(self._scrub(_one_line(error.message, debug)))
            else:
                warning, debug = message.parse_warning()
                log.debug("%s: %s", self._settings.shown_url, self._scrub(_one_line(warning.message, debug)))

    def _scrub(self, text: str) -> str:
        """Make sure no credential reaches a message, whatever an element put in its text."""
        return scrub(text, self._settings.url)


def _make(factory: str) -> Any:
    element = Gst.ElementFactory.make(factory, None)
    if element is None:
        raise StreamError(f"GStreamer element {factory} is not installed")
    return element


def _rgb_image(data: bytes, width: int, height: int, stride: int) -> np.ndarray:
    """An HxWx3 read-only view (or, with row padding, a compact copy) of packed RGB bytes."""
    flat = np.frombuffer(data, dtype=np.uint8)
    if stride == width * 3:
        return flat[: height * stride].reshape(height, width, 3)
    # GStreamer pads RGB rows to 4 bytes: drop the padding.
    rows = flat[: height * stride].reshape(height, stride)[:, : width * 3]
    image = np.ascontiguousarray(rows).reshape(height, width, 3)
    image.flags.writeable = False
    return image


def _one_line(message: str, debug: str | None) -> str:
    """GStreamer's message plus the last line of its debug text, which names the actual cause."""
    text = message.strip().rstrip(".")
    detail = (debug or "").strip().splitlines()
    if detail:
        last = detail[-1].strip().rstrip(":").strip()
        if last and last not in text and not last.startswith("/Gst"):
            text = f"{text} ({last})"
    return " ".join(text.split())


def _video_streams_only(_source: Any, _index: int, caps: Any) -> bool:
    # Don't SETUP audio or metadata streams: nothing here uses them.
    return bool(caps.get_structure(0).get_string("media") == "video")


def _link_rtp_video(_source: Any, pad: Any, decode_sink: Any) -> None:
    caps = pad.get_current_caps() or pad.query_caps(None)
    if caps.get_structure(0).get_string("media") != "video" or decode_sink.is_linked():
        return
    if pad.link(decode_sink) != Gst.PadLinkReturn.OK:
        log.warning("cannot link rtspsrc's video pad to decodebin")


# Signal handlers get pads, never the pipeline, as user data: a handler owned by an element
# of the pipeline that referenced the pipeline would keep it alive forever.
def _link_decoded_video(decoder: Any, pad: Any, target: Any) -> None:
    caps = pad.get_current_caps() or pad.query_caps(None)
    if caps.get_structure(0).get_name() != "video/x-raw" or target.is_linked():
        return
    features = caps.get_features(0)
    if features is not None and features.contains("memory:NVMM"):
        # Jetson decoders output NVMM buffers that videoconvert cannot read: nvvidconv
        # copies them to system memory first.
        convert = Gst.ElementFactory.make("nvvidconv", None)
        if convert is None:
            log.warning("decoder outputs NVMM memory but nvvidconv is not installed")
            return
        decoder.get_parent().add(convert)
        convert.sync_state_with_parent()
        pad.link(convert.get_static_pad("sink"))
        pad = convert.get_static_pad("src")
    if pad.link(target) != Gst.PadLinkReturn.OK:
        log.warning("cannot link the decoded video pad (caps %s)", caps.to_string())
