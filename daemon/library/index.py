"""The library's search index: hnswlib over one vector per stored face, kept on disk.

One index per embedder (faces embedded by another model are not comparable), labelled by face
id.  It is saved beside the database with a small JSON file holding the index file's sha256,
so a torn or corrupt file is never handed to hnswlib (which may crash on one): it is rebuilt
from the database instead.  An index older than the database (the writer saved it a while
ago, or was killed) is brought up to date on open: faces added since are inserted, deleted
ones marked deleted.  Deletions are `mark_deleted`, so search never returns a deleted face.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import hnswlib
import numpy as np

log = logging.getLogger(__name__)

# Graph degree and search breadth: `facewatch bench library` reports recall@10 against exact
# search at 100,000 faces (see the README) with these.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 100
HNSW_EF_SEARCH = 128
_GROW = 1.5
_MIN_CAPACITY = 1024
FORMAT = 1


class SearchIndex:
    def __init__(self, embedder: str, dim: int, capacity: int = _MIN_CAPACITY) -> None:
        self.embedder = embedder
        self.dim = dim
        self._hnsw = hnswlib.Index(space="cosine", dim=dim)
        self._hnsw.init_index(max_elements=max(capacity, _MIN_CAPACITY), M=HNSW_M,
                              ef_construction=HNSW_EF_CONSTRUCTION, random_seed=100)
        self._hnsw.set_ef(HNSW_EF_SEARCH)
        self._live: set[int] = set()
        self.dirty = False
        self.max_id = 0
        # The vectors as a matrix, for exact search among a few candidates (a camera's last
        # hour); loaded on first use from `loader` (the database), then kept in step.
        self.loader: Callable[[Sequence[int]], np.ndarray] | None = None
        self._matrix: np.ndarray | None = None
        self._used = 0  # rows of the matrix filled
        self._lookup = np.full(0, -1, np.int64)  # face id -> its row, -1: none (deleted)

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, face_id: int) -> bool:
        return face_id in self._live

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        ids = [int(i) for i in ids if int(i) not in self._live]
        if not ids:
            return
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(len(ids), self.dim)
        need = self._hnsw.get_current_count() + len(ids)
        if need > self._hnsw.get_max_elements():
            self._hnsw.resize_index(max(int(need * _GROW), _MIN_CAPACITY))
        self._hnsw.add_items(vectors, np.asarray(ids, np.int64))
        self._live.update(ids)
        self.max_id = max(self.max_id, max(ids))
        self.dirty = True
        if self._matrix is not None:
            self._append_rows(ids, vectors)

    def _append_rows(self, ids: list[int], vectors: np.ndarray) -> None:
        assert self._matrix is not None
        used = self._used
        if used + len(ids) > self._matrix.shape[0]:
            grown = np.zeros((int((used + len(ids)) * _GROW) + 16, self.dim), np.float32)
            grown[:used] = self._matrix[:used]
            self._matrix = grown
        norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        self._matrix[used:used + len(ids)] = vectors / norms
        if max(ids) >= self._lookup.shape[0]:
            lookup = np.full(int(max(ids) * _GROW) + 16, -1, np.int64)
            lookup[:self._lookup.shape[0]] = self._lookup
            self._lookup = lookup
        self._lookup[np.asarray(ids, np.int64)] = np.arange(used, used + len(ids))
        self._used = used + len(ids)

    def exact(self, queries: np.ndarray, ids: Sequence[int], k: int) -> list[list[tuple[int, float]]]:
        """As `search`, by one matrix product over the faces `ids` only."""
        q = np.ascontiguousarray(queries, np.float32).reshape(-1, self.dim)
        if self._matrix is None:
            live = sorted(self._live)
            self._matrix = np.zeros((0, self.dim), np.float32)
            self._used, self._lookup = 0, np.full(0, -1, np.int64)
            assert self.loader is not None, "exact search needs a loader of stored vectors"
            for start in range(0, len(live), 10_000):
                chunk = live[start:start + 10_000]
                self._append_rows(chunk, self.loader(chunk))
        wanted = np.asarray(ids, np.int64)
        wanted = wanted[(wanted >= 0) & (wanted < self._lookup.shape[0])]
        rows = self._lookup[wanted]
        present, rows = wanted[rows >= 0], rows[rows >= 0]
        if present.size == 0:
            return [[] for _ in range(q.shape[0])]
        # einsum, not `@`: a product this small is memory-bound, and multithreaded BLAS
        # waking its threads on a busy machine took 20 ms where this takes 0.1
        sims = np.einsum("qd,nd->qn", q, self._matrix[rows])
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return [[(int(present[j]), float(sims[n, j])) for j in row] for n, row in enumerate(order)]

    def remove(self, ids: Iterable[int]) -> None:
        for face_id in ids:
            if face_id in self._live:
                self._hnsw.mark_deleted(int(face_id))
                self._live.discard(face_id)
                if face_id < self._lookup.shape[0]:
                    self._lookup[face_id] = -1
                self.dirty = True

    def search(self, queries: np.ndarray, k: int,
               allowed: Callable[[int], bool] | None = None) -> list[list[tuple[int, float]]]:
        """Per query: up to k (face id, similarity), most similar first."""
        q = np.ascontiguousarray(queries, np.float32).reshape(-1, self.dim)
        k = min(k, len(self))
        if k <= 0:
            return [[] for _ in range(q.shape[0])]
        while True:
            try:
                if allowed is None:
                    labels, dist = self._hnsw.knn_query(q, k=k)
                else:  # a Python filter needs one thread
                    labels, dist = self._hnsw.knn_query(q, k=k, num_threads=1, filter=allowed)
                break
            except RuntimeError:
                # fewer than k reachable (a filter that admits few faces): ask for fewer
                if k == 1:
                    return [[] for _ in range(q.shape[0])]
                k = max(1, k // 2)
        return [[(int(lab), float(1.0 - d)) for lab, d in zip(row_l, row_d)]
                for row_l, row_d in zip(labels, dist)]

    # persistence -----------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the index and its sidecar atomically (each replaced whole)."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(fd)
        try:
            self._hnsw.save_index(tmp)
            os.chmod(tmp, 0o600)
            digest = _sha256(Path(tmp))
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        meta = {"format": FORMAT, "embedder": self.embedder, "dim": self.dim,
                "sha256": digest, "count": len(self)}
        _write_json(_meta_path(path), meta)
        self.dirty = False

    @classmethod
    def open(cls, path: Path, embedder: str, dim: int, ids: Sequence[int],
             vectors: Callable[[Sequence[int]], np.ndarray]) -> SearchIndex:
        """The saved index brought up to date with `ids` (every face of this embedder now
        stored); rebuilt from `vectors(ids)` if missing, corrupt or of another model."""
        wanted = {int(i) for i in ids}
        index = cls._load(path, embedder, dim, len(wanted))
        if index is None:
            index = cls(embedder, dim, capacity=int(len(wanted) * _GROW))
            index._insert(sorted(wanted), vectors)
            index.dirty = True
            return index
        present = set(index._hnsw.get_ids_list())
        newly_deleted = 0
        for face_id in present - wanted:
            try:
                index._hnsw.mark_deleted(face_id)
                newly_deleted += 1
            except RuntimeError:
                pass  # deleted before it was saved
        index._live = present & wanted
        index.max_id = max(index._live, default=0)
        missing = sorted(wanted - index._live)
        index._insert(missing, vectors)
        index.dirty = bool(missing or newly_deleted)
        return index

    def _insert(self, ids: list[int], vectors: Callable[[Sequence[int]], np.ndarray]) -> None:
        for start in range(0, len(ids), 10_000):
            chunk = ids[start:start + 10_000]
            self.add(chunk, vectors(chunk))

    @classmethod
    def _load(cls, path: Path, embedder: str, dim: int, count: int) -> SearchIndex | None:
        meta_path = _meta_path(path)
        if not path.is_file() or not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if (meta.get("format") != FORMAT or meta.get("embedder") != embedder
                    or meta.get("dim") != dim):
                log.info("%s: built for another model; rebuilding it", path)
                return None
            if _sha256(path) != meta.get("sha256"):
                log.warning("%s: does not match its checksum (torn or corrupt); rebuilding it", path)
                return None
            index = cls.__new__(cls)
            index.embedder, index.dim, index.dirty, index.max_id = embedder, dim, False, 0
            index.loader, index._matrix, index._used = None, None, 0
            index._lookup = np.full(0, -1, np.int64)
            index._hnsw = hnswlib.Index(space="cosine", dim=dim)
            index._hnsw.load_index(str(path), max_elements=max(int(count * _GROW), _MIN_CAPACITY),
                                   allow_replace_deleted=False)
            index._hnsw.set_ef(HNSW_EF_SEARCH)
            index._live = set()
            return index
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("%s: unreadable (%s); rebuilding it", path, exc)
            return None


def index_path(folder: Path, embedder: str) -> Path:
    return folder / f"{embedder[:16]}.hnsw"


def _meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_json(path: Path, data: dict[str, object]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
