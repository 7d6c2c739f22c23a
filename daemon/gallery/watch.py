"""Notice gallery edits, and rebuild the gallery in the background without stopping recognition.

A change is noticed by polling: the gallery file (or folder) and every image it enrolled are
stat'ed every few seconds.  Polling needs no inotify limits, works on network filesystems and
costs microseconds per file.  The rebuild runs in a thread through the same pipeline (ONNX
Runtime sessions are safe to share between threads); only a complete, valid gallery replaces
the running one, so a bad edit leaves the old gallery in place and its error is reported.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from facewatch.errors import FacewatchError
from facewatch.gallery import last_good
from facewatch.gallery.gallery import Gallery
from facewatch.identity.threshold import DEFAULT_MAX_FALSE_RATE
from facewatch.pipeline import FacePipeline

log = logging.getLogger(__name__)

POLL_EVERY_S = 2.0


Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(source: Path, images: list[Path]) -> Fingerprint:
    return source_fingerprint(source) + _stats(images)


def source_fingerprint(source: Path) -> Fingerprint:
    """The gallery file (or folder, with its person folders) alone."""
    paths = [source]
    if source.is_dir():
        paths += sorted(d for d in source.iterdir() if d.is_dir() and not d.name.startswith("."))
    return _stats(paths)


def _stats(paths: list[Path]) -> Fingerprint:
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((str(p), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(p), -1, -1))
    return tuple(out)


@dataclass(frozen=True)
class ReloadResult:
    gallery: Gallery | None
    error: str | None


class GalleryWatcher:
    def __init__(self, source: Path, pipeline: FacePipeline, state_dir: Path, *,
                 threshold: float | None = None,
                 max_false_rate: float = DEFAULT_MAX_FALSE_RATE) -> None:
        self.source = source
        self.pipeline = pipeline
        self.state_dir = state_dir
        self.threshold = threshold  # as Gallery.open takes them
        self.max_false_rate = max_false_rate
        self._results: queue.SimpleQueue[ReloadResult] = queue.SimpleQueue()
        self._images: list[Path] = []
        self._fingerprint: Fingerprint = ()
        self._last_poll = 0.0
        self._thread: threading.Thread | None = None
        self._again = False

    def loaded(self, gallery: Gallery, source_before: Fingerprint | None = None) -> None:
        """Remember what the running gallery was built from.  `source_before`: the gallery
        file's fingerprint taken before it was read, so that an edit saved while the gallery
        was being built is still a change to load (an edit during a reload is not lost)."""
        self._images = list(gallery.entry_images) + gallery.not_images
        source = source_fingerprint(self.source) if source_before is None else source_before
        self._fingerprint = source + _stats(self._images)

    def take_result(self) -> ReloadResult | None:
        """A finished rebuild, to be swapped in by the owner's own thread; None if none."""
        try:
            return self._results.get_nowait()
        except queue.Empty:
            return None

    def poll(self, force: bool = False) -> None:
        """Call often from the owner's loop; starts a rebuild when something changed."""
        now = time.monotonic()
        if not force and now - self._last_poll < POLL_EVERY_S:
            return
        self._last_poll = now
        if self._thread is not None and self._thread.is_alive():
            self._again = self._again or force
            return
        current = fingerprint(self.source, self._images)
        if not force and current == self._fingerprint and not self._again:
            return
        self._again = False
        self._fingerprint = current
        self._thread = threading.Thread(target=self._rebuild, name="gallery-reload", daemon=True)
        self._thread.start()

    def _rebuild(self) -> None:
        started = time.monotonic()
        before = source_fingerprint(self.source)
        try:
            # a gallery file that is not there (yet, or any more) is nobody enrolled
            gallery = Gallery.open(self.source, self.pipeline, state_dir=self.state_dir,
                                   missing_ok=True, threshold=self.threshold,
                                   max_false_rate=self.max_false_rate)
        except FacewatchError as exc:
            log.error("gallery not reloaded, the running one stays: %s", exc)
            self._results.put(ReloadResult(None, str(exc)))
            return
        except Exception as exc:  # a bug must not kill recognition either
            log.exception("gallery reload failed")
            self._results.put(ReloadResult(None, f"{type(exc).__name__}: {exc}"))
            return
        self.loaded(gallery, before)
        last_good.remember(gallery.spec, self.state_dir)
        r = gallery.report
        log.info("gallery reloaded in %.1f s: %d people, %d images (%d new); %s",
                 time.monotonic() - started, r.people, r.enrolled, r.analysed,
                 gallery.operating_point.describe())
        self._results.put(ReloadResult(gallery, None))
