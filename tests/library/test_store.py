"""The SQLite store with real faces: files and modes, queries, the search index on disk
(persisted, caught up when stale, rebuilt when corrupt), retention, and storage failures."""

from __future__ import annotations

import errno
import logging
import stat
from pathlib import Path

import numpy as np
import pytest

from facewatch.library.index import index_path
from facewatch.library.records import TrackRecord
from facewatch.library.sqlite_store import Files, SqliteLibrary
from facewatch.library.store import FaceQuery, NotFoundError, StorageError
from facewatch.library.writer import LibraryWriter, WriterSettings
from tests.library.conftest import PEOPLE, T0, FaceSample, named, record


def _records(lfw_faces: dict[str, list[FaceSample]], sha: str, per_track: int = 2) -> list[TrackRecord]:
    """Three tracks per person (views 0-1, 2-3, 4-5), alternating cameras, in time order."""
    out = []
    for p, person in enumerate(PEOPLE):
        samples = lfw_faces[person]
        for t in range(3):
            tid = p * 10 + t
            out.append(record(samples[2 * t:2 * t + per_track], tid, sha,
                              camera="door" if t % 2 == 0 else "yard",
                              verdict=named(person) if person == "Colin_Powell" else None))
    return out


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_faces_are_stored_privately_and_queried(tmp_path: Path, lfw_faces: dict[str, list[FaceSample]],
                                                embedder_sha: str) -> None:
    store = SqliteLibrary(tmp_path / "library", writer=True)
    recs = _records(lfw_faces, embedder_sha)
    faces = [store.add(r, r.mean_embedding()) for r in recs]
    assert _mode(tmp_path / "library") == 0o700 and _mode(store.path) == 0o600
    for face in faces:
        assert face.crop.is_file() and _mode(face.crop) == 0o600
        assert face.snapshot is not None and face.snapshot.read_bytes()[:2] == b"\xff\xd8"
        assert _mode(face.crop.parent) == 0o700 and _mode(face.crop.parent.parent) == 0o700
    assert store.count() == len(recs) == 24
    newest = store.faces(FaceQuery(limit=5))
    assert [f.track_id for f in newest] == [72, 71, 70, 62, 61]
    assert [f.track_id for f in store.faces(FaceQuery(limit=3, offset=3))] == [62, 61, 60]
    assert {f.camera for f in store.faces(FaceQuery(camera="yard", limit=100))} == {"yard"}
    assert store.count(FaceQuery(camera="yard")) == 8
    powell = store.faces(FaceQuery(person_id="colin_powell", limit=100))
    assert [f.track_id for f in powell] == [12, 11, 10] and powell[0].name == "Colin Powell"
    assert store.count(FaceQuery(unknown=True)) == 21
    window = store.faces(FaceQuery(since=T0 + 200, until=T0 + 400, limit=100))
    assert [f.track_id for f in window] == [40, 32, 31, 30, 22, 21, 20]
    again = store.get(faces[3].id)
    assert again == faces[3] and again.views == 2
    views, qualities = store.views(faces[3].id)
    assert np.allclose(views, recs[3].embeddings) and np.allclose(qualities, recs[3].qualities)
    with pytest.raises(NotFoundError, match="^face 999: no such face"):
        store.get(999)
    store.close()


def test_search_index_persists_catches_up_and_rebuilds(
        tmp_path: Path, lfw_faces: dict[str, list[FaceSample]], embedder_sha: str,
        caplog: pytest.LogCaptureFixture) -> None:
    recs = _records(lfw_faces, embedder_sha)
    writer = SqliteLibrary(tmp_path / "library", writer=True)
    ids = [writer.add(r, r.mean_embedding()).id for r in recs[:20]]
    writer.save_index()
    path = index_path(tmp_path / "library" / "index", embedder_sha)
    assert path.is_file() and _mode(path) == 0o600
    # more faces after the save: a reader's copy must include them (stale index on disk)
    ids += [writer.add(r, r.mean_embedding()).id for r in recs[20:]]
    query = lfw_faces["Jacques_Chirac"][5].embedding

    def top(store: SqliteLibrary) -> list[int]:
        return [fid for fid, _ in store.nearest(query[None], embedder_sha, 3)[0]]

    reader = SqliteLibrary(tmp_path / "library")
    chirac = [f.id for f in reader.faces(FaceQuery(limit=100)) if f.track_id // 10 == 3]
    assert sorted(top(reader)) == sorted(chirac)
    exact = recs[23].mean_embedding()
    assert reader.nearest(exact[None], embedder_sha, 1)[0][0][0] == ids[23]  # added after the save
    # a long-running reader (the API) sees what the writer stores later, at its next search
    late = record(lfw_faces["Jacques_Chirac"][5:6], 99, embedder_sha)
    late_id = writer.add(late, late.mean_embedding()).id
    assert late_id in top(reader)
    assert reader.nearest(query[None], embedder_sha, 2, allowed=[late_id])[0][0][0] == late_id
    writer.delete([late_id])
    reader.close()
    # a deletion is never returned, by this process or another
    writer.delete([ids[23]])
    assert ids[23] not in [fid for fid, _ in writer.nearest(exact[None], embedder_sha, 5)[0]]
    writer.close()  # saves
    reader = SqliteLibrary(tmp_path / "library")
    assert ids[23] not in [fid for fid, _ in reader.nearest(exact[None], embedder_sha, 5)[0]]
    reader.close()
    # a corrupt index file is rebuilt from the database, not handed to hnswlib
    data = bytearray(path.read_bytes())
    data[len(data) // 2:] = b"\0" * (len(data) - len(data) // 2)
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        reader = SqliteLibrary(tmp_path / "library")
        assert sorted(top(reader)) == sorted(chirac)
    assert "does not match its checksum" in caplog.text
    # a filter by camera: exact over the few candidates
    yard = reader.face_ids(FaceQuery(camera="yard"))
    hits = reader.nearest(query[None], embedder_sha, 3, allowed=yard)[0]
    assert {fid for fid, _ in hits} <= set(yard) and hits[0][0] in chirac
    reader.close()


def test_retention_deletes_the_oldest_first_and_counts(
        tmp_path: Path, lfw_faces: dict[str, list[FaceSample]], embedder_sha: str) -> None:
    store = SqliteLibrary(tmp_path / "library", max_age_s=100.0, max_faces=10, writer=True)
    recs = _records(lfw_faces, embedder_sha)
    faces = [store.add(r, r.mean_embedding()) for r in recs]
    # tracks end at T0 + 10 * track id + 2: at T0 + 302.5 the tracks 0..20 ended over 100 s ago
    report = store.enforce_retention(now=T0 + 302.5)
    assert (report.by_age, report.by_count) == (7, 7)
    kept = store.faces(FaceQuery(limit=100))
    assert [f.track_id for f in kept] == [72, 71, 70, 62, 61, 60, 52, 51, 50, 42]
    gone = [f for f in faces if f.id not in {k.id for k in kept}]
    assert all(not f.crop.exists() and f.snapshot is not None and not f.snapshot.exists()
               for f in gone)
    assert store.meta("deleted_by_age") == 7 and store.meta("deleted_by_count") == 7
    # oldest-first by count, and nothing more when within bounds
    assert store.enforce_retention(now=T0 + 302.5).deleted == 0
    hits = store.nearest(recs[0].mean_embedding()[None], embedder_sha, 24)[0]
    assert {fid for fid, _ in hits} == {k.id for k in kept}
    store.close()


class FullDisk(Files):
    def __init__(self) -> None:
        self.full = True

    def write(self, path: Path, data: bytes) -> None:
        if self.full and "snapshots" in path.parts:  # the crop was written, then the disk filled
            raise OSError(errno.ENOSPC, "No space left on device")
        super().write(path, data)


def test_a_full_disk_drops_the_record_logs_and_counts_it(
        tmp_path: Path, lfw_faces: dict[str, list[FaceSample]], embedder_sha: str,
        caplog: pytest.LogCaptureFixture) -> None:
    disk = FullDisk()
    writer = LibraryWriter(lambda: SqliteLibrary(tmp_path / "library", files=disk, writer=True),
                           WriterSettings())
    recs = _records(lfw_faces, embedder_sha)
    with caplog.at_level(logging.WARNING):
        assert writer.handle(recs[0]) is None and writer.handle(recs[1]) is None
    assert writer.dropped["storage"] == 2 and writer.stored == 0
    assert "record dropped (storage: cannot store track 0 of camera door (No space left on device))" \
        in caplog.text
    assert not list((tmp_path / "library").glob("crops/*/*.jpg"))  # nothing half-stored
    disk.full = False
    assert writer.handle(recs[2]) is not None and writer.stored == 1
    # SQLite's own "database or disk is full"
    store = writer.store
    assert isinstance(store, SqliteLibrary)
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")
    stored = [writer.handle(r) for r in recs[3:]]
    failed = stored.count(None)
    assert failed >= 10 and writer.dropped["storage"] == 2 + failed
    extra = record(lfw_faces["Serena_Williams"][:2], 999, embedder_sha)
    with pytest.raises(StorageError, match=r"cannot store track 999 .*database or disk is full"):
        store.add(extra, extra.mean_embedding())
    kept = {store.get(i).crop for i in stored if i is not None} | {store.get(1).crop}
    assert set((tmp_path / "library").glob("crops/*/*.jpg")) == kept  # no file of a dropped one
    writer.close()


def test_a_library_that_cannot_open_drops_records_without_raising(
        tmp_path: Path, lfw_faces: dict[str, list[FaceSample]], embedder_sha: str) -> None:
    (tmp_path / "library").write_text("a file where the folder should be")
    with pytest.raises(StorageError, match="cannot open the face library"):
        SqliteLibrary(tmp_path / "library")
    writer = LibraryWriter(lambda: SqliteLibrary(tmp_path / "library"), WriterSettings())
    recs = _records(lfw_faces, embedder_sha)
    assert writer.handle(recs[0]) is None and writer.handle(recs[1]) is None
    assert writer.dropped["unavailable"] == 2
    writer.housekeeping(force=True)
    writer.close()
