"""`cameras:` — one entry per source; each becomes the `StreamSettings` its reader takes."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from facewatch.config.base import Section, located_error, stage_checked
from facewatch.errors import ConfigError
from facewatch.streams.settings import DecoderBackend, RtspTransport, StreamSettings
from facewatch.streams.urls import SourceKind, classify_url, redact_url

if TYPE_CHECKING:
    from facewatch.config.inference import InferenceConfig
    from facewatch.detection.settings import GateSettings

# Camera names end up in MQTT topics, ZeroMQ topics, metric labels and file names.
CAMERA_NAME_PATTERN = r"^[a-z0-9_-]{1,64}$"
_SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


class CameraDetectionConfig(Section):
    """Per-camera detection settings; a key left out takes the `inference:` value.  Bounds
    are the detection gate's own (`facewatch.config.stages`)."""

    motion: bool | None = Field(
        default=None,
        description="false: search this camera's whole frame every frame (a PTZ camera that "
                    "keeps moving, a scene that is never still).  Default: inference.motion.")
    full_frame_every_s: float | None = Field(
        default=None,
        description="Search the whole frame at least this often (seconds); 0: every frame.  "
                    "Default: inference.full_frame_every_s.")
    min_face: float | None = Field(
        default=None,
        description="Smallest face side to detect here, in pixels of the analysed frame (a "
                    "door camera sees big faces, a wide one small faces).  Default: "
                    "inference.min_face.")
    motion_threshold: float | None = Field(
        default=None,
        description="Grey levels a pixel must change by to count as motion.  Default: "
                    "inference.motion_threshold.")

    @model_validator(mode="after")
    def _check(self) -> CameraDetectionConfig:
        from facewatch.config import stages

        stage_checked(lambda: stages.camera_detection_checked(self))
        return self


class CameraConfig(Section):
    name: str = Field(
        description="Unique name made of a-z, 0-9, _ and - (at most 64); used in MQTT and ZeroMQ "
                    "topics, metrics and snapshot file names.")
    url: str = Field(
        description="rtsp://, rtsps://, http(s)://, file:///path, a file path (relative to the "
                    "config file) or /dev/videoN.  Credentials may be written as ${ENV} references.")
    enabled: bool = Field(default=True, description="Set to false to keep the entry but not read the camera.")
    fps: float | None = Field(
        default=5.0, gt=0, le=120,
        description="Frames per second handed to analysis (decoding always runs at the source's "
                    "rate); null analyses every decoded frame.")
    realtime: bool = Field(
        default=True,
        description="Files only: true plays at the file's native rate like a camera (dropping "
                    "frames analysis cannot keep up with); false reads as fast as analysis takes "
                    "frames and loses none.")
    loop: bool = Field(
        default=False, description="Files only: start again at the end instead of going offline.")
    rtsp_transport: RtspTransport = Field(
        default="tcp",
        description="RTSP transport: tcp (survives NAT and lossy Wi-Fi), udp, or auto (UDP, then TCP).")
    rtsp_latency_ms: int = Field(
        default=100, ge=0, le=10_000,
        description="RTSP jitter buffer in milliseconds; raise it on lossy links.")
    decoder: DecoderBackend = Field(
        default="auto", description="Decoding backend: auto (GStreamer when available), gstreamer or opencv.")
    no_frame_timeout_s: float = Field(
        default=10.0, gt=0, le=3600,
        description="Reconnect when no frame has been decoded for this long (a stalled camera "
                    "sends no error).")
    reconnect_initial_s: float = Field(
        default=1.0, gt=0, le=3600, description="First wait before reconnecting; doubled per failed attempt.")
    reconnect_max_s: float = Field(
        default=30.0, gt=0, le=3600, description="Longest wait between reconnection attempts.")
    max_size: tuple[int, int] | None = Field(
        default=None,
        description="[width, height] (or \"WIDTHxHEIGHT\"): larger frames are downscaled, keeping "
                    "the aspect ratio, before analysis.  Default: the native size.")
    detection: CameraDetectionConfig = Field(
        default_factory=CameraDetectionConfig,
        description="This camera's detection settings (motion gating, full-frame interval, "
                    "smallest face); each defaults to the inference: section's.")

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        # fullmatch: re.match's `$` also matches before a trailing newline ("door\n")
        if not re.fullmatch(CAMERA_NAME_PATTERN, name):
            raise located_error((), f"{name!r}: use 1-64 of a-z, 0-9, _ and - (the name is part "
                                    f"of MQTT and ZeroMQ topics)")
        return name

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        try:
            classify_url(url)
        except ConfigError as exc:
            # Built from `redact_url`: a password in the URL is never repeated.
            raise located_error((), str(exc)) from None
        return url

    @field_validator("max_size", mode="before")
    @classmethod
    def _parse_size(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _SIZE.match(value)
            if match is None:
                raise located_error((), "expected [width, height] or \"WIDTHxHEIGHT\", e.g. 1280x720")
            return int(match.group(1)), int(match.group(2))
        return value

    @field_validator("max_size")
    @classmethod
    def _check_size(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and min(value) < 16:
            raise located_error((), f"width and height must each be at least 16, got {list(value)}")
        return value

    @model_validator(mode="after")
    def _check_combination(self) -> CameraConfig:
        kind = classify_url(self.url)
        if self.loop and kind is not SourceKind.FILE:
            raise located_error(("loop",), f"loop applies to files only, and {redact_url(self.url)} "
                                           f"is a {kind.value} source")
        if self.reconnect_initial_s > self.reconnect_max_s:
            raise located_error(("reconnect_initial_s",),
                                f"must not exceed reconnect_max_s ({self.reconnect_max_s:g})")
        try:
            self.stream_settings()
        except ConfigError as exc:  # anything StreamSettings checks that is not mirrored above
            raise located_error((), str(exc)) from None
        return self

    @property
    def kind(self) -> SourceKind:
        return classify_url(self.url)

    def detection_settings(self, defaults: InferenceConfig, phase: float = 0.0) -> GateSettings:
        """This camera's detection gate settings: its `detection:` keys over `defaults`.
        `phase` (0..1) offsets its periodic full-frame passes from other cameras'."""
        from facewatch.config import stages

        return stages.detection_settings(defaults, self.detection, phase)

    def stream_settings(self) -> StreamSettings:
        """The reader's settings for this camera (use a resolved config: relative paths made absolute)."""
        return StreamSettings(
            url=self.url, fps=self.fps, realtime=self.realtime, loop=self.loop,
            rtsp_transport=self.rtsp_transport, rtsp_latency_ms=self.rtsp_latency_ms,
            decoder=self.decoder, no_frame_timeout_s=self.no_frame_timeout_s,
            reconnect_initial_s=self.reconnect_initial_s, reconnect_max_s=self.reconnect_max_s,
            max_size=self.max_size)
