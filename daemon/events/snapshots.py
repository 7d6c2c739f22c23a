"""Face snapshots on disk: the best view of each track, with a retention limit.

A failing disk (full, read-only, gone) must not stop recognition: a save that fails returns
None, the event goes out without a snapshot, and the failure is logged once per interval.

Retention deletes only what facewatch wrote: every snapshot carries a JPEG comment
(`MARKER`) right after its start-of-image marker, and pruning reads the first bytes of each
`<dir>/<camera>/*.jpg` for it.  `snapshots.dir` pointed at a folder of photos by mistake
costs some disk, never a holiday photo.  (Snapshots from versions before the comment are
left alone too: delete those by hand.)
"""

from __future__ import annotations

import logging
import os
import struct
import time
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

_WARN_EVERY_S = 60.0
# Retention is enforced every this many saves (listing the directory is not free).
_PRUNE_EVERY = 50
# The JPEG comment (COM segment) that marks a file as a facewatch snapshot.
MARKER = b"facewatch snapshot"
_SOI, _COM = b"\xff\xd8", b"\xff\xfe"
_HEAD = _SOI + _COM + struct.pack(">H", len(MARKER) + 2) + MARKER


def marked(data: bytes) -> bytes:
    """A JPEG (as cv2.imencode gives it) with facewatch's comment inserted after its SOI."""
    if not data.startswith(_SOI):
        raise OSError("JPEG encoding gave no start-of-image marker")
    return _HEAD + data[len(_SOI):]


def is_snapshot(path: Path) -> bool:
    """Whether `path` is a JPEG that facewatch wrote (it starts with facewatch's comment)."""
    try:
        with path.open("rb") as f:
            return f.read(len(_HEAD)) == _HEAD
    except OSError:
        return False


class SnapshotStore:
    def __init__(self, directory: Path, max_files: int = 1000, jpeg_quality: int = 90) -> None:
        self.directory = directory
        self.max_files = max_files
        self.jpeg_quality = jpeg_quality
        self.failures = 0
        self._saves = 0
        self._last_warning = -_WARN_EVERY_S
        # path -> (mtime_ns, size) of files known to be facewatch's, so that pruning reads
        # each file's first bytes once, not on every pass
        self._ours: dict[Path, tuple[int, int]] = {}

    def save(self, camera: str, name: str, image: np.ndarray) -> str | None:
        """Write an RGB image as `<dir>/<camera>/<name>.jpg`, replacing an older view of the
        same track; returns the path, or None if it could not be written."""
        folder = self.directory / camera
        path = folder / f"{name}.jpg"
        try:
            ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image[:, :, ::-1]),
                                    [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                raise OSError("JPEG encoding failed")
            if not folder.is_dir():
                # the snapshots folder too, not only the camera's: 0700 whatever the umask
                self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                folder.mkdir(exist_ok=True, mode=0o700)
            tmp = folder / f".{name}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(marked(data.tobytes()))
            os.replace(tmp, path)
        except OSError as exc:
            self.failures += 1
            now = time.monotonic()
            if now - self._last_warning >= _WARN_EVERY_S:
                self._last_warning = now
                log.warning("snapshots: cannot write %s (%s); events go out without snapshots "
                            "(%d failures so far)", path, exc.strerror or exc, self.failures)
            return None
        self._saves += 1
        if self._saves % _PRUNE_EVERY == 0:
            self.prune()
        return str(path)

    def prune(self) -> int:
        """Delete the oldest snapshots beyond `max_files`; returns how many were deleted.

        Only facewatch's own files count and are deleted (see the module docstring)."""
        try:
            candidates = list(self.directory.glob("*/*.jpg"))
        except OSError:
            return 0
        files, ours = [], {}
        for p in candidates:
            try:
                st = p.stat()
            except OSError:
                continue
            key = (st.st_mtime_ns, st.st_size)
            if self._ours.get(p) == key or is_snapshot(p):
                ours[p] = key
                files.append((st.st_mtime_ns, p))
        self._ours = ours
        excess = len(files) - self.max_files
        if excess <= 0:
            return 0
        files.sort()
        removed = 0
        for _, p in files[:excess]:
            try:
                p.unlink()
                removed += 1
                del self._ours[p]
            except OSError:
                pass
        return removed


def face_context(frame: np.ndarray, box: np.ndarray, margin: float = 0.4,
                 max_side: int = 240) -> np.ndarray:
    """The face with some surroundings, as people want to see it (not the aligned crop)."""
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    l, t = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    r, b = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
    crop = frame[t:max(b, t + 1), l:max(r, l + 1)]
    scale = max_side / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)),
                                 max(1, round(crop.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop)
