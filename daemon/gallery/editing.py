"""`gallery add|remove`: edit the YAML in place, keeping the user's comments and layout.

An edit is written to a temporary file beside the gallery, enrolled from there, and only
swapped in if enrolment succeeds, so a bad photo never leaves a broken gallery behind.  A
gallery that does not exist yet is created, with its folder; the file keeps the owner and mode
of the one it replaces, or takes its folder's (`facewatch.ownership`), so an edit made with
sudo for the service leaves a gallery the service can still read.
"""

from __future__ import annotations

import fcntl
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from facewatch.errors import GalleryError
from facewatch.ownership import Ownership, make_folders
from facewatch.yamlfile import MAX_YAML_BYTES, parse_yaml, read_small_text
from facewatch.yamllines import cut_items, end_of_block


def _yaml() -> YAML:
    y = YAML()  # round-trip mode keeps comments, key order and quoting
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 4096  # never re-wrap the user's lines
    return y


# An edit either changes the round-trip data in place (returns None) or, where ruamel's comment
# handling would lose something, returns the new text itself.
Change = Callable[[dict[str, Any], str], "str | None"]


@contextmanager
def gallery_lock(path: Path) -> Iterator[None]:
    """Exclusive across processes (the CLI, the daemon's API) for one read-modify-write of the
    gallery: two edits at once both land, one after the other, instead of one overwriting the
    other.  The lock is taken on the gallery's folder (flock works on a directory), not on the
    file, which each edit replaces, and leaves nothing behind."""
    try:
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise GalleryError(f"{path}: cannot lock it for editing ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def edit_gallery(path: Path, change: Change, commit_if: Callable[[Path], None]) -> None:
    """Apply `change` to the YAML; `commit_if(tmp)` must succeed (e.g. enrol) before the swap."""
    if path.is_dir():
        raise GalleryError(f"{path}: a folder-per-person gallery is edited by adding or removing "
                           f"folders; `gallery add|remove` edit YAML galleries")
    if not path.parent.is_dir():
        try:
            make_folders(path.parent)
        except OSError as exc:
            raise GalleryError(f"{path.parent}: cannot create the gallery's folder "
                               f"({exc.strerror or exc})") from None
    with gallery_lock(path):
        _edit(path, change, commit_if)


def _edit(path: Path, change: Change, commit_if: Callable[[Path], None]) -> None:
    y = _yaml()
    try:
        text = read_small_text(path, MAX_YAML_BYTES, "a YAML file") if path.exists() else ""
    except ValueError as exc:
        raise GalleryError(str(exc)) from None
    # The same reader as the gallery's loader first: its one-line errors, with the line, for
    # what the round-trip parser would fail on (or, nested deep, crash in).
    parse_yaml(text, path, GalleryError)
    try:
        data = y.load(text) if text else None
    except (YAMLError, RecursionError) as exc:
        raise GalleryError(" ".join(f"{path}: cannot edit ({exc})".split())) from None
    if data is None:
        data = y.load("people: []\n")
    if not isinstance(data, dict):
        raise GalleryError(f"{path}: expected a mapping with `people:` at the top level")
    if data.get("people") is None:  # absent, or `people:` with nothing under it yet
        data["people"] = []
    if not isinstance(data["people"], list):
        raise GalleryError(f"{path}: `people:` must be a list of people")
    new_text = change(data, text)
    if new_text is None:
        buf = io.StringIO()
        y.dump(data, buf)
        new_text = buf.getvalue()
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".yaml")
    except OSError as exc:
        raise GalleryError(f"{path}: cannot write in {path.parent} ({exc.strerror or exc}); "
                           f"run as the gallery's owner, or with sudo") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new_text)
        try:
            commit_if(Path(tmp))
        except GalleryError as exc:
            # report against the user's file, not our temporary copy
            raise GalleryError(str(exc).replace(tmp, str(path))) from None
        owner = Ownership.of(path) if path.exists() else Ownership.for_new_file_in(path.parent)
        owner.apply(Path(tmp))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def relative_to_gallery(gallery: Path, image: Path) -> str:
    """Image path as the YAML should hold it: relative when under the gallery's folder, so the
    gallery can be moved as a whole; absolute otherwise.  Symbolic links are kept as the user
    wrote them (only `..` and `.` are folded), so a gallery reached through a link keeps
    working when the link is pointed elsewhere."""
    absolute = Path(os.path.abspath(image))
    try:
        return str(absolute.relative_to(os.path.abspath(gallery.parent)))
    except ValueError:
        return str(absolute)


def add_person_images(person_id: str, name: str | None, images: list[str]) -> Change:
    def change(data: dict[str, Any], _text: str) -> None:
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


def remove_person(person_id: str) -> Change:
    """Remove a person by deleting their lines from the text.

    ruamel files the comment lines written above an entry under the end of the entry before
    it, so deleting entries through it deletes the next person's comments.  Working on lines
    keeps everything else byte for byte: the comment lines directly above the next entry (or
    the next top-level key) stay with it.
    """

    def change(data: dict[str, Any], text: str) -> str:
        people = data["people"]
        found = [i for i, e in enumerate(people) if isinstance(e, dict) and e.get("id") == person_id]
        if not found:
            raise GalleryError(f"no person with id {person_id!r} in the gallery")
        if not hasattr(people, "lc") or people.fa.flow_style():
            # `people: [{...}, {...}]` on one line: no per-entry lines to cut
            for i in reversed(found):
                del people[i]
            return None  # type: ignore[return-value]
        lines = text.splitlines(keepends=True)
        starts = [people.lc.item(i)[0] for i in range(len(people))]
        kept = cut_items(lines, starts, found, end_of_block(lines, data, "people"))
        if len(found) == len(people):  # nobody left: keep the file valid
            at = people.lc.line if hasattr(people, "lc") else 0
            key_line = max(n for n in range(at + 1) if lines[n].lstrip().startswith("people"))
            kept[key_line] = "people: []\n"  # every cut line is below it
        return "".join(kept)

    return change


def rename_person(person_id: str, name: str) -> Change:
    """Set a person's display name (their id, sent in events, stays)."""

    def change(data: dict[str, Any], _text: str) -> None:
        entry = _find(data, person_id)
        entry["name"] = name

    return change


def remove_person_image(person_id: str, image: str) -> Change:
    """Take one item out of a person's `images`; a person's only photo cannot go (delete the
    person instead: nobody can be enrolled without a photo)."""

    def change(data: dict[str, Any], _text: str) -> None:
        entry = _find(data, person_id)
        images = entry.get("images")
        items = [images] if isinstance(images, str) else images
        if not isinstance(items, list) or image not in items:
            raise GalleryError(f"{image!r} is not listed in {person_id!r}'s images")
        if len(items) == 1:
            raise GalleryError(f"{image!r} is {person_id!r}'s only photo; delete the person "
                               f"instead")
        items.remove(image)  # in place: the other items keep their comments

    return change


def _find(data: dict[str, Any], person_id: str) -> Any:
    for entry in data["people"]:
        if isinstance(entry, dict) and entry.get("id") == person_id:
            return entry
    raise GalleryError(f"no person with id {person_id!r} in the gallery")
