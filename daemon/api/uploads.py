"""Uploaded images: size-limited, decoded and checked as image files are, or refused.

The whole request body is limited to `api.max_upload_mb` by the app (413 before anything is
parsed when the client says how long it is, or as soon as it sends more); an upload that does
not decode as an image is refused with 415.  Nothing is written before a photo decodes.
"""

from __future__ import annotations

import numpy as np
from fastapi import HTTPException, UploadFile, status

from facewatch.errors import ImageError
from facewatch.images import DEFAULT_MAX_PIXELS, decode_image
from facewatch.printable import printable

MAX_FILES = 20  # photos in one request


def upload_name(upload: UploadFile) -> str:
    """The client's file name, as text safe to show (never used as a path)."""
    name = printable(" ".join((upload.filename or "upload").split()))
    return name[:80] or "upload"


async def read_image(upload: UploadFile, max_bytes: int,
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The upload as an RGB image; 413 if larger than `max_bytes`, 415 if not an image."""
    name = upload_name(upload)
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            f"{name}: larger than api.max_upload_mb "
                            f"({max_bytes / 1e6:g} MB)")
    if not data:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"{name}: empty file")
    try:
        return decode_image(data, name, max_pixels)
    except ImageError as exc:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, str(exc)) from None


async def read_images(uploads: list[UploadFile], max_bytes: int) -> list[np.ndarray]:
    if len(uploads) > MAX_FILES:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            f"photos: at most {MAX_FILES} in one request")
    return [await read_image(u, max_bytes) for u in uploads]
