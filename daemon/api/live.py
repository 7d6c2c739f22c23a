"""What the publisher hands the API: every published event, for the page's live view and the
cameras' current state.

A thread reads the `api_events` channel and keeps the last `keep` events and the latest
camera.status per camera; each subscriber (an open event stream) gets its own bounded queue,
and a subscriber too slow to keep up loses its oldest events rather than slowing the others.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import deque
from typing import Any

from facewatch.events import CameraStatus, Event

log = logging.getLogger(__name__)

SUBSCRIBER_QUEUE = 256


class LiveEvents:
    def __init__(self, source: Any, keep: int = 500) -> None:
        self._source = source
        self._recent: deque[Event] = deque(maxlen=keep)
        self._cameras: dict[str, CameraStatus] = {}
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Event]]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, known: list[CameraStatus] | None = None) -> None:
        """Read the feed from now on; `known`: the cameras' states before it (see
        `facewatch.publishers.api_feed.read_camera_states`)."""
        for status in known or []:
            self._cameras.setdefault(status.camera, status)
        self._thread = threading.Thread(target=self._run, name="live-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    def recent(self) -> list[Event]:
        with self._lock:
            return list(self._recent)

    def cameras(self) -> dict[str, CameraStatus]:
        with self._lock:
            return dict(self._cameras)

    def subscribe(self) -> asyncio.Queue[Event]:
        """A queue of the events from now on, for the calling event loop."""
        q: asyncio.Queue[Event] = asyncio.Queue(SUBSCRIBER_QUEUE)
        with self._lock:
            self._subscribers.add((asyncio.get_running_loop(), q))
        return q

    def unsubscribe(self, q: asyncio.Queue[Event]) -> None:
        with self._lock:
            self._subscribers = {s for s in self._subscribers if s[1] is not q}

    def add(self, event: Event) -> None:
        with self._lock:
            self._recent.append(event)
            if isinstance(event, CameraStatus):
                self._cameras[event.camera] = event
            subscribers = list(self._subscribers)
        for loop, q in subscribers:
            loop.call_soon_threadsafe(_offer, q, event)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                event = self._source.get(timeout=0.5)
            except queue.Empty:
                continue
            except Exception:  # a bad message must not end the feed
                log.exception("live events: skipped a message")
                continue
            self.add(event)


def _offer(q: asyncio.Queue[Event], event: Event) -> None:
    if q.full():
        q.get_nowait()  # a slow page loses its oldest event, not everyone their newest
    q.put_nowait(event)
