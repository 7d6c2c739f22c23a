"""Each enrolled person's photos, with the YAML item each came from: what a page shows and
lets a user remove.

A photo is named by `Photo.id` (a digest of its path), never by a path a client sends.  Its
`source` tells where it came from: `camera` (named from the face library,
`faces/<id>/<track id>-<n>.jpg`), `upload` (sent to the API, `faces/<id>/upload-<n>.jpg`) or
`gallery` (listed by hand).  Only a photo listed on its own (not through a glob or a folder)
can be removed by itself.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from facewatch.errors import GalleryError
from facewatch.gallery.spec import GallerySpec, _expand, load_gallery_spec
from facewatch.yamlfile import load_yaml

Source = Literal["camera", "upload", "gallery"]
FACES_DIR = "faces"  # beside the gallery: <gallery dir>/faces/<person id>/...
UPLOAD_PREFIX = "upload-"
_CAMERA_NAME = re.compile(r"^\d+-\d+\.jpg$")


@dataclass(frozen=True)
class Photo:
    id: str
    path: Path
    entry: str | None  # the `images` item naming this file alone; None: a glob or a folder
    source: Source


@dataclass(frozen=True)
class PersonPhotos:
    id: str
    name: str
    metadata: dict[str, Any]
    photos: tuple[Photo, ...]
    not_entries: int  # items in the person's `not:` list


def photo_id(path: Path) -> str:
    return hashlib.sha256(str(path).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def person_folder(gallery: Path, person_id: str) -> Path:
    """Where facewatch keeps the copies it makes for a person (ids are checked names: no
    separators, no leading dot)."""
    return gallery.parent / FACES_DIR / person_id


def source_of(gallery: Path, person_id: str, path: Path) -> Source:
    folder = person_folder(gallery, person_id).resolve()
    if path.resolve().parent != folder:
        return "gallery"
    if path.name.startswith(UPLOAD_PREFIX):
        return "upload"
    return "camera" if _CAMERA_NAME.match(path.name) else "gallery"


def people_photos(gallery: Path) -> list[PersonPhotos]:
    """Everyone in the gallery with their photos (nobody when there is no gallery file yet);
    GalleryError if it does not load."""
    spec = load_gallery_spec(gallery, missing_ok=True)
    raw = _raw_people(spec)
    out = []
    for person in spec.people:
        items = raw.get(person.id, {})
        single = _single_entries(spec.source.parent, items.get("images"))
        photos = tuple(Photo(photo_id(p), p, single.get(p), source_of(spec.source, person.id, p))
                       for p in person.images)
        not_items = items.get("not")
        not_count = 1 if isinstance(not_items, str) else len(not_items) \
            if isinstance(not_items, list) else 0
        out.append(PersonPhotos(person.id, person.name, dict(person.metadata), photos, not_count))
    return out


def find_person(gallery: Path, person_id: str) -> PersonPhotos | None:
    return next((p for p in people_photos(gallery) if p.id == person_id), None)


def _raw_people(spec: GallerySpec) -> dict[str, dict[str, Any]]:
    if spec.is_folder or not spec.people:
        return {}
    data = load_yaml(spec.source, GalleryError).data
    people = data.get("people") if isinstance(data, dict) else None
    return {str(e["id"]): e for e in people or [] if isinstance(e, dict) and "id" in e}


def _single_entries(base: Path, images: Any) -> dict[Path, str]:
    """{file: item} for the items that name one file (not a glob or a folder)."""
    items = [images] if isinstance(images, str) else images if isinstance(images, list) else []
    out: dict[Path, str] = {}
    for item in items:
        if not isinstance(item, str) or any(c in item for c in "*?["):
            continue
        try:
            found = _expand(base, item)
        except (OSError, RuntimeError):
            continue
        if len(found) == 1 and not (base / item).expanduser().is_dir():
            out.setdefault(found[0], item)
    return out
