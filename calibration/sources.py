"""Where calibration frames come from: a video, an image folder, a gallery, or a camera.

Every source yields RGB uint8 frames one at a time, so a 500-frame 1080p calibration never
holds all its frames in memory.  Frames of a video are spread evenly over its length, not
taken from its start: a clip's first seconds are rarely representative.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facewatch.errors import BadInputError, FacewatchError
from facewatch.images import load_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameSource:
    """One calibration source: a description for the manifest, and a way to read its frames."""

    description: str
    count: int  # frames it will yield, for the progress bar (an upper bound for cameras)
    _read: object = field(repr=False, compare=False)

    def frames(self) -> Iterator[np.ndarray]:
        reader = self._read
        assert callable(reader)
        yield from reader()


def video_source(path: Path, frames: int) -> FrameSource:
    if not path.is_file():
        raise BadInputError(f"{path}: no such video file")
    cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    cap.release()
    if total <= 0:
        raise BadInputError(f"{path}: not a readable video (OpenCV finds no frames)")
    wanted = min(frames, total)
    # Evenly spaced frame numbers; read sequentially (seeking is unreliable in many codecs).
    picks = set(np.linspace(0, total - 1, wanted).round().astype(int).tolist())

    def read() -> Iterator[np.ndarray]:
        cap = cv2.VideoCapture(str(path))
        try:
            index = 0
            while index <= max(picks):
                ok, frame = cap.read()
                if not ok:
                    break
                if index in picks:
                    yield np.ascontiguousarray(frame[:, :, ::-1])
                index += 1
        finally:
            cap.release()

    return FrameSource(f"video {path.name}: {len(picks)} of {total} frames", len(picks), read)


def image_files_source(files: list[Path], description: str, limit: int | None = None) -> FrameSource:
    files = files[:limit] if limit else files
    if not files:
        raise BadInputError(f"{description}: no images found")

    def read() -> Iterator[np.ndarray]:
        for path in files:
            try:
                yield load_image(path)
            except FacewatchError as exc:
                log.warning("calibration: skipping %s", exc)

    return FrameSource(f"{description}: {len(files)} images", len(files), read)


def folder_source(folder: Path, limit: int | None = None) -> FrameSource:
    from facewatch.gallery.spec import IMAGE_SUFFIXES

    if not folder.is_dir():
        raise BadInputError(f"{folder}: not a folder of images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return image_files_source(files, f"images {folder}", limit)


def gallery_source(gallery: Path, limit: int | None = None) -> FrameSource:
    from facewatch.gallery.spec import load_gallery_spec

    spec = load_gallery_spec(gallery)
    files = sorted({img for person in spec.people for img in person.images})
    return image_files_source(files, f"gallery {gallery}", limit)


def camera_source(config_path: Path, camera: str, frames: int, spacing_s: float = 0.5,
                  timeout_s: float = 10.0) -> FrameSource:
    """Frames of a configured camera, at most one every `spacing_s` of stream time, resized to
    the camera's `max_size` as the daemon analyses them."""
    from facewatch.config import load_resolved

    config = load_resolved(config_path)
    cam = next((c for c in config.cameras if c.name == camera), None)
    if cam is None:
        names = ", ".join(c.name for c in config.cameras) or "none"
        raise BadInputError(f"{config_path}: no camera named {camera!r} (cameras: {names})")

    def read() -> Iterator[np.ndarray]:
        from facewatch.streams.auto import create_source
        from facewatch.streams.source import EndOfStream

        source = create_source(cam.stream_settings())
        source.open()
        try:
            taken, last_ts, deadline = 0, -1e9, time.monotonic() + timeout_s
            while taken < frames:
                try:
                    frame = source.read(1.0)
                except EndOfStream:
                    return
                if frame is None:
                    if time.monotonic() > deadline:
                        raise BadInputError(f"camera {camera}: no frame for {timeout_s:g} s")
                    continue
                deadline = time.monotonic() + timeout_s
                if frame.stream_ts - last_ts < spacing_s:
                    continue
                last_ts = frame.stream_ts
                taken += 1
                yield _fit(frame.image, cam.max_size)
        finally:
            source.close()

    return FrameSource(f"camera {camera}: up to {frames} frames, {spacing_s:g} s apart",
                       frames, read)


def _fit(image: np.ndarray, max_size: tuple[int, int] | None) -> np.ndarray:
    if max_size is None:
        return np.ascontiguousarray(image)
    h, w = image.shape[:2]
    f = min(max_size[0] / w, max_size[1] / h, 1.0)
    if f >= 1.0:
        return np.ascontiguousarray(image)
    return cv2.resize(image, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)


def chain(sources: list[FrameSource]) -> FrameSource:
    """Several sources read one after another."""
    if not sources:
        raise BadInputError("no calibration source: give --video, --images, --gallery or --camera")

    def read() -> Iterator[np.ndarray]:
        for s in sources:
            yield from s.frames()

    return FrameSource("; ".join(s.description for s in sources), sum(s.count for s in sources),
                       read)
