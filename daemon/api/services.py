"""What the routes share, opened on first need and kept for the process's life: the face
library store, the recognition models, the gallery (for recognize) and the gallery edit target.

The models load lazily: listing faces, serving crops and editing the library's groups need no
model, so an API that is only looked at never pays for them.  Recognize, search by image and
every gallery edit (an edited gallery is enrolled before it is saved) load them once, under a
lock; the load itself is logged.  Measured (README): the api process grows from about 130 to
about 290 MiB resident with the first recognize (the models, ONNX Runtime's buffers, the
gallery), and that first request takes about 2 s more than the next ones.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

from facewatch.config.daemon import DaemonConfig
from facewatch.errors import BadInputError
from facewatch.library.operations import GalleryTarget
from facewatch.library.store import NotFoundError

log = logging.getLogger(__name__)


class LibraryOff(NotFoundError):
    """The face library is switched off in the config."""


class Services:
    def __init__(self, config: DaemonConfig, control: Any = None, pipeline: Any = None) -> None:
        self.config = config
        self.control = control  # Channel[ControlCommand] to the inference process, if any
        self._pipeline = pipeline
        self._store: Any = None
        self._gallery: Any = None
        self._gallery_key: Any = None
        self._lock = threading.Lock()  # the store
        self._models_lock = threading.Lock()  # loading takes a second or two: not under _lock
        self._gallery_lock = threading.Lock()
        self.model_load_s: float | None = None
        self.model_rss_mb: float | None = None

    # ------------------------------------------------------------------ paths

    @property
    def state_dir(self) -> Path:
        assert self.config.state_dir is not None  # resolved configs always have one
        return Path(self.config.state_dir)

    @property
    def gallery_path(self) -> Path:
        """The gallery YAML (by default <state_dir>/gallery.yaml, created by the first edit)."""
        return self.config.gallery_path

    @property
    def gallery_state(self) -> Path:
        """The daemon's gallery cache (as the inference process and the CLI use it)."""
        from facewatch.config.resolve import gallery_cache_dir

        return gallery_cache_dir(self.state_dir)

    # ------------------------------------------------------------------ library

    @property
    def library_enabled(self) -> bool:
        return self.config.library.enabled

    def store(self) -> Any:
        """The face library (a reader beside the daemon's writer process)."""
        if not self.config.library.enabled:
            raise LibraryOff("the face library is off (library.enabled: false in the config)")
        with self._lock:
            if self._store is None:
                from facewatch.library.sqlite_store import SqliteLibrary
                from facewatch.library.writer import library_dir

                lib = self.config.library
                self._store = SqliteLibrary(library_dir(self.state_dir),
                                            max_age_s=lib.max_age_days * 86400.0,
                                            max_faces=lib.max_faces)
            return self._store

    def store_if_enabled(self) -> Any:
        return self.store() if self.config.library.enabled else None

    # ------------------------------------------------------------------ models

    def pipeline(self) -> Any:
        with self._models_lock:
            if self._pipeline is None:
                from facewatch.engines.store import ModelStore
                from facewatch.pipeline import FacePipeline

                inference = self.config.inference
                before = _rss_mb()
                started = time.monotonic()
                models = ModelStore(Path(inference.models_dir)) if inference.models_dir \
                    else ModelStore()
                self._pipeline = FacePipeline.load(inference.pipeline_settings(), models)
                self.model_load_s = time.monotonic() - started
                self.model_rss_mb = _rss_mb() - before
                log.info("API: models loaded in %.1f s (+%.0f MB resident)", self.model_load_s,
                         self.model_rss_mb)
            return self._pipeline

    @property
    def models_loaded(self) -> bool:
        return self._pipeline is not None

    def embedder_threshold(self) -> float | None:
        """The naming threshold: the config's, else the embedder's manifest's."""
        if self.config.recognition.threshold is not None:
            return self.config.recognition.threshold
        from facewatch.engines.store import ModelStore
        from facewatch.errors import FacewatchError

        inference = self.config.inference
        try:
            store = ModelStore(Path(inference.models_dir)) if inference.models_dir else ModelStore()
            return store.manifest(inference.embedder).threshold
        except FacewatchError:
            return None

    # ------------------------------------------------------------------ gallery

    def target(self) -> GalleryTarget:
        """The gallery YAML as the library's operations edit it: an edited copy must enrol
        (through the daemon's own models and cache) before it replaces the file."""
        from facewatch.gallery.gallery import Gallery

        pipeline = self.pipeline()
        state = self.gallery_state

        def check(tmp: Path) -> None:
            Gallery.open(tmp, pipeline, state_dir=state)

        return GalleryTarget(self.gallery_path, check)

    def gallery(self) -> Any:
        """The enrolled gallery for recognize: built again when its file or photos changed."""
        from facewatch.gallery.gallery import Gallery
        from facewatch.gallery.watch import fingerprint

        pipeline = self.pipeline()
        with self._gallery_lock:
            images = list(self._gallery.entry_images) if self._gallery is not None else []
            key = fingerprint(self.gallery_path, images)
            if self._gallery is None or key != self._gallery_key:
                # no gallery file yet: nobody enrolled, every face unknown (as in the daemon)
                recognition = self.config.recognition
                self._gallery = Gallery.open(self.gallery_path, pipeline,
                                             state_dir=self.gallery_state, missing_ok=True,
                                             threshold=recognition.threshold,
                                             max_false_rate=recognition.max_false_rate)
                self._gallery_key = fingerprint(self.gallery_path,
                                                list(self._gallery.entry_images))
            return self._gallery

    def reload(self) -> None:
        """Ask the inference process to reload the gallery now (it would notice the edit by
        itself within a few seconds)."""
        if self.control is None:
            return
        from facewatch.processes.channels import ControlCommand

        try:
            self.control.put_nowait(ControlCommand.RELOAD_GALLERY)
        except queue.Full:
            log.warning("API: the inference process has reload requests waiting; it will "
                        "notice the edit by itself")

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def check_camera(name: str | None) -> str | None:
    """A camera name as the config allows them (the filter may name a camera since removed)."""
    import re

    from facewatch.config.cameras import CAMERA_NAME_PATTERN

    if name is not None and not re.fullmatch(CAMERA_NAME_PATTERN, name):
        raise BadInputError(f"camera {name!r}: not a camera name (lower-case letters, digits, "
                            f"_ and - only)")
    return name


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
