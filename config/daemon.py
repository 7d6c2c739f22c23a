"""The whole daemon configuration: one field per section, each section in its own module."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from facewatch.config.api import ApiConfig
from facewatch.config.base import ConfigPath, Section, located_error
from facewatch.config.cameras import CameraConfig
from facewatch.config.inference import InferenceConfig
from facewatch.config.library import LibraryConfig
from facewatch.config.log import LoggingConfig
from facewatch.config.metrics import MetricsConfig
from facewatch.config.outbox import OutboxConfig
from facewatch.config.outputs import OutputsConfig
from facewatch.config.recognition import RecognitionConfig
from facewatch.config.snapshots import SnapshotsConfig
from facewatch.config.tracking import TrackingConfig
from facewatch.streams.urls import redact_url

Location = tuple[str | int, ...]

# Sections that may be written empty (every key commented out) to mean "all defaults"
# (`cameras:` with every camera commented out: none yet).
_OPTIONAL_SECTIONS = ("cameras", "outputs", "outbox", "inference", "tracking", "recognition",
                      "snapshots", "metrics", "logging", "api", "library")


class DaemonConfig(Section):
    version: Literal[1] = Field(default=1, description="Format version of this file; 1.")
    cameras: tuple[CameraConfig, ...] = Field(
        default=(), description="The cameras (or files) to analyse; none yet is allowed (the "
                                "daemon waits for `facewatch cameras add`).")
    gallery: ConfigPath | None = Field(
        default=None,
        description="The gallery: a YAML file or a folder with one sub-folder per person "
                    "(relative to this file); default <state_dir>/gallery.yaml.  It may not "
                    "exist yet (nobody enrolled).  Read when the daemon starts, not when "
                    "validating.")
    outputs: OutputsConfig = Field(
        default_factory=OutputsConfig, description="Where events are published.")
    outbox: OutboxConfig = Field(
        default_factory=OutboxConfig,
        description="Bounds of the on-disk queue of events waiting for the MQTT broker.")
    state_dir: ConfigPath | None = Field(
        default=None, description="Folder for the daemon's state (snapshots, outbox); default "
                          "$STATE_DIRECTORY under systemd, else the per-user state folder.")
    inference: InferenceConfig = Field(
        default_factory=InferenceConfig, description="Models, backend and batching.")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="Face tracking.")
    recognition: RecognitionConfig = Field(
        default_factory=RecognitionConfig, description="Naming tracks from the gallery.")
    snapshots: SnapshotsConfig = Field(
        default_factory=SnapshotsConfig, description="Face snapshots saved with events.")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Prometheus metrics.")
    api: ApiConfig = Field(default_factory=ApiConfig,
                           description="The HTTP API and the review page.")
    library: LibraryConfig = Field(
        default_factory=LibraryConfig, description="The face library (history of faces seen).")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Log level.")

    # Set by the loader: the file and the line of every value, for messages after validation.
    _source: Path | None = PrivateAttr(None)
    _lines: dict[Location, int] = PrivateAttr(default_factory=dict)
    _resolved: bool = PrivateAttr(False)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if not (k in _OPTIONAL_SECTIONS and v is None)}
        return data

    @field_validator("cameras")
    @classmethod
    def _check_cameras(cls, cameras: tuple[CameraConfig, ...]) -> tuple[CameraConfig, ...]:
        first: dict[str, int] = {}
        for i, camera in enumerate(cameras):
            if camera.name in first:
                raise located_error((i, "name"), f"{camera.name!r} is already the name of "
                                                 f"cameras[{first[camera.name]}]; names must be unique")
            first[camera.name] = i
        return cameras

    @property
    def source(self) -> Path | None:
        """The file this was loaded from, if any."""
        return self._source

    @property
    def is_resolved(self) -> bool:
        return self._resolved

    @property
    def gallery_path(self) -> Path:
        """The gallery file or folder of a resolved config."""
        assert self.gallery is not None, "resolve() the config first"
        return Path(self.gallery)

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cameras)

    @property
    def enabled_cameras(self) -> tuple[CameraConfig, ...]:
        return tuple(c for c in self.cameras if c.enabled)

    def camera(self, name: str) -> CameraConfig:
        for c in self.cameras:
            if c.name == name:
                return c
        raise KeyError(name)

    def written(self, loc: Location) -> bool:
        """Whether the file itself gives `loc` (rather than a default filling it)."""
        return tuple(loc) in self._lines

    def where(self, loc: Location) -> str:
        """`file:line` of the deepest known part of `loc` (just `file` or `config` if unknown)."""
        if self._source is None:
            return "config"
        for n in range(len(loc), -1, -1):
            line = self._lines.get(tuple(loc[:n]))
            if line is not None:
                return f"{self._source}:{line}"
        return str(self._source)

    def public_dict(self) -> dict[str, Any]:
        """Every effective value as JSON data, safe to print: secrets and URL passwords hidden."""
        data: dict[str, Any] = self.model_dump(mode="json")
        for camera in data["cameras"]:
            camera["url"] = redact_url(camera["url"])
        mqtt = data["outputs"].get("mqtt")
        if mqtt is not None and mqtt.get("password") is not None:
            mqtt["password"] = "***"
        return data
