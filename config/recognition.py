"""`recognition:` — when a track is given a name from the gallery."""

from __future__ import annotations

from pydantic import Field

from facewatch.config.base import Section
from facewatch.identity.threshold import (
    DEFAULT_MAX_FALSE_RATE,
    MAX_FALSE_RATE_MAX,
    MAX_FALSE_RATE_MIN,
    THRESHOLD_MAX,
    THRESHOLD_MIN,
)


class RecognitionConfig(Section):
    threshold: float | None = Field(
        default=None, gt=THRESHOLD_MIN, lt=THRESHOLD_MAX,
        description="Cosine similarity needed to name someone, fixed; default: the gallery's "
                    "own threshold, else the embedder's calibration for the gallery's size and "
                    "max_false_rate.")
    max_false_rate: float = Field(
        default=DEFAULT_MAX_FALSE_RATE, ge=MAX_FALSE_RATE_MIN, le=MAX_FALSE_RATE_MAX,
        description="Share of strangers' tracks that may be given a name; the threshold is "
                    "chosen for it and the number of people enrolled (unless fixed).")
    exit_margin: float = Field(
        default=0.05, ge=0, lt=0.5,
        description="Hysteresis: a named track keeps its name until its similarity falls below "
                    "threshold - exit_margin, so a name does not flicker at the boundary.")
    min_evidence: int = Field(
        default=2, ge=1, le=100,
        description="Embeddings of a track that must agree before face.recognized (or "
                    "face.unknown) is sent.")
