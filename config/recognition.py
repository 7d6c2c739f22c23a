"""`recognition:` — when a track is given a name from the gallery."""

from __future__ import annotations

from pydantic import Field

from facewatch.config.base import Section


class RecognitionConfig(Section):
    threshold: float | None = Field(
        default=None, gt=0, lt=1,
        description="Cosine similarity needed to name someone; default: the gallery's own "
                    "threshold, else the embedder's calibrated one.")
    exit_margin: float = Field(
        default=0.05, ge=0, lt=0.5,
        description="Hysteresis: a named track keeps its name until its similarity falls below "
                    "threshold - exit_margin, so a name does not flicker at the boundary.")
    min_evidence: int = Field(
        default=2, ge=1, le=100,
        description="Embeddings of a track that must agree before face.recognized (or "
                    "face.unknown) is sent.")
