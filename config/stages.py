"""The one place where config sections become the settings of the pipeline's stages.

Each stage owns its settings: a frozen dataclass with the defaults and the bounds, checked in
its `__post_init__` (`facewatch.errors.SettingError` names the field).  A config section
takes its defaults from there and checks nothing of its own: it calls the mapping below from
a validator, and the loader turns a `SettingError` into `file:line: section.field: ...`.

    tracking:   → TrackerSettings (facewatch.tracking.tracker), EmbedPolicySettings (…policy)
    inference:  → BatchSettings (facewatch.inference.batcher), and the defaults of every
                  camera's GateSettings (facewatch.detection.gate)
    cameras[].detection: → that camera's GateSettings, over inference's
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from facewatch.detection.settings import GateSettings
from facewatch.inference.batcher import BatchSettings
from facewatch.tracking.policy import EmbedPolicySettings
from facewatch.tracking.tracker import TrackerSettings

if TYPE_CHECKING:
    from facewatch.config.cameras import CameraDetectionConfig
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


def detection_settings(inference: InferenceConfig, camera: CameraDetectionConfig | None = None,
                       phase: float = 0.0) -> GateSettings:
    """A camera's detection gate: its `detection:` keys over the `inference:` defaults."""
    def pick(mine: float | None, default: float) -> float:
        return default if mine is None else mine

    d = camera
    return GateSettings(
        min_face=pick(d.min_face if d else None, inference.min_face),
        motion=inference.motion if d is None or d.motion is None else d.motion,
        full_frame_every_s=pick(d.full_frame_every_s if d else None, inference.full_frame_every_s),
        motion_threshold=pick(d.motion_threshold if d else None, inference.motion_threshold),
        phase=phase)


def camera_detection_checked(camera: CameraDetectionConfig) -> GateSettings:
    """A camera's own `detection:` keys against the gate's bounds (over its defaults)."""
    g = GateSettings()
    return GateSettings(
        min_face=g.min_face if camera.min_face is None else camera.min_face,
        motion=g.motion if camera.motion is None else camera.motion,
        full_frame_every_s=(g.full_frame_every_s if camera.full_frame_every_s is None
                            else camera.full_frame_every_s),
        motion_threshold=(g.motion_threshold if camera.motion_threshold is None
                          else camera.motion_threshold))
