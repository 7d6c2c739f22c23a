"""Embed when it helps: which of a frame's tracked faces are worth an embedding.

Embedding is the dearest per-face step (the default embedder costs several times the whole
detection of a face), and consecutive frames of one track mostly repeat each other.  So a
face is embedded when:

- its track was just confirmed, or has fewer than `first_embeddings` embeddings (a decision
  needs a minimum of evidence, and waiting `embed_every_n` frames for it delays the first event);
- its track was lost and found again, or matched with little overlap with where it was
  predicted (IoU < `verify_iou`): the association is uncertain and the box may now hold
  someone else (an ID switch, a cut), which only an embedding can tell;
- the identity stage asked for evidence on its track (an open question, e.g. a possible switch);
- it is clearly better than anything its track has embedded (quality + `quality_gain`);
- otherwise, every `embed_every_n` matched frames of its track.

Only confirmed tracks matched in this frame are considered; tentative tracks are not embedded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from facewatch.errors import require
from facewatch.tracking.tracker import TrackUpdate

EmbedReason = Literal["new_track", "reacquired", "weak_match", "requested", "better_quality",
                      "periodic"]


@dataclass(frozen=True)
class EmbedPolicySettings:
    # Embed at least every this many matched frames of a track.
    embed_every_n: int = 5
    # A face this much better (0..1 quality) than its track's best embedded face is embedded.
    quality_gain: float = 0.1
    # Embed each of a newly confirmed track's first this-many matched frames.
    first_embeddings: int = 2
    # A track matched at an IoU below this (with its predicted box) is embedded to check it.
    # On the Hamilton clip, same-face matches at 10 fps: median 0.8, 5 % below 0.5.
    verify_iou: float = 0.5

    def __post_init__(self) -> None:
        require(1 <= self.embed_every_n <= 1000, "embed_every_n",
                f"must be 1 to 1000, got {self.embed_every_n}")
        require(0.0 < self.quality_gain <= 1.0, "quality_gain",
                f"must be in (0, 1], got {self.quality_gain:g}")
        require(self.first_embeddings >= 1, "first_embeddings",
                f"must be at least 1, got {self.first_embeddings}")
        require(0.0 <= self.verify_iou <= 1.0, "verify_iou",
                f"must be in [0, 1], got {self.verify_iou:g}")


@dataclass(frozen=True)
class EmbedRequest:
    detection: int  # index into the frame's detections (and its crops and qualities)
    track_id: int
    quality: float
    reason: EmbedReason


@dataclass
class _TrackMemory:
    embedded: int = 0
    best_quality: float = -1.0
    since_last: int = 0  # matched frames since the last embedding


class EmbedPolicy:
    """Per-camera state: one instance beside each `FaceTracker`, fed every `TrackUpdate`.

    `select` assumes that what it returns is embedded; a request that could not be served
    (the engine dropped it) is simply asked for again by the periodic rule later.
    """

    def __init__(self, settings: EmbedPolicySettings = EmbedPolicySettings()) -> None:
        self.settings = settings
        self._memory: dict[int, _TrackMemory] = {}

    def select(self, update: TrackUpdate, quality: np.ndarray,
               requested: Iterable[int] = ()) -> tuple[EmbedRequest, ...]:
        """The faces of this frame to embed; `quality` is per detection (K,), as from
        `facewatch.detection.quality.face_quality`; `requested` are track ids whose identity is waiting
        for evidence."""
        s = self.settings
        wanted = set(requested)
        for ended in update.ended:
            self._memory.pop(ended.track_id, None)
        reacquired = set(update.reacquired)
        out = []
        for track in update.matched():
            assert track.detection is not None
            mem = self._memory.setdefault(track.track_id, _TrackMemory())
            mem.since_last += 1
            q = float(quality[track.detection])
            reason: EmbedReason | None = None
            if mem.embedded < s.first_embeddings:
                reason = "new_track"
            elif track.track_id in reacquired:
                reason = "reacquired"
            elif track.match_iou < s.verify_iou:
                reason = "weak_match"
            elif track.track_id in wanted:
                reason = "requested"
            elif q >= mem.best_quality + s.quality_gain:
                reason = "better_quality"
            elif mem.since_last >= s.embed_every_n:
                reason = "periodic"
            if reason is None:
                continue
            mem.embedded += 1
            mem.best_quality = max(mem.best_quality, q)
            mem.since_last = 0
            out.append(EmbedRequest(track.detection, track.track_id, q, reason))
        live = {t.track_id for t in update.tracks}
        for gone in [k for k in self._memory if k not in live]:
            del self._memory[gone]
        return tuple(out)
