"""Per-camera tracking of face boxes (ByteTrack-style) and the policy of which faces to embed.

Pure logic on typed records: no processes, no I/O, no clock (time is the frames' capture time).
"""

from facewatch.tracking.kalman import MotionNoise
from facewatch.tracking.policy import (
    EmbedPolicy,
    EmbedPolicySettings,
    EmbedReason,
    EmbedRequest,
)
from facewatch.tracking.tracker import (
    EndedTrack,
    FaceTracker,
    TrackerSettings,
    TrackInfo,
    TrackState,
    TrackUpdate,
)

__all__ = [
    "EmbedPolicy", "EmbedPolicySettings", "EmbedReason", "EmbedRequest", "EndedTrack",
    "FaceTracker", "MotionNoise", "TrackInfo", "TrackState", "TrackUpdate", "TrackerSettings",
]
