"""The gallery file: who is enrolled and from which images.

Two layouts are accepted:

- a YAML file (paths relative to it)::

    threshold: 0.36          # optional: cosine similarity needed to name someone
    people:
      - id: ada
        name: Ada Lovelace
        metadata: {team: lab}
        images: [photos/ada1.jpg, "photos/ada/*.jpg", photos/ada_more/]
        not: [faces/not-ada/]  # optional: faces that are NOT Ada (same forms as images)

- a folder with one sub-folder per person (the folder name is the id and, with `_` as spaces,
  the name), as many face datasets are laid out.

A gallery with nobody in it (an empty file, `people: []`, a folder without person folders) is
a gallery: every face is unknown.  For the daemon, so is a gallery file that does not exist
yet (`missing_ok`): the face library collects the faces it sees until someone is named, and
naming the first person creates the file.  Image paths are kept as written, joined to the
gallery's folder: symbolic links are not resolved, so messages show the user's own paths.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from facewatch.errors import GalleryError
from facewatch.identity.threshold import THRESHOLD_MAX, THRESHOLD_MIN
from facewatch.printable import printable
from facewatch.yamlfile import YamlDocument, dotted, load_yaml

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$"


class _PersonEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)

    id: str = Field(pattern=ID_PATTERN, description="stable identifier, sent in events")
    name: str | None = Field(None, description="display name (default: the id)")
    metadata: dict[str, Any] = Field(default_factory=dict, description="free-form, sent in events")
    images: list[str] | str = Field(description="image files, globs or folders")
    not_: list[str] | str = Field(
        default_factory=list, alias="not",
        description="image files, globs or folders of faces that are NOT this person: a face "
                    "closer to these than to the person's own photos is not named them")


class _GalleryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(1, ge=1, le=1)
    threshold: float | None = Field(None, gt=THRESHOLD_MIN, lt=THRESHOLD_MAX)
    people: list[_PersonEntry] = Field(default_factory=list)


@dataclass(frozen=True)
class PersonSpec:
    id: str
    name: str
    metadata: dict[str, Any]
    images: tuple[Path, ...]
    not_images: tuple[Path, ...] = ()  # faces that are not this person (`not:` in the YAML)


@dataclass(frozen=True)
class GallerySpec:
    source: Path  # the YAML file or the folder
    people: tuple[PersonSpec, ...]
    threshold: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_folder(self) -> bool:
        return self.source.is_dir()


def load_gallery_spec(path: Path, missing_ok: bool = False) -> GallerySpec:
    """The gallery in `path`; GalleryError (one line, naming the file and field) if unusable.
    With `missing_ok`, a path where nothing is (not even a dangling link) is an empty gallery."""
    if missing_ok and not os.path.lexists(path):
        return GallerySpec(path, ())
    try:
        return _load(path)
    except OSError as exc:  # a folder that cannot be listed, a name too long for the system
        where = exc.filename if exc.filename is not None else path
        raise GalleryError(f"{_short(str(where))}: {exc.strerror or exc}") from None


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else f"{text[:limit]}..."


def _load(path: Path) -> GallerySpec:
    if path.is_dir():
        return _folder_spec(path)
    doc = load_yaml(path, GalleryError)
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise GalleryError(f"{path}: expected a mapping with `people:` at the top level")
    try:
        parsed = _GalleryFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        # pydantic appends the union branch name ("list[str]"/"str") to the location; drop it.
        loc = tuple(p for p in loc if p not in ("list[str]", "str"))
        message = str(err["msg"])
        if err["type"] == "extra_forbidden" and loc:
            model = _PersonEntry if len(loc) > 1 else _GalleryFile
            keys = (f.alias or name for name, f in model.model_fields.items())
            message = f"unknown key {str(loc[-1])!r} (allowed: {', '.join(sorted(keys))})"
        # A key may hold anything, a newline included: quote what is not a plain word.
        shown = dotted(tuple(p if isinstance(p, int) or re.fullmatch(r"[A-Za-z0-9_-]+", p)
                             else repr(p) for p in loc))
        raise GalleryError(" ".join(f"{doc.where(loc)}: {shown or 'top level'}: {message}".split())) from None
    base = path.parent
    people: list[PersonSpec] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(parsed.people):
        where = doc.where(("people", i))
        if entry.id in seen:
            raise GalleryError(f"{doc.where(('people', i, 'id'))}: people[{i}].id: {entry.id!r} is "
                               f"already used by people[{seen[entry.id]}]")
        seen[entry.id] = i
        patterns = [entry.images] if isinstance(entry.images, str) else entry.images
        if not patterns:
            raise GalleryError(f"{where}: people[{i}].images: list at least one image")
        images = _expand_all(doc, base, i, "images", patterns)
        not_patterns = [entry.not_] if isinstance(entry.not_, str) else entry.not_
        not_images = _expand_all(doc, base, i, "not", not_patterns)
        both = next((p for p in not_images if p in images), None)
        if both is not None:
            raise GalleryError(f"{doc.where(('people', i, 'not'))}: people[{i}].not: {both} is "
                               f"also one of {entry.id!r}'s images; a face cannot be both")
        people.append(PersonSpec(entry.id, entry.name or entry.id, entry.metadata, tuple(images),
                                 tuple(not_images)))
    return GallerySpec(path, tuple(people), parsed.threshold)


def _expand_all(doc: YamlDocument, base: Path, i: int, key: str, patterns: list[str]) -> list[Path]:
    """The images of people[i].<key>, in order, each once; GalleryError naming the entry."""
    images: list[Path] = []
    for j, pattern in enumerate(patterns):
        at = f"{doc.where(('people', i, key, j))}: people[{i}].{key}[{j}]"
        try:
            found = _expand(base, pattern)
        except (OSError, RuntimeError) as exc:  # ENAMETOOLONG, ~nosuchuser, EACCES
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise GalleryError(f"{at}: {_short(repr(pattern))} is not a usable path "
                               f"({reason})") from None
        if not found:
            raise GalleryError(f"{at}: {_short(repr(pattern))} matches no image "
                               f"(paths are relative to {base})")
        images.extend(p for p in found if p not in images)
    return images


def _expand(base: Path, pattern: str) -> list[Path]:
    p = Path(pattern).expanduser()
    p = p if p.is_absolute() else base / p
    if glob.has_magic(str(p)):
        return sorted(Path(m) for m in glob.glob(str(p))
                      if Path(m).is_file() and Path(m).suffix.lower() in IMAGE_SUFFIXES)
    if p.is_dir():
        return _images_in(p)
    return [p] if p.is_file() else []


def _images_in(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir()
                  if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def _folder_spec(root: Path) -> GallerySpec:
    people = []
    for sub in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        # fullmatch: re.match's `$` also matches before a trailing newline ("ada\n")
        if not re.fullmatch(ID_PATTERN, sub.name):
            raise GalleryError(f"{printable(str(sub))}: folder name is not usable as a person id "
                               f"(letters, digits, _ . @ - only)")
        images = _images_in(sub)
        if images:
            people.append(PersonSpec(sub.name, sub.name.replace("_", " "), {}, tuple(images)))
    return GallerySpec(root, tuple(people))
