"""The face library on one machine: SQLite (WAL, 0600) under `<state_dir>/library`, face
images as JPEG files in 0700 folders, and an hnswlib index per embedder for search.

    library/
      library.sqlite          faces, groups of unknown faces, gallery edits (for undo)
      crops/<camera>/<track id>.jpg        the best aligned face of each track
      snapshots/<camera>/<track id>.jpg    the face in its surroundings
      index/<embedder>.hnsw (+ .json)      search index, rebuilt from the database if stale

Several processes may open it at once (the daemon's writer, the CLI, the API): SQLite's WAL
lets readers run beside the one writer, and every write is one short transaction.  Only the
process that adds faces saves the index (`save_index`); the others bring their copy up to date
in memory when they open it.

Any failure to write (a full disk, a read-only or vanished folder, SQLite's "database or disk
is full") raises `StorageError`; the record is then not stored at all: files written for it are
removed again.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from facewatch.library.index import SearchIndex, index_path
from facewatch.library.records import Named, RecordError, TrackRecord
from facewatch.library.store import (
    Action,
    Cluster,
    Face,
    FaceQuery,
    FaceViews,
    NotFoundError,
    RetentionReport,
    StorageError,
)

log = logging.getLogger(__name__)

DB_FILE = "library.sqlite"
# Up to this many candidates a filtered search is exact (one matrix product, ~3 ms for
# 20,000 on this project's machine) rather than a walk of the graph that calls a Python
# filter at every node (~20 ms): see `facewatch bench library`.
EXACT_BELOW = 20_000
_CHUNK = 900  # SQLite's default limit is 999 host parameters

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS faces (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        camera TEXT NOT NULL, track_id INTEGER NOT NULL,
        first_ts REAL NOT NULL, last_ts REAL NOT NULL,
        person_id TEXT, name TEXT, score REAL NOT NULL, nearest_id TEXT,
        embedder TEXT NOT NULL, quality REAL NOT NULL, views INTEGER NOT NULL,
        vector BLOB NOT NULL, view_vectors BLOB NOT NULL, view_qualities BLOB NOT NULL,
        crop TEXT NOT NULL, snapshot TEXT,
        cluster_id INTEGER, assigned_to TEXT,
        created REAL NOT NULL,
        UNIQUE (camera, track_id))""",
    "CREATE INDEX IF NOT EXISTS faces_last ON faces (last_ts)",
    "CREATE INDEX IF NOT EXISTS faces_camera ON faces (camera, last_ts)",
    "CREATE INDEX IF NOT EXISTS faces_cluster ON faces (cluster_id)",
    "CREATE INDEX IF NOT EXISTS faces_person ON faces (person_id)",
    """CREATE TABLE IF NOT EXISTS clusters (
        id INTEGER PRIMARY KEY AUTOINCREMENT, embedder TEXT NOT NULL,
        vsum BLOB NOT NULL, size INTEGER NOT NULL,
        dismissed INTEGER NOT NULL DEFAULT 0, assigned_to TEXT, created REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS actions (
        id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, kind TEXT NOT NULL,
        face_id INTEGER NOT NULL, person_id TEXT NOT NULL, gallery TEXT NOT NULL,
        image TEXT NOT NULL, entry TEXT NOT NULL, created_person INTEGER NOT NULL,
        undone INTEGER NOT NULL DEFAULT 0)""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)

_FACE_COLUMNS = ("id, camera, track_id, first_ts, last_ts, person_id, name, score, nearest_id, "
                 "embedder, quality, views, crop, snapshot, cluster_id, assigned_to")


class Files:
    """Where the store's image files go: written whole (temporary file, then renamed), 0600,
    in 0700 folders.  Tests replace it to inject a failing disk."""

    def write(self, path: Path, data: bytes) -> None:
        if not path.parent.is_dir():
            _make_dirs(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def remove(self, path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("library: cannot delete %s (%s)", path, exc.strerror or exc)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]),
                            [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise StorageError("JPEG encoding failed")
    return bytes(data.tobytes())


class SqliteLibrary:
    def __init__(self, directory: Path, *, max_age_s: float = 30 * 86400.0,
                 max_faces: int = 100_000, jpeg_quality: int = 90,
                 files: Files | None = None, writer: bool = False) -> None:
        """`writer`: this process adds faces and keeps the saved index up to date."""
        self.directory = directory
        self.max_age_s = max_age_s
        self.max_faces = max_faces
        self.jpeg_quality = jpeg_quality
        self.files = files or Files()
        self.writer = writer
        self._indexes: dict[str, SearchIndex] = {}
        # A store may be shared by the threads of one process (an API's workers): writes and
        # the in-memory index are used under this lock.
        self._lock = threading.RLock()
        path = directory / DB_FILE
        try:
            _make_dirs(directory)
            _private(directory)
            if not path.exists():
                # created 0600 before SQLite opens it: faces and embeddings are biometric data
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            _private(path, 0o600)  # one left readable by an older version or by hand
            self._db = sqlite3.connect(path, isolation_level=None, timeout=10.0,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._write():
                for statement in _SCHEMA:
                    self._db.execute(statement)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"{path}: cannot open the face library ({_reason(exc)}); check "
                               f"state_dir") from None
        self.path = path

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:  # one transaction at a time on this connection, whatever the thread
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:  # SQLite rolls back by itself on some errors (disk full)
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _abs(self, relative: str | None) -> Path | None:
        return None if relative is None else self.directory / relative

    def _face(self, row: Sequence[Any]) -> Face:
        crop = self._abs(row[12])
        assert crop is not None
        return Face(id=row[0], camera=row[1], track_id=row[2], first_ts=row[3], last_ts=row[4],
                    person_id=row[5], name=row[6], score=row[7], nearest_id=row[8],
                    embedder=row[9], quality=row[10], views=row[11], crop=crop,
                    snapshot=self._abs(row[13]), cluster_id=row[14], assigned_to=row[15])

    def meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, key: str, by: int) -> None:
        self._db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                         "value = value + excluded.value", (key, by))

    def close(self) -> None:
        try:
            if self.writer:
                self.save_index()
        finally:
            self._db.close()

    # ------------------------------------------------------------------ faces

    def add(self, record: TrackRecord, vector: np.ndarray) -> Face:
        if self.find(record.camera, record.track_id) is not None:
            raise RecordError(f"track {record.track_id} of camera {record.camera} is already stored")
        crop_rel = f"crops/{record.camera}/{record.track_id}.jpg"
        snap_rel = None
        written: list[Path] = []
        v = np.ascontiguousarray(vector, np.float32).reshape(-1)
        try:
            self.files.write(self.directory / crop_rel, encode_jpeg(record.crop, self.jpeg_quality))
            written.append(self.directory / crop_rel)
            snapshot = record.snapshot
            if isinstance(snapshot, np.ndarray):
                snapshot = encode_jpeg(snapshot, self.jpeg_quality)
            if snapshot is not None:
                snap_rel = f"snapshots/{record.camera}/{record.track_id}.jpg"
                self.files.write(self.directory / snap_rel, snapshot)
                written.append(self.directory / snap_rel)
            verdict = record.verdict
            with self._write() as db:
                cur = db.execute(
                    "INSERT INTO faces (camera, track_id, first_ts, last_ts, person_id, name, "
                    "score, nearest_id, embedder, quality, views, vector, view_vectors, "
                    "view_qualities, crop, snapshot, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (record.camera, record.track_id, float(record.first_ts), float(record.last_ts),
                     verdict.person_id if isinstance(verdict, Named) else None,
                     verdict.name if isinstance(verdict, Named) else None,
                     float(verdict.score), None if isinstance(verdict, Named)
                     else verdict.nearest_id,
                     record.embedder_sha256, float(np.max(record.qualities)),
                     int(record.embeddings.shape[0]), v.tobytes(),
                     np.ascontiguousarray(record.embeddings, np.float32).tobytes(),
                     np.ascontiguousarray(record.qualities, np.float32).tobytes(),
                     crop_rel, snap_rel, time.time()))
                face_id = int(cur.lastrowid or 0)
                self._bump("stored", 1)
        except (OSError, sqlite3.Error) as exc:
            for path in written:
                self.files.remove(path)
            raise StorageError(f"cannot store track {record.track_id} of camera {record.camera} "
                               f"({_reason(exc)})") from None
        index = self._indexes.get(record.embedder_sha256)
        if index is not None or self.writer:
            try:
                with self._lock:
                    self._index(record.embedder_sha256, v.shape[0]).add([face_id], v[None])
            except (RuntimeError, MemoryError) as exc:
                # the next open rebuilds what is missing from the database
                log.warning("library: search index not updated (%s)", exc)
                self._indexes.pop(record.embedder_sha256, None)
        return self.get(face_id)

    def get(self, face_id: int) -> Face:
        row = self._db.execute(f"SELECT {_FACE_COLUMNS} FROM faces WHERE id = ?",
                               (int(face_id),)).fetchone()
        if row is None:
            raise NotFoundError(f"face {face_id}: no such face in the library")
        return self._face(row)

    def find(self, camera: str, track_id: int) -> Face | None:
        row = self._db.execute(f"SELECT {_FACE_COLUMNS} FROM faces WHERE camera = ? AND "
                               f"track_id = ?", (camera, int(track_id))).fetchone()
        return None if row is None else self._face(row)

    def by_track(self, track_id: int) -> list[Face]:
        """The faces stored for a published track id (one: track ids are unique across
        cameras), newest first."""
        rows = self._db.execute(f"SELECT {_FACE_COLUMNS} FROM faces WHERE track_id = ? "
                                f"ORDER BY last_ts DESC", (int(track_id),)).fetchall()
        return [self._face(r) for r in rows]

    @staticmethod
    def _where(query: FaceQuery) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if query.camera is not None:
            clauses.append("camera = ?")
            params.append(query.camera)
        if query.person_id is not None:
            clauses.append("(person_id = ? OR assigned_to = ?)")
            params += [query.person_id, query.person_id]
        if query.unknown is True:
            clauses.append("person_id IS NULL")
        elif query.unknown is False:
            clauses.append("person_id IS NOT NULL")
        if query.since is not None:
            clauses.append("last_ts >= ?")
            params.append(float(query.since))
        if query.until is not None:
            clauses.append("first_ts <= ?")
            params.append(float(query.until))
        if query.cluster_id is not None:
            clauses.append("cluster_id = ?")
            params.append(int(query.cluster_id))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def faces(self, query: FaceQuery) -> list[Face]:
        where, params = self._where(query)
        rows = self._db.execute(
            f"SELECT {_FACE_COLUMNS} FROM faces{where} ORDER BY last_ts DESC, id DESC "
            f"LIMIT ? OFFSET ?", (*params, int(query.limit), int(query.offset))).fetchall()
        return [self._face(r) for r in rows]

    def count(self, query: FaceQuery | None = None) -> int:
        where, params = self._where(query or FaceQuery())
        return int(self._db.execute(f"SELECT COUNT(*) FROM faces{where}", params).fetchone()[0])

    def face_ids(self, query: FaceQuery) -> list[int]:
        where, params = self._where(query)
        return [int(r[0]) for r in self._db.execute(f"SELECT id FROM faces{where}", params)]

    def vectors(self, face_ids: Sequence[int]) -> np.ndarray:
        ids = [int(i) for i in face_ids]
        found: dict[int, np.ndarray] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for fid, blob in self._db.execute(
                    f"SELECT id, vector FROM faces WHERE id IN ({marks})", chunk):
                found[int(fid)] = np.frombuffer(blob, np.float32)
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFoundError(f"face {missing[0]}: no such face in the library")
        if not ids:
            return np.zeros((0, 0), np.float32)
        return np.stack([found[i] for i in ids])

    def views(self, face_id: int) -> tuple[np.ndarray, np.ndarray]:
        row = self._db.execute("SELECT view_vectors, view_qualities, views FROM faces WHERE id = ?",
                               (int(face_id),)).fetchone()
        if row is None:
            raise NotFoundError(f"face {face_id}: no such face in the library")
        return (np.frombuffer(row[0], np.float32).reshape(int(row[2]), -1),
                np.frombuffer(row[1], np.float32))

    def embedders(self) -> list[str]:
        """Embedders of stored faces, the most recently used first."""
        rows = self._db.execute("SELECT embedder, MAX(id) FROM faces GROUP BY embedder "
                                "ORDER BY MAX(id) DESC").fetchall()
        return [r[0] for r in rows]

    # ------------------------------------------------------------------ search

    def _index(self, embedder: str, dim: int) -> SearchIndex:
        index = self._indexes.get(embedder)
        if index is None:
            ids = [int(r[0]) for r in self._db.execute(
                "SELECT id FROM faces WHERE embedder = ? ORDER BY id", (embedder,))]
            index = SearchIndex.open(index_path(self.directory / "index", embedder), embedder, dim,
                                     ids, self.vectors)
            index.loader = self.vectors
            self._indexes[embedder] = index
        if index.dim != dim:
            raise RecordError(f"embedder {embedder[:12]}: {dim}-d vectors where the stored ones "
                              f"are {index.dim}-d")
        return index

    def refresh_index(self, embedder: str) -> None:
        """Bring the in-memory index up to date with faces other processes added or deleted."""
        self._indexes.pop(embedder, None)

    def save_index(self) -> None:
        for embedder, index in list(self._indexes.items()):
            if index.dirty:
                try:
                    with self._lock:
                        index.save(index_path(self.directory / "index", embedder))
                except (OSError, RuntimeError) as exc:
                    log.warning("library: search index not saved (%s); it is rebuilt at the "
                                "next start", _reason(exc))

    def nearest(self, vectors: np.ndarray, embedder: str, k: int,
                allowed: Sequence[int] | None = None) -> list[list[tuple[int, float]]]:
        q = np.ascontiguousarray(vectors, np.float32)
        q = q.reshape(1, -1) if q.ndim == 1 else q
        if not self._db.execute("SELECT 1 FROM faces WHERE embedder = ? LIMIT 1",
                                (embedder,)).fetchone():
            return [[] for _ in range(q.shape[0])]
        with self._lock:
            index = self._index(embedder, q.shape[1])
            self._catch_up(index)
            if allowed is None:
                return index.search(q, k)
            if len(allowed) <= EXACT_BELOW:
                return index.exact(q, allowed, k)
            admitted = {int(i) for i in allowed}
            return index.search(q, k, admitted.__contains__)

    def _catch_up(self, index: SearchIndex) -> None:
        """Add what other processes stored since this index was opened (a long-running reader,
        such as the API, sees new faces at once; faces deleted meanwhile are filtered out by
        the callers, which read the rows of what they found)."""
        if self.writer:
            return  # this process added everything itself
        rows = self._db.execute("SELECT id, vector FROM faces WHERE embedder = ? AND id > ? "
                                "ORDER BY id", (index.embedder, index.max_id)).fetchall()
        if rows:
            index.add([int(r[0]) for r in rows],
                      np.stack([np.frombuffer(r[1], np.float32) for r in rows]))

    def get_many(self, face_ids: Sequence[int]) -> dict[int, Face]:
        out: dict[int, Face] = {}
        ids = [int(i) for i in face_ids]
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            for row in self._db.execute(f"SELECT {_FACE_COLUMNS} FROM faces WHERE id IN "
                                        f"({','.join('?' * len(chunk))})", chunk):
                out[int(row[0])] = self._face(row)
        return out

    def places(self, face_ids: Sequence[int]) -> dict[int, tuple[str, float, float]]:
        out: dict[int, tuple[str, float, float]] = {}
        ids = [int(i) for i in face_ids]
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            for fid, camera, first_ts, last_ts in self._db.execute(
                    f"SELECT id, camera, first_ts, last_ts FROM faces "
                    f"WHERE id IN ({','.join('?' * len(chunk))})", chunk):
                out[int(fid)] = (camera, float(first_ts), float(last_ts))
        return out

    def views_many(self, face_ids: Sequence[int]) -> dict[int, FaceViews]:
        out: dict[int, FaceViews] = {}
        ids = [int(i) for i in face_ids]
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            for fid, camera, first_ts, last_ts, blob, views in self._db.execute(
                    f"SELECT id, camera, first_ts, last_ts, view_vectors, views FROM faces "
                    f"WHERE id IN ({','.join('?' * len(chunk))})", chunk):
                out[int(fid)] = FaceViews(camera, float(first_ts), float(last_ts),
                                          np.frombuffer(blob, np.float32).reshape(views, -1))
        return out

    # ------------------------------------------------------------------ retention

    def enforce_retention(self, now: float) -> RetentionReport:
        """Delete faces older than max_age_s, then the oldest beyond max_faces."""
        old = [int(r[0]) for r in self._db.execute(
            "SELECT id FROM faces WHERE last_ts < ? ORDER BY last_ts, id",
            (now - self.max_age_s,))]
        by_age = self._delete(old, "deleted_by_age")
        excess = self.count() - self.max_faces
        by_count = 0
        if excess > 0:
            oldest = [int(r[0]) for r in self._db.execute(
                "SELECT id FROM faces ORDER BY last_ts, id LIMIT ?", (excess,))]
            by_count = self._delete(oldest, "deleted_by_count")
        if by_age or by_count:
            log.info("library: deleted %d face(s) older than %.0f days and %d beyond %d faces "
                     "(oldest first)", by_age, self.max_age_s / 86400, by_count, self.max_faces)
        return RetentionReport(by_age, by_count)

    def delete(self, face_ids: Sequence[int]) -> int:
        return self._delete([int(i) for i in face_ids], "deleted_by_user")

    def _delete(self, ids: list[int], counter: str) -> int:
        deleted = 0
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            try:
                with self._write() as db:
                    rows = db.execute(f"SELECT id, crop, snapshot, cluster_id, vector, embedder "
                                      f"FROM faces WHERE id IN ({marks})", chunk).fetchall()
                    for _fid, _crop, _snap, cluster_id, blob, _emb in rows:
                        if cluster_id is not None:
                            self._leave_cluster(cluster_id, np.frombuffer(blob, np.float32))
                    db.execute(f"DELETE FROM faces WHERE id IN ({marks})", chunk)
                    self._bump(counter, len(rows))
            except sqlite3.Error as exc:
                raise StorageError(f"cannot delete faces ({_reason(exc)})") from None
            for fid, crop, snap, _c, _b, embedder in rows:
                for rel in (crop, snap):
                    if rel is not None:
                        self.files.remove(self.directory / rel)
                with self._lock:
                    index = self._indexes.get(embedder)
                    if index is not None:
                        index.remove([fid])
            deleted += len(rows)
        return deleted

    # ------------------------------------------------------------------ clusters

    def _cluster_row(self, cluster_id: int) -> tuple[str, np.ndarray, int]:
        row = self._db.execute("SELECT embedder, vsum, size FROM clusters WHERE id = ?",
                               (int(cluster_id),)).fetchone()
        if row is None:
            raise NotFoundError(f"group {cluster_id}: no such group of faces")
        return row[0], np.frombuffer(row[1], np.float32).copy(), int(row[2])

    def _leave_cluster(self, cluster_id: int, v: np.ndarray) -> None:
        try:
            _emb, vsum, size = self._cluster_row(cluster_id)
        except NotFoundError:
            return
        if size <= 1:
            self._db.execute("DELETE FROM clusters WHERE id = ?", (cluster_id,))
        else:
            self._db.execute("UPDATE clusters SET vsum = ?, size = ? WHERE id = ?",
                             ((vsum - v).astype(np.float32).tobytes(), size - 1, cluster_id))

    def clusters(self, embedder: str | None = None, include_dismissed: bool = False,
                 include_assigned: bool = True) -> list[Cluster]:
        clauses = []
        params: list[Any] = []
        if embedder is not None:
            clauses.append("c.embedder = ?")
            params.append(embedder)
        if not include_dismissed:
            clauses.append("c.dismissed = 0")
        if not include_assigned:
            clauses.append("c.assigned_to IS NULL")
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._db.execute(
            "SELECT c.id, c.embedder, c.vsum, c.dismissed, c.assigned_to, COUNT(f.id), "
            "MIN(f.first_ts), MAX(f.last_ts), GROUP_CONCAT(DISTINCT f.camera) "
            f"FROM clusters c JOIN faces f ON f.cluster_id = c.id{where} "
            "GROUP BY c.id ORDER BY MAX(f.last_ts) DESC", params).fetchall()
        return [self._cluster(r) for r in rows]

    @staticmethod
    def _cluster(r: Sequence[Any]) -> Cluster:
        vsum = np.frombuffer(r[2], np.float32)
        centroid = vsum / max(float(np.linalg.norm(vsum)), 1e-12)
        return Cluster(id=r[0], embedder=r[1], size=int(r[5]), first_ts=float(r[6]),
                       last_ts=float(r[7]), cameras=tuple(sorted((r[8] or "").split(","))),
                       dismissed=bool(r[3]), assigned_to=r[4], centroid=centroid.astype(np.float32))

    def centroids(self, embedder: str) -> tuple[list[int], np.ndarray]:
        """Ids and unit centroids (G, D) of the groups new unknown faces may join: this
        embedder's groups not yet named (dismissed ones included, so they stay dismissed)."""
        rows = self._db.execute("SELECT id, vsum FROM clusters WHERE embedder = ? AND "
                                "assigned_to IS NULL ORDER BY id", (embedder,)).fetchall()
        if not rows:
            return [], np.zeros((0, 0), np.float32)
        sums = np.stack([np.frombuffer(r[1], np.float32) for r in rows])
        norms = np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        return [int(r[0]) for r in rows], (sums / norms).astype(np.float32)

    def cluster(self, cluster_id: int) -> Cluster:
        row = self._db.execute(
            "SELECT c.id, c.embedder, c.vsum, c.dismissed, c.assigned_to, COUNT(f.id), "
            "MIN(f.first_ts), MAX(f.last_ts), GROUP_CONCAT(DISTINCT f.camera) "
            "FROM clusters c JOIN faces f ON f.cluster_id = c.id WHERE c.id = ? GROUP BY c.id",
            (int(cluster_id),)).fetchone()
        if row is None:
            raise NotFoundError(f"group {cluster_id}: no such group of faces")
        return self._cluster(row)

    def join_cluster(self, face_id: int, cluster_id: int | None) -> int:
        try:
            with self._write() as db:
                row = db.execute("SELECT vector, embedder, cluster_id FROM faces WHERE id = ?",
                                 (int(face_id),)).fetchone()
                if row is None:
                    raise NotFoundError(f"face {face_id}: no such face in the library")
                v, embedder, old = np.frombuffer(row[0], np.float32), row[1], row[2]
                if old is not None and old == cluster_id:
                    return int(old)
                if cluster_id is None:
                    cur = db.execute("INSERT INTO clusters (embedder, vsum, size, created) "
                                     "VALUES (?, ?, 1, ?)", (embedder, v.tobytes(), time.time()))
                    new = int(cur.lastrowid or 0)
                else:
                    c_emb, vsum, size = self._cluster_row(cluster_id)
                    if c_emb != embedder:
                        raise RecordError(f"group {cluster_id} holds faces of another embedder")
                    db.execute("UPDATE clusters SET vsum = ?, size = ? WHERE id = ?",
                               ((vsum + v).astype(np.float32).tobytes(), size + 1, cluster_id))
                    new = int(cluster_id)
                if old is not None:
                    self._leave_cluster(old, v)
                db.execute("UPDATE faces SET cluster_id = ? WHERE id = ?", (new, int(face_id)))
                return new
        except sqlite3.Error as exc:
            raise StorageError(f"cannot group face {face_id} ({_reason(exc)})") from None

    def regroup(self, embedder: str, groups: Sequence[Sequence[int]]) -> list[int]:
        members = [int(f) for g in groups for f in g]
        vectors = dict(zip(members, self.vectors(members))) if members else {}
        old_of: dict[int, int | None] = {}
        for start in range(0, len(members), _CHUNK):
            chunk = members[start:start + _CHUNK]
            for fid, cid in self._db.execute(
                    f"SELECT id, cluster_id FROM faces WHERE id IN ({','.join('?' * len(chunk))})",
                    chunk):
                old_of[int(fid)] = cid
        # the largest new groups first claim the old group most of their faces came from,
        # so a dismissed or named group keeps its state through a regroup
        order = sorted(range(len(groups)), key=lambda i: -len(groups[i]))
        claimed: set[int] = set()
        out: list[int] = [0] * len(groups)
        try:
            with self._write() as db:
                for i in order:
                    group = [int(f) for f in groups[i]]
                    counts: dict[int, int] = {}
                    for f in group:
                        cid = old_of.get(f)
                        if cid is not None:
                            counts[cid] = counts.get(cid, 0) + 1
                    reuse = next((c for c, _n in sorted(counts.items(), key=lambda kv: -kv[1])
                                  if c not in claimed), None)
                    vsum = np.sum([vectors[f] for f in group], axis=0).astype(np.float32)
                    if reuse is not None and db.execute("SELECT 1 FROM clusters WHERE id = ?",
                                                        (reuse,)).fetchone():
                        db.execute("UPDATE clusters SET vsum = ?, size = ? WHERE id = ?",
                                   (vsum.tobytes(), len(group), reuse))
                        cid = reuse
                    else:
                        cur = db.execute("INSERT INTO clusters (embedder, vsum, size, created) "
                                         "VALUES (?, ?, ?, ?)",
                                         (embedder, vsum.tobytes(), len(group), time.time()))
                        cid = int(cur.lastrowid or 0)
                    claimed.add(cid)
                    out[i] = cid
                    for start in range(0, len(group), _CHUNK):
                        chunk = group[start:start + _CHUNK]
                        db.execute(f"UPDATE faces SET cluster_id = ? WHERE id IN "
                                   f"({','.join('?' * len(chunk))})", (cid, *chunk))
                # old groups left without faces
                db.execute("DELETE FROM clusters WHERE embedder = ? AND id NOT IN "
                           "(SELECT DISTINCT cluster_id FROM faces WHERE cluster_id IS NOT NULL)",
                           (embedder,))
        except sqlite3.Error as exc:
            raise StorageError(f"cannot regroup faces ({_reason(exc)})") from None
        return out

    def set_cluster_state(self, cluster_id: int, *, dismissed: bool | None = None,
                          assigned_to: str | None = None) -> None:
        self._cluster_row(cluster_id)
        with self._write() as db:
            if dismissed is not None:
                db.execute("UPDATE clusters SET dismissed = ? WHERE id = ?",
                           (int(dismissed), int(cluster_id)))
            if assigned_to is not None:
                db.execute("UPDATE clusters SET assigned_to = ? WHERE id = ?",
                           (assigned_to or None, int(cluster_id)))

    def set_assigned(self, face_ids: Sequence[int], person_id: str | None) -> None:
        ids = [int(i) for i in face_ids]
        with self._write() as db:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start:start + _CHUNK]
                db.execute(f"UPDATE faces SET assigned_to = ? WHERE id IN "
                           f"({','.join('?' * len(chunk))})", (person_id, *chunk))

    # ------------------------------------------------------------------ actions

    def add_action(self, kind: Literal["assign", "not"], face_id: int, person_id: str,
                   gallery: Path, image: Path, entry: str, created_person: bool) -> Action:
        try:
            with self._write() as db:
                cur = db.execute(
                    "INSERT INTO actions (ts, kind, face_id, person_id, gallery, image, entry, "
                    "created_person) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (time.time(), kind, int(face_id), person_id, str(gallery), str(image), entry,
                     int(created_person)))
        except sqlite3.Error as exc:
            raise StorageError(f"cannot record the edit ({_reason(exc)})") from None
        return self.action(int(cur.lastrowid or 0))

    def actions(self, face_id: int | None = None, include_undone: bool = False,
                limit: int = 100) -> list[Action]:
        clauses, params = [], []
        if face_id is not None:
            clauses.append("face_id = ?")
            params.append(int(face_id))
        if not include_undone:
            clauses.append("undone = 0")
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._db.execute(f"SELECT * FROM actions{where} ORDER BY id DESC LIMIT ?",
                                (*params, int(limit))).fetchall()
        return [_action(r) for r in rows]

    def action(self, action_id: int) -> Action:
        row = self._db.execute("SELECT * FROM actions WHERE id = ?", (int(action_id),)).fetchone()
        if row is None:
            raise NotFoundError(f"edit {action_id}: no such edit in the library's history")
        return _action(row)

    def mark_undone(self, action_id: int) -> None:
        with self._write() as db:
            db.execute("UPDATE actions SET undone = 1 WHERE id = ?", (int(action_id),))


def _action(r: Sequence[Any]) -> Action:
    return Action(id=r[0], ts=r[1], kind=r[2], face_id=r[3], person_id=r[4], gallery=Path(r[5]),
                  image=Path(r[6]), entry=r[7], created_person=bool(r[8]), undone=bool(r[9]))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split()) or type(exc).__name__


def _make_dirs(folder: Path) -> None:
    """mkdir -p with 0700 for every folder it creates (Path.mkdir gives parents the umask's)."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)


def _private(path: Path, mode: int = 0o700) -> None:
    """Take group and other permissions away from a file or folder of ours."""
    st = path.stat()
    if st.st_mode & 0o077 and st.st_uid == os.geteuid():
        path.chmod(mode)
