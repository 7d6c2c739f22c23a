"""`tracking:` — how detections are linked into tracks across frames (a ByteTrack-style tracker)."""

from __future__ import annotations

from pydantic import Field, model_validator

from facewatch.config.base import Section, located_error


class TrackingConfig(Section):
    high_score: float = Field(
        default=0.9, gt=0, le=1,
        description="Detections at least this confident may start tracks and are matched first.")
    low_score: float = Field(
        default=0.7, gt=0, le=1,
        description="Detections between low_score and high_score only extend existing tracks; "
                    "lower ones are ignored.")
    match_iou: float = Field(
        default=0.3, gt=0, lt=1, description="Least box overlap (IoU) for a detection to continue a track.")
    max_lost_s: float = Field(
        default=1.5, gt=0, le=600, description="A track unseen for this long ends (track.ended).")
    min_hits: int = Field(
        default=2, ge=1, le=100, description="Frames a track needs before it is reported (track.started).")
    embed_every_n: int = Field(
        default=5, ge=1, le=1000,
        description="Embed a tracked face every N analysed frames (the first frames of a track "
                    "are always embedded until it is named).")

    @model_validator(mode="after")
    def _check_scores(self) -> TrackingConfig:
        if self.low_score > self.high_score:
            raise located_error(("low_score",), f"must not exceed high_score ({self.high_score:g})")
        return self
