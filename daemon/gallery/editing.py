"""`gallery add|remove`: edit the YAML in place, keeping the user's comments and layout.

An edit is written to a temporary file beside the gallery, enrolled from there, and only
swapped in if enrolment succeeds, so a bad photo never leaves a broken gallery behind.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from facewatch.errors import GalleryError


def _yaml() -> YAML:
    y = YAML()  # round-trip mode keeps comments, key order and quoting
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 4096  # never re-wrap the user's lines
    return y


def edit_gallery(path: Path, change: Callable[[dict[str, Any]], None],
                 commit_if: Callable[[Path], None]) -> None:
    """Apply `change` to the YAML; `commit_if(tmp)` must succeed (e.g. enrol) before the swap."""
    if path.is_dir():
        raise GalleryError(f"{path}: a folder-per-person gallery is edited by adding or removing "
                           f"folders; `gallery add|remove` edit YAML galleries")
    y = _yaml()
    try:
        data = y.load(path.read_text(encoding="utf-8")) if path.exists() else None
    except (OSError, UnicodeDecodeError, YAMLError) as exc:
        raise GalleryError(f"{path}: cannot edit ({exc})") from None
    if data is None:
        data = y.load("people: []\n")
    if not isinstance(data, dict):
        raise GalleryError(f"{path}: expected a mapping with `people:` at the top level")
    if data.get("people") is None:  # absent, or `people:` with nothing under it yet
        data["people"] = []
    if not isinstance(data["people"], list):
        raise GalleryError(f"{path}: `people:` must be a list of people")
    change(data)
    buf = io.StringIO()
    y.dump(data, buf)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".yaml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(buf.getvalue())
        try:
            commit_if(Path(tmp))
        except GalleryError as exc:
            # report against the user's file, not our temporary copy
            raise GalleryError(str(exc).replace(tmp, str(path))) from None
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def relative_to_gallery(gallery: Path, image: Path) -> str:
    """Image path as the YAML should hold it: relative when under the gallery's folder, so the
    gallery can be moved as a whole; absolute otherwise."""
    resolved = image.resolve()
    try:
        return str(resolved.relative_to(gallery.resolve().parent))
    except ValueError:
        return str(resolved)


def add_person_images(person_id: str, name: str | None, images: list[str]
                      ) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        people = data["people"]
        for entry in people:
            if isinstance(entry, dict) and entry.get("id") == person_id:
                current = entry.get("images", [])
                if isinstance(current, list):
                    # extend the round-trip sequence in place: replacing it would drop the
                    # comments the user wrote beside its items
                    current.extend(i for i in images if i not in current)
                elif isinstance(current, str):
                    entry["images"] = [current] + [i for i in images if i != current]
                else:
                    entry["images"] = list(images)
                if name:
                    entry["name"] = name
                return
        new: dict[str, Any] = {"id": person_id}
        if name:
            new["name"] = name
        new["images"] = images
        people.append(new)

    return change


def remove_person(person_id: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        people = data["people"]
        found = [i for i, e in enumerate(people) if isinstance(e, dict) and e.get("id") == person_id]
        if not found:
            raise GalleryError(f"no person with id {person_id!r} in the gallery")
        # delete item by item: the round-trip sequence then moves the comments of the
        # entries after it along, where a slice assignment would drop them
        for i in reversed(found):
            del people[i]

    return change
