"""How to read one camera: the frozen settings every stream backend and the reader take."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from facewatch.errors import ConfigError
from facewatch.streams.urls import SourceKind, classify_url, redact_url

RtspTransport = Literal["tcp", "udp", "auto"]
DecoderBackend = Literal["auto", "gstreamer", "opencv"]


@dataclass(frozen=True)
class StreamSettings:
    """One camera's stream settings, checked on construction (`ConfigError`, one line)."""

    # rtsp://, http(s)://, file://, a plain path, or /dev/videoN.
    url: str
    # Frames per second handed on for analysis; every decoded frame when None.  Decoding
    # always runs at the source's rate: skipping before the decoder would break inter frames.
    fps: float | None = None
    # Files only.  True plays a file at its native rate, dropping frames a slow consumer
    # misses, as a camera would; False decodes as fast as the consumer takes frames and
    # loses none (evaluation, benchmarks).  Live sources always run at their own rate.
    realtime: bool = True
    # Files only: start again at the end instead of going offline with reason "eof".
    loop: bool = False
    # "tcp" survives NAT and lossy Wi-Fi at the price of head-of-line stalls; "auto" tries
    # UDP first and falls back to TCP.
    rtsp_transport: RtspTransport = "tcp"
    # RTSP jitter buffer.  Low keeps detections close to the live scene; raise it on lossy
    # links where late packets would otherwise be dropped.
    rtsp_latency_ms: int = 100
    decoder: DecoderBackend = "auto"
    # The reader's own watchdog: with no decoded frame for this long the connection is
    # dropped and reopened.  A stopped (not dead) camera or RTSP server makes GStreamer
    # report nothing at all, so this is the only way such a stall is noticed.
    no_frame_timeout_s: float = 10.0
    # Exponential backoff between reconnection attempts: initial, doubled per failed
    # attempt, capped at max; reset once a connection delivers a frame.
    reconnect_initial_s: float = 1.0
    reconnect_max_s: float = 30.0
    # (width, height): frames larger than this are downscaled, keeping the aspect ratio,
    # before they are handed on.  Set it to the frame ring's slot size.
    max_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        kind = classify_url(self.url)
        shown = redact_url(self.url)
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"stream {shown}: fps must be > 0 (or unset for every frame), got {self.fps}")
        if self.loop and kind is not SourceKind.FILE:
            raise ConfigError(f"stream {shown}: loop applies to files only")
        if self.rtsp_transport not in ("tcp", "udp", "auto"):
            raise ConfigError(f"stream {shown}: rtsp_transport must be tcp, udp or auto, got {self.rtsp_transport!r}")
        if self.decoder not in ("auto", "gstreamer", "opencv"):
            raise ConfigError(f"stream {shown}: decoder must be auto, gstreamer or opencv, got {self.decoder!r}")
        if self.rtsp_latency_ms < 0:
            raise ConfigError(f"stream {shown}: rtsp_latency_ms must be >= 0, got {self.rtsp_latency_ms}")
        if not self.no_frame_timeout_s > 0:
            raise ConfigError(f"stream {shown}: no_frame_timeout_s must be > 0, got {self.no_frame_timeout_s}")
        if not 0 < self.reconnect_initial_s <= self.reconnect_max_s:
            raise ConfigError(
                f"stream {shown}: need 0 < reconnect_initial_s <= reconnect_max_s, "
                f"got {self.reconnect_initial_s} and {self.reconnect_max_s}")
        if self.max_size is not None and (len(self.max_size) != 2 or min(self.max_size) < 16):
            raise ConfigError(f"stream {shown}: max_size must be (width, height), each >= 16, got {self.max_size}")

    @property
    def kind(self) -> SourceKind:
        return classify_url(self.url)

    @property
    def shown_url(self) -> str:
        """The URL with any password replaced by ***, for logs and messages."""
        return redact_url(self.url)
