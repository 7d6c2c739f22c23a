"""Face snapshots on disk: the best view of each track, with a retention limit.

A failing disk (full, read-only, gone) must not stop recognition: a save that fails returns
None, the event goes out without a snapshot, and the failure is logged once per interval.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

_WARN_EVERY_S = 60.0
# Retention is enforced every this many saves (listing the directory is not free).
_PRUNE_EVERY = 50


class SnapshotStore:
    def __init__(self, directory: Path, max_files: int = 1000, jpeg_quality: int = 90) -> None:
        self.directory = directory
        self.max_files = max_files
        self.jpeg_quality = jpeg_quality
        self.failures = 0
        self._saves = 0
        self._last_warning = -_WARN_EVERY_S

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
                f.write(data.tobytes())
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
        """Delete the oldest snapshots beyond `max_files`; returns how many were deleted."""
        try:
            files = [(p.stat().st_mtime, p) for p in self.directory.glob("*/*.jpg")]
        except OSError:
            return 0
        excess = len(files) - self.max_files
        if excess <= 0:
            return 0
        files.sort()
        removed = 0
        for _, p in files[:excess]:
            try:
                p.unlink()
                removed += 1
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
