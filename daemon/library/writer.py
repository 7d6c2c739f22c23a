"""The `library` process: records of published tracks in, stored and grouped.

`LibraryWriter` is the loop's core, driven by anything with `get(timeout)` (a plain
`queue.Queue` in tests, the daemon's bounded channel in the process).  Nothing it meets
escapes into the loop: a record that cannot be stored (a full disk, a read-only folder, a
broken database, a malformed record) is dropped, logged (at most once a minute, with the
count) and counted, and the next record is tried.  A library that cannot even be opened is
retried every minute while records are drained and counted as dropped, so the producer never
blocks on it and recognition goes on.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facewatch.errors import FacewatchError
from facewatch.library.clusters import ClusterSettings, choose_cluster
from facewatch.library.records import RecordError, TrackRecord
from facewatch.library.store import LibraryStore, StorageError
from facewatch.processes.channels import Inbox
from facewatch.processes.child import ChildKind

log = logging.getLogger(__name__)

RETENTION_EVERY_S = 60.0
SAVE_INDEX_EVERY_S = 30.0
REOPEN_EVERY_S = 60.0
_WARN_EVERY_S = 60.0


# For the supervisor: after the inference process (its producer) in the stop order, so that
# what it queued last is stored; its stop drains the channel for up to 3 s.
KIND = ChildKind("library", start_grace_s=30.0, stop_timeout_s=4.0, stop_order=2)
# Bytes the daemon's channel to it should hold: ~40 KB a record, so about 100 records.
CHANNEL_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class WriterSettings:
    max_embeddings: int = 5
    clusters: ClusterSettings = field(default_factory=ClusterSettings)


class LibraryWriter:
    def __init__(self, open_store: Callable[[], LibraryStore], settings: WriterSettings,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 metrics: Any = None) -> None:
        self._open_store = open_store
        self.settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self._metrics = metrics
        self.store: LibraryStore | None = None
        self.stored = 0
        self.dropped: Counter[str] = Counter()
        self.deleted: Counter[str] = Counter()
        self._retention_at = float("-inf")
        self._saved_at = monotonic()
        self._open_at = float("-inf")
        self._warned_at = float("-inf")
        self._unwarned = 0
        self._open()

    # ------------------------------------------------------------------ the loop

    def step(self, channel: Inbox[Any], timeout: float) -> bool:
        """Take one record (waiting up to `timeout` s) and store it; then housekeeping.
        True if a record was taken (or one that could not be decoded was dropped)."""
        try:
            item = channel.get(timeout=timeout)
        except queue.Empty:
            item = None
        except RecordError as exc:  # the channel's codec met a malformed record
            self._drop("invalid", str(exc))
            self.housekeeping()
            return True
        if item is not None:
            self.handle(item)
        self.housekeeping()
        return item is not None

    def handle(self, item: Any) -> int | None:
        """Store one record; its face id, or None if it was dropped.  Never raises."""
        try:
            return self._handle(item)
        except Exception as exc:  # a bug must not stop the library either
            log.exception("library: record dropped")
            self._drop("error", f"{type(exc).__name__}: {exc}")
            return None

    def _handle(self, item: Any) -> int | None:
        if not isinstance(item, TrackRecord):
            self._drop("invalid", f"not a track record: {type(item).__name__}")
            return None
        try:
            item.validate(self.settings.max_embeddings)
        except RecordError as exc:
            self._drop("invalid", f"camera {getattr(item, 'camera', '?')!r}: {exc}")
            return None
        store = self._open()
        if store is None:
            self._drop("unavailable", "the library cannot be opened")
            return None
        vector = item.mean_embedding()
        try:
            face = store.add(item, vector)
        except RecordError as exc:
            self._drop("duplicate" if "already stored" in str(exc) else "invalid", str(exc))
            return None
        except StorageError as exc:
            self._drop("storage", str(exc))
            return None
        self.stored += 1
        if self._metrics is not None:
            self._metrics.library_stored.inc()
        if not item.known:
            try:
                self._group(store, face.id, item.embedder_sha256, vector)
            except (StorageError, FacewatchError) as exc:
                # stored, just not grouped: a regroup places it later
                log.warning("library: face %d not grouped (%s)", face.id, exc)
        return face.id

    def _group(self, store: LibraryStore, face_id: int, embedder: str, vector: np.ndarray) -> None:
        ids, centroids = store.centroids(embedder)
        row, _sim = choose_cluster(centroids, vector, self.settings.clusters.join)
        store.join_cluster(face_id, None if row is None else ids[row])

    def housekeeping(self, force: bool = False) -> None:
        now = self._monotonic()
        store = self.store
        if store is None:
            return
        if force or now - self._retention_at >= RETENTION_EVERY_S:
            self._retention_at = now
            try:
                report = store.enforce_retention(self._clock())
            except FacewatchError as exc:
                log.warning("library: retention not applied (%s)", exc)
            else:
                self.deleted["age"] += report.by_age
                self.deleted["count"] += report.by_count
                if self._metrics is not None:
                    if report.by_age:
                        self._metrics.library_deleted.labels("age").inc(report.by_age)
                    if report.by_count:
                        self._metrics.library_deleted.labels("count").inc(report.by_count)
        if force or now - self._saved_at >= SAVE_INDEX_EVERY_S:
            self._saved_at = now
            store.save_index()

    def close(self) -> None:
        if self.store is not None:
            try:
                self.store.close()  # saves the search index
            except FacewatchError as exc:
                log.warning("library: %s", exc)
            self.store = None

    # ------------------------------------------------------------------ failures

    def _open(self) -> LibraryStore | None:
        if self.store is not None:
            return self.store
        now = self._monotonic()
        if now - self._open_at < REOPEN_EVERY_S:
            return None
        self._open_at = now
        try:
            self.store = self._open_store()
        except FacewatchError as exc:
            log.error("library: %s; faces are not kept until it can be opened (retried every "
                      "%.0f s)", exc, REOPEN_EVERY_S)
            return None
        return self.store

    def _drop(self, reason: str, message: str) -> None:
        self.dropped[reason] += 1
        if self._metrics is not None:
            self._metrics.library_dropped.labels(reason).inc()
        now = self._monotonic()
        self._unwarned += 1
        if now - self._warned_at >= _WARN_EVERY_S:
            log.warning("library: record dropped (%s: %s); %d dropped since the last warning, %d "
                        "in all", reason, message, self._unwarned, sum(self.dropped.values()))
            self._warned_at = now
            self._unwarned = 0


def library_dir(state_dir: Path) -> Path:
    return state_dir / "library"


def run_library(ctx: Any, config: Any, channel: Inbox[TrackRecord]) -> None:
    """The `library` child process: `ctx` is its `ChildContext`, `config` the resolved
    `DaemonConfig`, `channel` the bounded channel of `TrackRecord`s from the inference
    process (a `Channel("library", TrackRecordCodec(), CHANNEL_BYTES)`; its writer should
    `put_nowait` and count what does not fit rather than wait).  Returns when
    `ctx.stopping()`, after storing what is already queued."""
    from facewatch.config.daemon import DaemonConfig
    from facewatch.engines.store import ModelStore
    from facewatch.library.clusters import settings_for
    from facewatch.library.sqlite_store import SqliteLibrary
    from facewatch.metrics import Metrics

    assert isinstance(config, DaemonConfig) and config.state_dir is not None
    lib = config.library
    directory = library_dir(Path(config.state_dir))

    def open_store() -> LibraryStore:
        return SqliteLibrary(directory, max_age_s=lib.max_age_days * 86400.0,
                             max_faces=lib.max_faces, jpeg_quality=lib.jpeg_quality, writer=True)

    threshold = config.recognition.threshold
    if threshold is None and lib.cluster_threshold is None:
        try:
            inference = config.inference
            store = ModelStore(Path(inference.models_dir)) if inference.models_dir else ModelStore()
            threshold = store.manifest(inference.embedder).threshold
        except FacewatchError:
            threshold = None
    settings = WriterSettings(lib.embeddings_per_track, settings_for(lib.cluster_threshold, threshold))
    writer = LibraryWriter(open_store, settings, metrics=Metrics())
    ctx.ready()
    try:
        while not ctx.stopping():
            writer.step(channel, 0.5)
            ctx.beat()
        deadline = time.monotonic() + 3.0  # what is already queued is stored
        while time.monotonic() < deadline and writer.step(channel, 0.05):
            pass
        writer.housekeeping(force=True)  # retention, and the index saved
    finally:
        writer.close()
