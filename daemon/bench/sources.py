"""Real frames and face crops for benchmarks, read from a video or image files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facewatch.errors import BadInputError
from facewatch.gallery.spec import IMAGE_SUFFIXES
from facewatch.images import load_image
from facewatch.streams.decimation import Decimator


def read_frames(source: Path, limit: int) -> list[np.ndarray]:
    """Up to `limit` RGB frames from a video file, or the images of a folder/file."""
    return sample_frames(source, limit, None, loop=False)[0]


def sample_frames(source: Path, count: int, fps: float | None, loop: bool = True
                  ) -> tuple[list[np.ndarray], list[float], int]:
    """`count` RGB frames taken at `fps` (None: every frame) as the daemon's stream process
    takes them, with their times in seconds; a video is played again from the start (a cut,
    as in a looping camera) until there are enough, if `loop`.  Images of a folder (or one
    image) are spaced 1/fps apart.  Returns the frames, their times and the passes made."""
    if source.is_dir() or source.suffix.lower() in IMAGE_SUFFIXES:
        images = _images(source)[:count]
        period = 1.0 / fps if fps else 0.1
        return images, [i * period for i in range(len(images))], 1
    if not source.is_file():
        raise BadInputError(f"{source}: no such file or folder")
    frames: list[np.ndarray] = []
    times: list[float] = []
    decimator = Decimator(fps)
    passes, offset = 0, 0.0
    while len(frames) < count:
        cap = cv2.VideoCapture(str(source))
        native = cap.get(cv2.CAP_PROP_FPS) or 30.0
        passes += 1
        index = 0
        try:
            while len(frames) < count:
                ok, frame = cap.read()
                if not ok:
                    break
                ts = offset + index / native
                index += 1
                if decimator.take(ts):
                    frames.append(np.ascontiguousarray(frame[:, :, ::-1]))
                    times.append(ts)
        finally:
            cap.release()
        if index == 0:
            if not frames:
                raise BadInputError(f"{source}: no frames could be decoded (not a video or image?)")
            break
        offset += index / native
        if not loop:
            break
    return frames, times, passes


def still_frames(image: np.ndarray, count: int, noise: float = 3.0, jpeg_quality: int = 75,
                 seed: int = 0) -> list[np.ndarray]:
    """A fixed scene as a camera delivers it: `image` with fresh sensor noise (Gaussian, `noise`
    grey levels) in every frame, then JPEG-compressed and decoded again, so compression
    artefacts flicker from frame to frame as they do on a real camera."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        noisy = np.clip(image.astype(np.float32) + rng.normal(0.0, noise, image.shape), 0, 255)
        ok, data = cv2.imencode(".jpg", noisy.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        assert ok
        out.append(np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)))
    return out


def write_still_video(image: np.ndarray, path: Path, seconds: float, fps: float,
                      noise: float = 3.0) -> Path:
    """A video file of a fixed scene with sensor noise (see `still_frames`), MPEG-4 in an .mp4
    (a codec every OpenCV and GStreamer install decodes), for `bench pipeline --still`."""
    height, width = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise BadInputError(f"{path}: cannot write an MPEG-4 video here")
    try:
        n = max(1, int(round(seconds * fps)))
        rng = np.random.default_rng(0)
        bgr = image[:, :, ::-1].astype(np.float32)
        for _ in range(n):
            writer.write(np.clip(bgr + rng.normal(0.0, noise, bgr.shape), 0, 255).astype(np.uint8))
    finally:
        writer.release()
    return path


def _images(source: Path) -> list[np.ndarray]:
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return [load_image(p) for p in files]
    return [load_image(source)]
