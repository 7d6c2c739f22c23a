"""Read image files into RGB uint8 arrays, refusing what cannot or should not be decoded.

Pillow reads the header first, so the pixel limit is checked before any decoding: a small file
that claims to be 50,000 x 50,000 pixels is refused without allocating 7 GB.
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import sys
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facewatch.errors import ImageError

# 40 MP: a 7,000 x 5,700 photo.  Gallery photos and frames are far smaller; anything larger is
# almost certainly a mistake or a decompression bomb.
DEFAULT_MAX_PIXELS = 40_000_000


def load_image(path: Path | str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file as (H, W, 3) RGB uint8, EXIF rotation applied.

    Grayscale, palette, RGBA (composited onto white), 16-bit and CMYK images are
    converted; anything unreadable raises ImageError naming the file, and so does anything
    that is not a regular file: reading a named pipe would wait for a writer forever.
    """
    p = Path(path)
    try:
        file = _open_regular(p, path)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not an image") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except OSError as exc:
        raise ImageError(f"{path}: corrupt or truncated image ({exc})") from None
    return _decode(file, path, max_pixels)


def decode_image(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Image bytes (an upload) decoded and checked as `load_image` does a file; errors name
    `name`."""
    return _decode(io.BytesIO(data), name, max_pixels)


def _decode(file: BinaryIO, shown: Path | str, max_pixels: int) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # Pillow warns (and, past 2x its own limit, raises) about huge images; we check
            # our own limit below with a clearer message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Damaged metadata ("Corrupt EXIF data", "Truncated File Read", a TIFF tag with
            # too many entries) is warned about while the pixels may still be fine; the image
            # either decodes or fails below with ImageError naming the file.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            with file, Image.open(file) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise ImageError(f"{shown}: {w}x{h} pixels is over the limit of "
                                     f"{max_pixels:,} (--max-pixels raises the limit if this is intended)")
                img.load()
                return _to_rgb(ImageOps.exif_transpose(img))
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{shown}: not an image (or an unsupported format)") from None
    except Image.DecompressionBombError as exc:
        # Pillow refuses headers past twice its own limit inside Image.open, before our check
        # runs; it is the same refusal (header only, nothing decoded), so say it the same way.
        raise ImageError(f"{shown}: {_claimed_size(exc)} is over the limit of "
                         f"{min(max_pixels, _pillow_hard_limit()):,} (refused before decoding "
                         f"as a possible decompression bomb)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports truncated or corrupt data as OSError ("image file is truncated").
        raise ImageError(f"{shown}: corrupt or truncated image ({exc})") from None


def _open_regular(p: Path, shown: Path | str) -> BinaryIO:
    """`p` opened for reading if it is a regular file (after symlinks); ImageError if not.

    Opened without blocking, then checked on the open descriptor: opening a FIFO for
    reading would otherwise block until something writes to it, and checking the name
    first would leave a gap in which it could be swapped."""
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a Unix socket cannot be opened like a file
            raise ImageError(f"{shown}: not a regular file (a socket); give an image file") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(p))
        kind = ("a named pipe" if stat.S_ISFIFO(mode) else "a character device"
                if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode) else "a special file")
        raise ImageError(f"{shown}: not a regular file ({kind}); give an image file")
    return os.fdopen(fd, "rb")


def _claimed_size(exc: Exception) -> str:
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return f"{int(found.group(1)):,} pixels" if found else "its pixel count"


def _pillow_hard_limit() -> int:
    limit = Image.MAX_IMAGE_PIXELS
    return 2 * int(limit) if limit else sys.maxsize


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: scale the full range down to 8 bits.
        arr = np.asarray(img, dtype=np.float64)
        peak = max(float(arr.max()), 1.0)
        gray = np.rint(arr * (255.0 / (65535.0 if peak > 255 else 255.0))).clip(0, 255)
        gray = gray.astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite onto white rather than dropping alpha: transparent regions of cut-out
        # portraits are often black in RGB, which reads as a dark halo around the face.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
