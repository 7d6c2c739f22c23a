"""`tracking:` — how detections are linked into tracks across frames (a ByteTrack-style tracker).

Defaults and bounds are the tracker's and the embedding policy's own (`facewatch.config.stages`).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from facewatch.config.base import Section, stage_checked
from facewatch.tracking.policy import EmbedPolicySettings
from facewatch.tracking.tracker import TrackerSettings

_T, _P = TrackerSettings, EmbedPolicySettings


class TrackingConfig(Section):
    high_score: float = Field(
        default=_T.high_score,
        description="Detections at least this confident may start tracks and are matched first.")
    low_score: float = Field(
        default=_T.low_score,
        description="Detections between low_score and high_score only extend existing tracks; "
                    "lower ones are ignored.")
    match_iou: float = Field(
        default=_T.match_iou, description="Least box overlap (IoU) for a detection to continue a track.")
    max_lost_s: float = Field(
        default=_T.max_lost_s, description="A track unseen for this long ends (track.ended).")
    min_hits: int = Field(
        default=_T.min_hits, description="Frames a track needs before it is reported (track.started).")
    embed_every_n: int = Field(
        default=_P.embed_every_n,
        description="Embed a tracked face every N analysed frames (the first frames of a track "
                    "are always embedded until it is named).")

    @model_validator(mode="after")
    def _check(self) -> TrackingConfig:
        from facewatch.config import stages

        stage_checked(lambda: stages.tracker_settings(self))
        stage_checked(lambda: stages.embed_policy_settings(self))
        return self
