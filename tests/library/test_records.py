"""The record handed from the inference process: checked field by field, cheap to send."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from facewatch.library.records import RecordError, TrackRecord, TrackRecordCodec, Unnamed, best_views
from tests.library.conftest import FaceSample, record


def test_a_real_record_validates_and_is_small_on_the_wire(
        lfw_faces: dict[str, list[FaceSample]], embedder_sha: str) -> None:
    samples = lfw_faces["Colin_Powell"][:5]
    rec = record(samples, 1, embedder_sha)
    rec.validate()
    codec = TrackRecordCodec()
    data = codec.encode(rec)
    # the crop (37,632 bytes raw), the JPEG snapshot, 5 embeddings + 5 floats and a small header
    header = int.from_bytes(data[4:8], "little")
    assert header < 400
    dim = samples[0].embedding.size  # the default embedder's (320 for mobilefacenet-fused)
    assert len(data) == 8 + header + 37_632 + len(samples[0].snapshot) + 5 * dim * 4 + 5 * 4
    back = codec.decode(data)
    assert back == rec and np.array_equal(back.crop, rec.crop) and back.snapshot == rec.snapshot
    assert np.array_equal(back.embeddings, rec.embeddings)
    assert np.array_equal(back.qualities, rec.qualities)
    back.validate()
    # an RGB snapshot and an unnamed verdict round-trip too
    rgb = replace(rec, snapshot=np.arange(240 * 180 * 3, dtype=np.uint8).reshape(240, 180, 3) % 251,
                  verdict=Unnamed(0.21, "ada"))
    again = codec.decode(codec.encode(rgb))
    assert again == rgb and np.array_equal(again.snapshot, rgb.snapshot)  # type: ignore[arg-type]
    v = rec.mean_embedding()
    assert abs(float(np.linalg.norm(v)) - 1) < 1e-5
    # the mean of one person's views is closer to each view than the views are to another person
    other = lfw_faces["Serena_Williams"][0].embedding
    assert min(float(v @ s.embedding) for s in samples) > float(v @ other) + 0.2


@pytest.mark.parametrize("change, field", [
    ({"camera": "Front Door"}, "camera"),
    ({"track_id": -1}, "track_id"),
    ({"first_ts": float("nan")}, "first_ts"),
    ({"last_ts": 0.0}, "last_ts"),
    ({"crop": np.zeros((112, 112), np.uint8)}, "crop"),
    ({"crop": np.zeros((112, 112, 3), np.float32)}, "crop"),
    ({"snapshot": b"GIF89a"}, "snapshot"),
    ({"snapshot": np.zeros((5000, 10, 3), np.uint8)}, "snapshot"),
    ({"snapshot": "a path"}, "snapshot"),
    ({"embeddings": np.zeros((0, 128), np.float32)}, "embeddings"),
    ({"embeddings": np.full((40, 128), 0.1, np.float32)}, "embeddings"),
    ({"embeddings": np.full((2, 128), np.inf, np.float32)}, "embeddings"),
    ({"qualities": np.zeros(7, np.float32)}, "qualities"),
    ({"embedder_sha256": "abc"}, "embedder_sha256"),
])
def test_bad_fields_are_named(lfw_faces: dict[str, list[FaceSample]], embedder_sha: str,
                              change: dict[str, object], field: str) -> None:
    rec = record(lfw_faces["Colin_Powell"][:2], 1, embedder_sha)
    bad: TrackRecord = replace(rec, **change)  # type: ignore[arg-type]
    with pytest.raises(RecordError, match=rf"^{field}: "):
        bad.validate()


def test_best_views_keeps_the_k_best_first() -> None:
    emb = np.eye(4, dtype=np.float32)
    views, q = best_views(emb, np.array([0.1, 0.9, 0.5, 0.7], np.float32), 2)
    assert q.tolist() == pytest.approx([0.9, 0.7]) and views.tolist() == [emb[1].tolist(), emb[3].tolist()]


@pytest.mark.parametrize("damage", [
    lambda b: b[:-1],  # truncated
    lambda b: b + b"x",  # trailing bytes
    lambda b: b"XXXX" + b[4:],  # not ours
    lambda b: b[:8] + b"[" + b[9:],  # a broken header
    lambda b: b"",
])
def test_damaged_bytes_are_a_record_error(lfw_faces: dict[str, list[FaceSample]], embedder_sha: str,
                                          damage: object) -> None:
    data = TrackRecordCodec().encode(record(lfw_faces["Colin_Powell"][:2], 1, embedder_sha))
    with pytest.raises(RecordError):
        TrackRecordCodec().decode(damage(data))  # type: ignore[operator]
