"""Decoding image files: what is refused (and how), and what every accepted kind turns into."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from facewatch.errors import ImageError
from facewatch.images import DEFAULT_MAX_PIXELS, load_image


def _refused(path: Path | str) -> str:
    with pytest.raises(ImageError) as info:
        load_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    return message


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR (with a valid CRC) claims width x height, and a token of pixel data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def test_truncated_jpeg(tmp_path: Path, examples: Path) -> None:
    data = (examples / "obama.jpg").read_bytes()
    path = tmp_path / "half.jpg"
    path.write_bytes(data[: len(data) // 2])
    assert "truncated" in _refused(path)


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    assert "not an image" in _refused(path)


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("people:\n  - id: ada\n")
    assert "not an image" in _refused(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert "no such file" in _refused(tmp_path / "nope.jpg")
    assert "is a directory" in _refused(tmp_path)


@pytest.mark.parametrize("width, height", [(50_000, 50_000), (8_000, 6_000)],
                         ids=["50000x50000", "8000x6000"])
def test_huge_header_is_refused_before_decoding(tmp_path: Path, width: int, height: int) -> None:
    """Refused from the header: decoding would fail differently (the pixel data is 16 bytes),
    and 50,000 x 50,000 RGB would need 7.5 GB."""
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(width, height))
    assert path.stat().st_size < 200
    assert struct.unpack(">II", path.read_bytes()[16:24]) == (width, height)
    message = _refused(path)
    assert f"pixels is over the limit of {DEFAULT_MAX_PIXELS:,}" in message
    assert f"{width * height:,}" in message or f"{width}x{height}" in message


def test_pixel_limit_is_configurable(tmp_path: Path, examples: Path) -> None:
    with pytest.raises(ImageError, match="over the limit of 100,000"):
        load_image(examples / "obama2.jpg", max_pixels=100_000)  # 626 x 1200
    assert load_image(examples / "obama2.jpg", max_pixels=626 * 1200).shape == (1200, 626, 3)


def test_rgba_png_is_composited_onto_white(photos: Path) -> None:
    path = photos / "face_recognition_examples" / "tests" / "test_images" / "32bit.png"
    with Image.open(path) as img:
        assert img.mode == "RGBA"
        alpha = np.asarray(img)[:, :, 3]
    rgb = load_image(path)
    assert rgb.shape == (1200, 626, 3) and rgb.dtype == np.uint8
    if (alpha == 0).any():
        assert (rgb[alpha == 0] == 255).all()


def test_grayscale_png(tmp_path: Path) -> None:
    gray = (np.arange(48 * 64).reshape(48, 64) % 251).astype(np.uint8)
    path = tmp_path / "gray.png"
    assert cv2.imwrite(str(path), gray)
    rgb = load_image(path)
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(rgb[:, :, c], gray)


def test_16bit_grayscale_png(tmp_path: Path) -> None:
    gray16 = (np.arange(48 * 64).reshape(48, 64) * 21).astype(np.uint16)  # 0 .. 64,491
    path = tmp_path / "gray16.png"
    assert cv2.imwrite(str(path), gray16)
    rgb = load_image(path)
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    expected = np.rint(gray16 / 257.0).astype(np.uint8)
    for c in range(3):
        np.testing.assert_array_equal(rgb[:, :, c], expected)


def test_16bit_colour_png(tmp_path: Path) -> None:
    ramp = (np.arange(48 * 64).reshape(48, 64) * 21).astype(np.uint16)
    bgr16 = np.stack([ramp, 65535 - ramp, np.full_like(ramp, 30000)], axis=2)
    path = tmp_path / "colour16.png"
    assert cv2.imwrite(str(path), bgr16)
    rgb = load_image(path)
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    expected = (bgr16[:, :, ::-1] / 257.0).astype(np.float64)
    assert np.abs(rgb - expected).max() <= 1.0


def test_exif_rotation_is_applied(tmp_path: Path, examples: Path) -> None:
    """Orientation 6: the camera was turned, and the picture must be rotated 90° clockwise."""
    source = cv2.imread(str(examples / "obama2.jpg"))
    assert source is not None
    stored = cv2.resize(source[:, :, ::-1], (120, 200))  # W x H
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(path, quality=95, exif=exif)
    # decoded without looking at EXIF, the file holds the 120 x 200 picture
    decoded = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    assert decoded is not None
    raw = decoded[:, :, ::-1]
    assert raw.shape == (200, 120, 3)
    rgb = load_image(path)
    assert rgb.shape == (120, 200, 3)
    np.testing.assert_array_equal(rgb, np.rot90(raw, k=-1))
