"""The record the inference process hands to the library per published track segment.

One `TrackRecord` per segment (a track, or the part of it with one person in the box): who it
was decided to be, its best aligned face, the context snapshot and up to K embeddings of its
best-quality views.  It crosses a process boundary on a bounded channel, so it holds only compact
arrays and plain values: a 112x112 uint8 crop (37 KB), the snapshot preferably as JPEG bytes
(the inference process encodes it for its own snapshot file anyway), K x D float32 embeddings.
`TrackRecordCodec` puts it on the channel as explicit bytes (a JSON header, then the raw
arrays: no pickle), about 40 KB with a JPEG snapshot.  `validate()` is what the library
process checks before storing one; a bad record is dropped, never stored half.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CROP_SHAPE = (112, 112, 3)
CAMERA_PATTERN = re.compile(r"^[a-z0-9_-]{1,64}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
# Snapshots are context crops of a few hundred pixels; anything far larger is a mistake.
MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024
MAX_SNAPSHOT_SIDE = 2048


class RecordError(ValueError):
    """A record that cannot be stored; the message names the field."""


@dataclass(frozen=True)
class Named:
    """The segment was named: an enrolled person at `score` (cosine similarity)."""

    person_id: str
    name: str
    score: float


@dataclass(frozen=True)
class Unnamed:
    """Nobody in the gallery was close enough: `score` to the nearest person, `nearest_id`."""

    score: float
    nearest_id: str | None


Verdict = Named | Unnamed


@dataclass(frozen=True)
class TrackRecord:
    camera: str
    track_id: int  # as published in the segment's events (unique across cameras)
    first_ts: float  # capture time of the segment's first frame (Unix seconds)
    last_ts: float
    verdict: Verdict
    crop: np.ndarray = field(compare=False)  # (112, 112, 3) uint8 RGB, aligned: the best view
    snapshot: bytes | np.ndarray | None = field(compare=False)  # JPEG bytes, or (H, W, 3) RGB
    embeddings: np.ndarray = field(compare=False)  # (K, D) float32 unit vectors, best first
    qualities: np.ndarray = field(compare=False)  # (K,) float32 0..1, of those views
    embedder_sha256: str

    @property
    def known(self) -> bool:
        return isinstance(self.verdict, Named)

    def validate(self, max_embeddings: int = 32) -> None:
        """Raise `RecordError` (one line naming the field) unless this can be stored."""
        if not isinstance(self.camera, str) or not CAMERA_PATTERN.match(self.camera):
            raise RecordError(f"camera: {self.camera!r} is not a camera name")
        if not isinstance(self.track_id, int) or self.track_id < 0:
            raise RecordError(f"track_id: {self.track_id!r} is not a track id")
        for name in ("first_ts", "last_ts"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise RecordError(f"{name}: {value!r} is not a time")
        if self.last_ts < self.first_ts:
            raise RecordError(f"last_ts: {self.last_ts} is before first_ts {self.first_ts}")
        if not np.isfinite(self.verdict.score):
            raise RecordError(f"verdict.score: {self.verdict.score!r} is not a number")
        crop = self.crop
        if not isinstance(crop, np.ndarray) or crop.shape != CROP_SHAPE or crop.dtype != np.uint8:
            shape = getattr(crop, "shape", None)
            raise RecordError(f"crop: expected a {CROP_SHAPE} uint8 array, got {shape}")
        snap = self.snapshot
        if isinstance(snap, bytes):
            if not snap.startswith(b"\xff\xd8") or len(snap) > MAX_SNAPSHOT_BYTES:
                raise RecordError(f"snapshot: not a JPEG of at most {MAX_SNAPSHOT_BYTES} bytes")
        elif isinstance(snap, np.ndarray):
            if (snap.ndim != 3 or snap.shape[2] != 3 or snap.dtype != np.uint8
                    or max(snap.shape[:2]) > MAX_SNAPSHOT_SIDE or min(snap.shape[:2]) < 1):
                raise RecordError(f"snapshot: expected an (H, W, 3) uint8 array up to "
                                  f"{MAX_SNAPSHOT_SIDE} px, got {snap.shape} {snap.dtype}")
        elif snap is not None:
            raise RecordError(f"snapshot: expected JPEG bytes or an RGB array, got "
                              f"{type(snap).__name__}")
        emb = self.embeddings
        if (not isinstance(emb, np.ndarray) or emb.ndim != 2 or emb.shape[0] < 1
                or emb.shape[1] < 1 or emb.shape[0] > max_embeddings):
            raise RecordError(f"embeddings: expected (K, D) with 1 <= K <= {max_embeddings}, "
                              f"got {getattr(emb, 'shape', None)}")
        if not np.all(np.isfinite(emb)):
            raise RecordError("embeddings: not finite")
        q = self.qualities
        if not isinstance(q, np.ndarray) or q.shape != (emb.shape[0],) or not np.all(np.isfinite(q)):
            raise RecordError(f"qualities: expected ({emb.shape[0]},) finite values, got "
                              f"{getattr(q, 'shape', None)}")
        if not isinstance(self.embedder_sha256, str) or not SHA256_PATTERN.match(self.embedder_sha256):
            raise RecordError(f"embedder_sha256: {self.embedder_sha256!r} is not a sha256")

    def mean_embedding(self) -> np.ndarray:
        """The segment's one vector: the quality-weighted mean of its views, unit length."""
        return track_vector(self.embeddings, self.qualities)


def track_vector(embeddings: np.ndarray, qualities: np.ndarray) -> np.ndarray:
    """Quality-weighted mean of unit vectors (weights floored so no view counts for nothing)."""
    emb = np.asarray(embeddings, np.float32)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    w = np.maximum(np.asarray(qualities, np.float32), 0.05)
    mean = (emb * w[:, None]).sum(axis=0)
    out: np.ndarray = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
    return out


def best_views(embeddings: np.ndarray, qualities: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The `k` highest-quality views, best first: what a producer puts in a record."""
    order = np.argsort(-np.asarray(qualities), kind="stable")[:k]
    return (np.ascontiguousarray(np.asarray(embeddings, np.float32)[order]),
            np.asarray(qualities, np.float32)[order])


_MAGIC = b"FWTR"
_HEADER = struct.Struct("<4sI")  # magic, length of the JSON header that follows


@dataclass(frozen=True)
class TrackRecordCodec:
    """`TrackRecord` <-> bytes for the daemon's channels (`facewatch.processes.channels`):
    ``FWTR | header length (u32 LE) | JSON header | crop | embeddings | qualities | snapshot``,
    arrays raw in C order.  `decode` checks every length and raises `RecordError`."""

    def encode(self, message: TrackRecord) -> bytes:
        v = message.verdict
        verdict: dict[str, Any] = (
            {"kind": "named", "person_id": v.person_id, "name": v.name, "score": float(v.score)}
            if isinstance(v, Named) else
            {"kind": "unnamed", "score": float(v.score), "nearest_id": v.nearest_id})
        emb = np.ascontiguousarray(message.embeddings, np.float32)
        q = np.ascontiguousarray(message.qualities, np.float32)
        snap = message.snapshot
        if isinstance(snap, np.ndarray):
            snap_kind, snap_shape, snap_bytes = "rgb", list(snap.shape), \
                np.ascontiguousarray(snap, np.uint8).tobytes()
        elif isinstance(snap, bytes):
            snap_kind, snap_shape, snap_bytes = "jpeg", [], snap
        else:
            snap_kind, snap_shape, snap_bytes = "none", [], b""
        header = json.dumps({
            "camera": message.camera, "track_id": int(message.track_id),
            "first_ts": float(message.first_ts), "last_ts": float(message.last_ts),
            "verdict": verdict, "embeddings": list(emb.shape), "snapshot": snap_kind,
            "snapshot_shape": snap_shape, "snapshot_bytes": len(snap_bytes),
            "embedder_sha256": message.embedder_sha256}, separators=(",", ":")).encode()
        crop = np.ascontiguousarray(message.crop, np.uint8)
        return b"".join((_HEADER.pack(_MAGIC, len(header)), header, crop.tobytes(),
                         emb.tobytes(), q.tobytes(), snap_bytes))

    def decode(self, data: bytes) -> TrackRecord:
        try:
            magic, size = _HEADER.unpack_from(data)
            if magic != _MAGIC:
                raise RecordError("not a track record")
            h = json.loads(data[_HEADER.size:_HEADER.size + size])
            at = _HEADER.size + size
            k, d = (int(n) for n in h["embeddings"])
            crop_n = CROP_SHAPE[0] * CROP_SHAPE[1] * CROP_SHAPE[2]
            sizes = (crop_n, 4 * k * d, 4 * k, int(h["snapshot_bytes"]))
            if at + sum(sizes) != len(data) or min(sizes) < 0:
                raise RecordError(f"{len(data)} bytes where the header says {at + sum(sizes)}")
            parts = []
            for n in sizes:
                parts.append(data[at:at + n])
                at += n
            crop = np.frombuffer(parts[0], np.uint8).reshape(CROP_SHAPE)
            emb = np.frombuffer(parts[1], np.float32).reshape(k, d)
            q = np.frombuffer(parts[2], np.float32)
            snapshot: bytes | np.ndarray | None = None
            if h["snapshot"] == "jpeg":
                snapshot = parts[3]
            elif h["snapshot"] == "rgb":
                snapshot = np.frombuffer(parts[3], np.uint8).reshape(h["snapshot_shape"])
            v = h["verdict"]
            verdict: Verdict = (Named(v["person_id"], v["name"], float(v["score"]))
                                if v["kind"] == "named" else
                                Unnamed(float(v["score"]), v["nearest_id"]))
            return TrackRecord(h["camera"], h["track_id"], h["first_ts"], h["last_ts"], verdict,
                               crop, snapshot, emb, q, h["embedder_sha256"])
        except RecordError:
            raise
        except (struct.error, ValueError, KeyError, TypeError) as exc:
            raise RecordError(f"undecodable track record ({type(exc).__name__}: {exc})") from None
