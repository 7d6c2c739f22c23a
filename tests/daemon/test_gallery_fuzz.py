"""Whatever a gallery file holds, the loader returns a spec or raises GalleryError with one line
naming the file; whatever bytes an image file holds, load_image returns RGB pixels or raises
ImageError naming it.  Never another exception: the daemon's gallery reload and `facewatch
gallery` must be able to report any bad input instead of crashing."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from facewatch.errors import GalleryError, ImageError
from facewatch.gallery.spec import GallerySpec, load_gallery_spec
from facewatch.images import load_image
from tests.support.yaml_fuzz import mutated, paths_in, structures, yaml_ish_text

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

KEYS = ["people", "id", "name", "metadata", "images", "threshold", "version", "team"]
# Names that exist in the fuzzing folder (see `folder`), and paths that stress the file system.
PATHS = ["face.jpg", "notes.jpg", "photos", "photos/*.jpg", "photos/", "*.jpg", "missing.jpg",
         "../face.jpg", "~", "~nosuchuser/x.jpg", "a\0b.jpg", "x" * 300 + ".jpg",
         "/".join(["d" * 200] * 30), "[", "**/*.jpg", "photos/**", "/dev/null", "face.jpg/x"]
NAMES = ["ada", "Ada Lovelace", "a" * 200, "-x", "ok.id@x", "", "0.3", "1e999"]
STRUCTURES = structures(KEYS, PATHS + NAMES)
VALID = {"threshold": 0.3, "people": [
    {"id": "ada", "name": "Ada Lovelace", "metadata": {"team": "lab"},
     "images": ["face.jpg", "photos/*.jpg", "photos/"]},
    {"id": "bob", "images": "face.jpg"}]}


VALID_PATHS = paths_in(VALID)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gallery-fuzz")
    Image.new("RGB", (8, 8), (200, 150, 100)).save(root / "face.jpg")
    (root / "notes.jpg").write_text("not an image")
    (root / "photos").mkdir()
    Image.new("RGB", (8, 8)).save(root / "photos" / "one.jpg")
    return root


def check(folder: Path, text: str | bytes) -> None:
    path = folder / "gallery.yaml"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    else:
        path.write_bytes(text)
    try:
        spec = load_gallery_spec(path)
    except GalleryError as exc:
        message = str(exc)
        assert message.startswith(str(folder)), message
        assert "\n" not in message, message
        return
    assert isinstance(spec, GallerySpec)
    for person in spec.people:
        assert person.images and all(p.is_file() for p in person.images)


@FUZZ
@given(text=st.text(max_size=300))
def test_random_text(folder: Path, text: str) -> None:
    check(folder, text)


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes(folder: Path, data: bytes) -> None:
    check(folder, data)


@FUZZ
@given(text=yaml_ish_text(["\x00", "\udc80", *KEYS, *PATHS]))
def test_yaml_ish_text(folder: Path, text: str) -> None:
    check(folder, text)


@FUZZ
@given(data=STRUCTURES)
def test_random_structures(folder: Path, data: Any) -> None:
    check(folder, yaml.safe_dump(data, allow_unicode=True))


@FUZZ
@given(mutations=st.lists(st.tuples(st.sampled_from(VALID_PATHS), STRUCTURES), min_size=1, max_size=3))
def test_mutated_gallery(folder: Path, mutations: list[tuple[tuple[Any, ...], Any]]) -> None:
    check(folder, yaml.safe_dump(mutated(VALID, mutations), allow_unicode=True))


def test_the_valid_gallery_loads(folder: Path) -> None:
    check(folder, yaml.safe_dump(VALID))
    spec = load_gallery_spec(folder / "gallery.yaml")
    assert [p.id for p in spec.people] == ["ada", "bob"]
    assert {p.name for p in spec.people[0].images} == {"face.jpg", "one.jpg"}


# -- image files -------------------------------------------------------------------------------

def _encoded(fmt: str) -> bytes:
    rng = np.random.default_rng(7)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(buffer, fmt)
    return buffer.getvalue()


SAMPLES = {fmt: _encoded(fmt) for fmt in ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")}


def check_image(folder: Path, data: bytes, suffix: str = ".jpg") -> None:
    path = folder / f"fuzzed{suffix}"
    path.write_bytes(data)
    try:
        image = load_image(path, max_pixels=4_000_000)
    except ImageError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: ") and "\n" not in message, message
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


@FUZZ
@given(fmt=st.sampled_from(sorted(SAMPLES)),
       edits=st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.none() | st.integers(0, 4096))
def test_damaged_images(folder: Path, fmt: str, edits: list[tuple[int, int]], cut: int | None) -> None:
    data = bytearray(SAMPLES[fmt])
    for offset, value in edits:
        data[offset % len(data)] = value
    check_image(folder, bytes(data[:cut] if cut is not None else data))


@FUZZ
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".jpg", ".png", ".gif", ".tif", ".webp"]))
def test_random_bytes_named_as_images(folder: Path, data: bytes, suffix: str) -> None:
    check_image(folder, data, suffix)


@pytest.mark.parametrize("pattern", PATHS)
def test_odd_image_paths(folder: Path, pattern: str) -> None:
    """Each of the paths the fuzzer draws from, on its own: no file-system error escapes."""
    check(folder, yaml.safe_dump({"people": [{"id": "ada", "images": [pattern]}]}))
    check(folder, yaml.safe_dump({"people": [{"id": "ada", "images": pattern}]}))
