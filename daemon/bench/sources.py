"""Real frames and face crops for benchmarks, read from a video or image files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facewatch.errors import BadInputError
from facewatch.gallery.spec import IMAGE_SUFFIXES
from facewatch.images import load_image


def read_frames(source: Path, limit: int) -> list[np.ndarray]:
    """Up to `limit` RGB frames from a video file, or the images of a folder/file."""
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return [load_image(p) for p in files[:limit]]
    if not source.is_file():
        raise BadInputError(f"{source}: no such file or folder")
    if source.suffix.lower() in IMAGE_SUFFIXES:
        return [load_image(source)]
    cap = cv2.VideoCapture(str(source))
    frames: list[np.ndarray] = []
    try:
        while len(frames) < limit:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(np.ascontiguousarray(frame[:, :, ::-1]))
    finally:
        cap.release()
    if not frames:
        raise BadInputError(f"{source}: no frames could be decoded (not a video or image?)")
    return frames
