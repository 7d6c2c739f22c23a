"""`snapshots:` — face images saved with recognition events."""

from __future__ import annotations

from pydantic import Field

from facewatch.config.base import ConfigPath, Section


class SnapshotsConfig(Section):
    enabled: bool = Field(
        default=True, description="Save the best face crop of each recognition and name it in the event.")
    dir: ConfigPath | None = Field(
        default=None, description="Where snapshots go (created 0700); default: <state_dir>/snapshots.")
    max_files: int = Field(
        default=1000, ge=1, le=10_000_000,
        description="Oldest snapshots are deleted beyond this many: only facewatch's own, which "
                    "carry the JPEG comment 'facewatch snapshot'; other files are never touched.")
    jpeg_quality: int = Field(default=85, ge=1, le=100, description="JPEG quality, 1-100.")
