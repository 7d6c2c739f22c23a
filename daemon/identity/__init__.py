"""Identity per track: quality-weighted evidence, a hysteresis decision, and final identities.

Pure logic on typed records (no processes, no I/O); see `facewatch.identity.stage` for the
per-frame sequence with `facewatch.tracking`.
"""

from facewatch.identity.decisions import (
    UNKNOWN,
    Changed,
    ChangeReason,
    Decision,
    FinalIdentity,
    IdentityUpdate,
    Label,
    LabelSpan,
    Observation,
    Recognized,
    Snapshot,
    Status,
    TrackIdentity,
    Unknown,
)
from facewatch.identity.evidence import Evidence, decide
from facewatch.identity.matcher import (
    GalleryMatcher,
    Matcher,
    Nearest,
    VectorMatcher,
    as_matcher,
)
from facewatch.identity.stage import IdentitySettings, IdentityStage, observations

__all__ = [
    "UNKNOWN", "ChangeReason", "Changed", "Decision", "Evidence", "FinalIdentity",
    "GalleryMatcher", "IdentitySettings", "IdentityStage", "IdentityUpdate", "Label", "LabelSpan",
    "Matcher", "Nearest", "Observation", "Recognized", "Snapshot", "Status", "TrackIdentity",
    "Unknown", "VectorMatcher", "as_matcher", "decide", "observations",
]
