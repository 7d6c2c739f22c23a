"""Dynamic batching of frames from every camera into one inference call.

Frames arrive as `FrameRef`s on one queue shared by all stream processes.  A batch takes at
most one frame per camera (fairness: a fast camera cannot starve the others) and at most
`max_batch` frames, and waits at most `max_wait_ms` after its first frame for the other cameras
to catch up.  For live cameras only the newest waiting frame matters: when analysis falls
behind, older ones are dropped and counted.  Files read "as fast as possible" are not live:
their frames are all kept, in order (their stream process waits for room instead), each
once: after a restart of the inference process the frames its predecessor had taken but
not analysed are handed back with `resume`, and the references still queued for them are then ignored.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from facewatch.errors import require
from facewatch.frames.ring import FrameRef


class _Queue(Protocol):
    def get(self, block: bool = True, timeout: float | None = None) -> Any: ...


@dataclass(frozen=True)
class BatchSettings:
    # Most frames in one batch, across all cameras.
    max_batch: int = 8
    # Longest the first frame of a batch waits for the other cameras' frames.
    max_wait_ms: float = 20.0

    def __post_init__(self) -> None:
        require(1 <= self.max_batch <= 64, "max_batch", f"must be 1 to 64, got {self.max_batch}")
        require(0.0 <= self.max_wait_ms <= 1000.0, "max_wait_ms",
                f"must be 0 to 1000 ms, got {self.max_wait_ms:g}")


@dataclass
class FrameBatcher:
    source: _Queue
    settings: BatchSettings
    live_cameras: frozenset[str]  # cameras whose stale frames may be dropped
    active_cameras: int = 1  # how many cameras may contribute (stops the wait early)
    dropped: dict[str, int] = field(default_factory=dict)
    _pending: dict[str, deque[FrameRef]] = field(default_factory=dict)
    _last_seq: dict[str, int] = field(default_factory=dict)  # lossless cameras: newest taken

    def resume(self, refs: list[FrameRef]) -> None:
        """Frames of a lossless camera to analyse before any queued reference (in order)."""
        for ref in refs:
            self._add(ref)

    def next_batch(self, timeout: float) -> list[FrameRef]:
        """Up to max_batch frames, one per camera; [] if nothing came within `timeout` s."""
        self._drain()
        if not self._has_pending():
            if not self._get(timeout):
                return []
            self._drain()
        deadline = time.monotonic() + self.settings.max_wait_ms / 1000.0
        while self._waiting_cameras() < min(self.active_cameras, self.settings.max_batch):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._get(remaining):
                break
            self._drain()
        return self._take()

    def _get(self, timeout: float) -> bool:
        try:
            ref = self.source.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return False
        self._add(ref)
        return True

    def _drain(self) -> None:
        while True:
            try:
                ref = self.source.get(block=False)
            except queue.Empty:
                break
            self._add(ref)

    def _add(self, ref: FrameRef) -> None:
        if ref.camera not in self.live_cameras:
            # a ring's sequence numbers only rise: an older one was resumed already
            if ref.seq <= self._last_seq.get(ref.camera, -1):
                return
            self._last_seq[ref.camera] = ref.seq
        pending = self._pending.setdefault(ref.camera, deque())
        pending.append(ref)
        if ref.camera in self.live_cameras:
            while len(pending) > 1:  # a newer frame supersedes it
                pending.popleft()
                self.dropped[ref.camera] = self.dropped.get(ref.camera, 0) + 1

    def _has_pending(self) -> bool:
        return any(self._pending.values())

    def _waiting_cameras(self) -> int:
        return sum(1 for d in self._pending.values() if d)

    def _take(self) -> list[FrameRef]:
        # oldest frames first, so no camera waits longer than the others
        heads = sorted((d[0].capture_ts, cam) for cam, d in self._pending.items() if d)
        batch = []
        for _, cam in heads[: self.settings.max_batch]:
            batch.append(self._pending[cam].popleft())
        return batch
