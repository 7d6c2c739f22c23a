"""The one place where config sections become the settings of the pipeline's stages.

Each stage owns its settings: a frozen dataclass with the defaults and the bounds, checked in
its `__post_init__` (`facewatch.errors.SettingError` names the field).  A config section
takes its defaults from there and checks nothing of its own: it calls the mapping below from
a validator, and the loader turns a `SettingError` into `file:line: section.field: ...`.

    tracking:   → TrackerSettings (facewatch.tracking.tracker), EmbedPolicySettings (…policy)
    inference:  → BatchSettings (facewatch.inference.batcher)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from facewatch.inference.batcher import BatchSettings
from facewatch.tracking.policy import EmbedPolicySettings
from facewatch.tracking.tracker import TrackerSettings

if TYPE_CHECKING:
    from facewatch.config.inference import InferenceConfig
    from facewatch.config.tracking import TrackingConfig


def tracker_settings(tracking: TrackingConfig) -> TrackerSettings:
    return TrackerSettings(high_score=tracking.high_score, low_score=tracking.low_score,
                           match_iou=tracking.match_iou, min_hits=tracking.min_hits,
                           max_lost_s=tracking.max_lost_s)


def embed_policy_settings(tracking: TrackingConfig) -> EmbedPolicySettings:
    return EmbedPolicySettings(embed_every_n=tracking.embed_every_n)


def batch_settings(inference: InferenceConfig) -> BatchSettings:
    return BatchSettings(max_batch=inference.max_batch, max_wait_ms=inference.max_wait_ms)
