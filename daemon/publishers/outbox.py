"""The outbox: events on disk from the moment they are numbered until a broker acknowledges them.

SQLite in WAL mode, one file under the state directory (0600).  It also holds the daemon's
`seq` counter, so numbering continues across restarts and a consumer can see a gap.

Life of an event: `add` numbers it, stamps `published_ts` and stores it; transports that
confirm delivery (MQTT QoS 1) get it through `due` (events never handed over, in `seq` order)
and `handed`; the broker's PUBACK arrives as `ack`, which deletes it.  After a restart, nothing
is marked handed any more, so everything unacknowledged goes out again, in order (consumers
deduplicate on `event_id`: delivery is at least once).

The outbox is bounded: beyond `max_events` rows or `max_age_s` seconds the oldest events are
dropped; the count is kept (and exported) so the loss is visible, never silent.

A failing disk (full, read-only, gone) must not stop the daemon: events that cannot be stored
are numbered and kept in memory instead (at most `max_in_memory`, the oldest dropped and
counted beyond that), delivered like the others, and lost only if the daemon stops before the
broker acknowledges them.  The failure is logged once a minute and the recovery once; the
next event that can be stored writes the counter again, so numbering carries on.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

from facewatch.events import Event, from_json, to_json

log = logging.getLogger(__name__)

_WARN_EVERY_S = 60.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL,"
    " created REAL NOT NULL, body BLOB NOT NULL)",
)


class Outbox:
    def __init__(self, path: Path, *, max_events: int = 100_000,
                 max_age_s: float = 7 * 24 * 3600.0, max_in_memory: int = 10_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            # created 0600 before SQLite opens it: it holds names of people
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        # check_same_thread=False: acknowledgements arrive on paho's network thread; every
        # use goes through self._lock.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # an event is on disk before it is handed to any transport; "normal" still survives
        # a process crash in WAL mode (only a power cut can lose the last transactions)
        self._db.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._lock = threading.Lock()
        self.path = path
        self.max_events = max_events
        self.max_age_s = max_age_s
        self.dropped = self._meta("dropped")
        self._next_seq = max(self._meta("next_seq"), 1)
        self._handed: set[int] = set()  # in this run only: a restart re-sends them
        self._by_id: dict[str, int] = {}
        # Events numbered while the disk refused them, by seq (see the module docstring).
        self.max_in_memory = max_in_memory
        self._memory: dict[int, Event] = {}
        self.disk_error: str | None = None  # why the disk refuses writes now, if it does
        self.disk_failures = 0  # writes refused, in all
        self._unreported_drops = 0  # dropped from memory since enforce_limits last said
        self._warned_at = float("-inf")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def add(self, event: Event, *, keep: bool, now: float | None = None) -> Event:
        """Number and stamp `event`; store it until acknowledged if `keep` (some transport
        confirms delivery).  Returns the stamped event.  Never raises for a failing disk."""
        with self._lock:
            stamped = event.stamped(self._next_seq, time.time() if now is None else now)
            assert stamped.seq is not None
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._set_meta("next_seq", self._next_seq + 1)
                    if keep:
                        self._db.execute("INSERT INTO events VALUES (?, ?, ?, ?)",
                                         (stamped.seq, stamped.event_id, time.time(),
                                          to_json(stamped)))
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:  # SQLite rolls back by itself on SQLITE_FULL
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                self._disk_refused(exc)
                if keep:
                    self._keep_in_memory(stamped)
            else:
                self._disk_works()
            self._next_seq += 1
            if keep:
                self._by_id[stamped.event_id] = stamped.seq
            return stamped

    def _keep_in_memory(self, stamped: Event) -> None:
        assert stamped.seq is not None
        self._memory[stamped.seq] = stamped
        if len(self._memory) > self.max_in_memory:
            oldest = min(self._memory)
            gone = self._memory.pop(oldest)
            self._by_id.pop(gone.event_id, None)
            self._handed.discard(oldest)
            self.dropped += 1
            self._unreported_drops += 1

    def _disk_refused(self, exc: sqlite3.Error) -> None:
        self.disk_failures += 1
        reason = " ".join(str(exc).split()) or type(exc).__name__
        now = time.monotonic()
        if self.disk_error is None or now - self._warned_at >= _WARN_EVERY_S:
            log.warning("outbox: cannot write %s (%s); events wait in memory (at most %d) "
                        "until it can: free space in the state directory", self.path, reason,
                        self.max_in_memory)
            self._warned_at = now
        self.disk_error = reason

    def _disk_works(self) -> None:
        if self.disk_error is not None:
            log.info("outbox: %s is writable again (%d write(s) were refused)", self.path,
                     self.disk_failures)
            self.disk_error = None

    def due(self, limit: int = 100) -> list[Event]:
        """Stored events not yet handed to the transport in this run, oldest first."""
        with self._lock:
            try:
                rows = self._db.execute("SELECT seq, body FROM events ORDER BY seq LIMIT ?",
                                        (limit + len(self._handed),)).fetchall()
            except sqlite3.Error as exc:
                self._disk_refused(exc)
                rows = []
            stored = [(int(seq), from_json(body)) for seq, body in rows]
            waiting = sorted(stored + list(self._memory.items()), key=lambda item: item[0])
            return [event for seq, event in waiting if seq not in self._handed][:limit]

    def handed(self, event: Event) -> None:
        """`event` is being given to the transport.  Call it *before* the hand-over: the
        acknowledgement may arrive (in another thread) before the transport's call returns."""
        assert event.seq is not None
        with self._lock:
            self._handed.add(event.seq)
            self._by_id[event.event_id] = event.seq

    def unhand(self, event: Event) -> None:
        """The transport refused `event`: it is due again."""
        assert event.seq is not None
        with self._lock:
            self._handed.discard(event.seq)

    def handed_count(self) -> int:
        """Events handed to the transport in this run and not yet acknowledged."""
        with self._lock:
            return len(self._handed)

    def unhand_all(self) -> None:
        """The transport lost its connection: whatever it had not confirmed is due again."""
        with self._lock:
            self._handed.clear()

    def ack(self, event_id: str) -> None:
        with self._lock:
            seq = self._by_id.pop(event_id, None)
            try:
                if seq is None:
                    row = self._db.execute("SELECT seq FROM events WHERE event_id = ?",
                                           (event_id,)).fetchone()
                    if row is None:
                        return
                    seq = int(row[0])
                self._handed.discard(seq)
                if self._memory.pop(seq, None) is None:
                    self._db.execute("DELETE FROM events WHERE seq = ?", (seq,))
            except sqlite3.Error as exc:
                # stays stored: sent again after a restart (consumers deduplicate)
                self._disk_refused(exc)

    def pending(self) -> int:
        with self._lock:
            try:
                stored = int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])
            except sqlite3.Error as exc:
                self._disk_refused(exc)
                stored = 0
            return stored + len(self._memory)

    def enforce_limits(self, now: float | None = None) -> int:
        """Drop events beyond the size or age bound; returns how many were dropped now."""
        now = time.time() if now is None else now
        with self._lock:
            from_memory, self._unreported_drops = self._unreported_drops, 0
        if from_memory:
            log.warning("outbox: dropped %d undelivered event(s) kept in memory while the disk "
                        "refused them (more than %d)", from_memory, self.max_in_memory)
        try:
            return from_memory + self._enforce_limits(now)
        except sqlite3.Error as exc:
            with self._lock:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._disk_refused(exc)
            return from_memory

    def _enforce_limits(self, now: float) -> int:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            old = self._db.execute("DELETE FROM events WHERE created < ?",
                                   (now - self.max_age_s,)).rowcount
            count = int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])
            excess = max(0, count - self.max_events)
            if excess:
                self._db.execute("DELETE FROM events WHERE seq IN "
                                 "(SELECT seq FROM events ORDER BY seq LIMIT ?)", (excess,))
            dropped = old + excess
            if dropped:
                self.dropped += dropped
                self._set_meta("dropped", self.dropped)
                kept = {int(r[0]) for r in self._db.execute("SELECT seq FROM events")}
                kept |= self._memory.keys()
                self._handed &= kept
                self._by_id = {k: v for k, v in self._by_id.items() if v in kept}
            self._db.execute("COMMIT")
        if dropped:
            log.warning("outbox: dropped %d undelivered event(s) over its bounds (%d events, "
                        "%.0f h); %d dropped in all", dropped, self.max_events,
                        self.max_age_s / 3600, self.dropped)
        return dropped
