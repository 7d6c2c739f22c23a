"""What the face library keeps of each published track segment, collected as the track lives.

Per segment (a published track, or the part of one with one person in the box): its best
views -- an embedding, its quality and the aligned crop -- at most `keep` of them, the best
first; when the segment ends, a `TrackRecord` for the library process.  Pure bookkeeping on
arrays the inference process already has: no model runs for it.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

import cv2
import numpy as np

from facewatch.library.records import Named, TrackRecord, Unnamed, Verdict

# Room for the K best among the views a segment gets (the policy embeds a few per second).
_JPEG_QUALITY = 85


@dataclass(order=True)
class _View:
    quality: float
    order: int  # ties: the earlier view wins
    embedding: np.ndarray = field(compare=False)
    crop: np.ndarray = field(compare=False)


class SegmentViews:
    """The best `keep` views of each live segment, by tracker id."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._views: dict[int, list[_View]] = {}  # a min-heap per track: worst view first
        self._order = itertools.count()

    def add(self, track_id: int, quality: float, embedding: np.ndarray, crop: np.ndarray) -> None:
        heap = self._views.setdefault(track_id, [])
        # copies: both may be views into the batch's buffers
        view = _View(float(quality), -next(self._order), np.array(embedding, np.float32),
                     np.array(crop, np.uint8))
        if len(heap) < self.keep:
            heapq.heappush(heap, view)
        elif view > heap[0]:
            heapq.heapreplace(heap, view)

    def take(self, track_id: int) -> list[_View]:
        """The segment's views, best first, forgotten here."""
        return sorted(self._views.pop(track_id, []), reverse=True)

    def forget(self, track_id: int) -> None:
        self._views.pop(track_id, None)


def segment_record(camera: str, track_id: int, first_ts: float, last_ts: float,
                   verdict: Verdict, views: list[_View], context: np.ndarray | None,
                   embedder_sha256: str) -> TrackRecord | None:
    """The library's record of an ended segment; None when it has no view to keep."""
    if not views:
        return None
    snapshot: bytes | None = None
    if context is not None and context.size:
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(context, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
        snapshot = jpeg.tobytes() if ok else None
    return TrackRecord(
        camera=camera, track_id=track_id, first_ts=first_ts, last_ts=max(last_ts, first_ts),
        verdict=verdict, crop=views[0].crop, snapshot=snapshot,
        embeddings=np.stack([v.embedding for v in views]).astype(np.float32),
        qualities=np.asarray([v.quality for v in views], np.float32),
        embedder_sha256=embedder_sha256)


def named(person_id: str, name: str, score: float) -> Verdict:
    return Named(person_id, name, float(score))


def unnamed(score: float, nearest_id: str | None) -> Verdict:
    return Unnamed(float(score), nearest_id)
