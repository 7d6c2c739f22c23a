"""What a user does with the library (the CLI and the API call these): name faces from the
camera, say "this is not X", undo either, split a face off a group, dismiss a group, regroup.

The gallery YAML stays the source of truth.  Every change to it goes through the
comment-keeping editor (`facewatch.gallery.editing`), under its lock, and is only saved if
the edited gallery still enrols (`GalleryTarget.check`); the running daemon notices the
changed file and reloads it.  Faces are copied beside the gallery:

    <gallery dir>/faces/<person id>/<track id>-<n>.jpg        assigned to the person
    <gallery dir>/faces/<person id>/not/<track id>-<n>.jpg    "not this person"

and listed in the person's `images` or `not` (paths relative to the gallery).  Each edit is
recorded in the library with the file and the entry, which is what `undo` removes again.
"""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from facewatch.errors import BadInputError, GalleryError
from facewatch.gallery.editing import (
    Change,
    add_person_images,
    edit_gallery,
    remove_person,
    remove_person_image,
    rename_person,
)
from facewatch.gallery.photos import UPLOAD_PREFIX, person_folder
from facewatch.gallery.spec import ID_PATTERN
from facewatch.ownership import Ownership, make_folders
from facewatch.images import load_image
from facewatch.library.clusters import REGROUP_MAX, ClusterSettings, regroup_labels
from facewatch.library.sqlite_store import encode_jpeg
from facewatch.library.store import Action, Face, FaceQuery, LibraryStore

# The stored crop is the aligned 112x112 face.  The detector finds a face reliably only with
# some margin around it, so the copy made for the gallery gets a border (edge pixels
# repeated): 40 of 40 LFW crops enrol with 16 px, 39 of 40 without.
ENROL_BORDER = 16
ENROL_JPEG_QUALITY = 95
# A group assigned to a person contributes its best faces, not all of them: a gallery of
# hundreds of near-identical frames makes every reload slower and names no better.
MAX_PHOTOS_PER_GROUP = 5


@dataclass(frozen=True)
class GalleryTarget:
    """The gallery YAML to edit, and the check that an edited copy still enrols (raises
    `GalleryError` naming the problem), e.g. `Gallery.open(tmp, pipeline, state_dir=...)`."""

    path: Path
    check: Callable[[Path], None]


@dataclass(frozen=True)
class EditResult:
    actions: tuple[Action, ...]
    person_id: str
    created_person: bool


def check_person_id(person_id: str) -> str:
    if not isinstance(person_id, str) or not re.fullmatch(ID_PATTERN, person_id):
        raise BadInputError(f"person id {person_id!r}: letters, digits and _ . @ - only, "
                            f"starting with a letter or digit, at most 128 characters")
    return person_id


def check_name(name: str) -> str:
    """A display name: one line of printable text."""
    if (not isinstance(name, str) or not name.strip() or len(name) > 200
            or any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name)):
        raise BadInputError("name: one line of at most 200 characters")
    return name


def assign(store: LibraryStore, gallery: GalleryTarget, face_ids: Sequence[int], person_id: str,
           name: str | None = None, cluster_id: int | None = None) -> EditResult:
    """Enrol these faces as `person_id` (created, with `name`, if not in the gallery yet)."""
    check_person_id(person_id)
    if name is not None:
        check_name(name)
    faces = _faces(store, face_ids)
    folder = gallery.path.parent / "faces" / person_id
    copies = [_copy_crop(face, folder) for face in faces]
    entries = [_entry(gallery.path, c) for c in copies]
    created: list[bool] = []

    def change(data: dict[str, Any], _text: str) -> None:
        entry = _person(data, person_id)
        created.append(entry is None)
        if entry is None:
            new: dict[str, Any] = {"id": person_id}
            if name:
                new["name"] = name
            new["images"] = list(entries)
            data["people"].append(new)
            return
        images = entry.get("images")
        if isinstance(images, list):
            images.extend(e for e in entries if e not in images)
        elif isinstance(images, str):
            entry["images"] = [images, *entries]
        else:
            entry["images"] = list(entries)
        if name:
            entry["name"] = name

    _edit(gallery, change, copies)
    actions = tuple(store.add_action("assign", f.id, person_id, gallery.path, c, e, created[-1])
                    for f, c, e in zip(faces, copies, entries))
    store.set_assigned([f.id for f in faces], person_id)
    if cluster_id is not None:
        store.set_cluster_state(cluster_id, assigned_to=person_id)
    return EditResult(actions, person_id, created[-1])


def assign_cluster(store: LibraryStore, gallery: GalleryTarget, cluster_id: int, person_id: str,
                   name: str | None = None, max_photos: int = MAX_PHOTOS_PER_GROUP) -> EditResult:
    """Enrol a group as `person_id`: its best `max_photos` faces are copied into the gallery,
    and every face of the group is marked as that person in the library."""
    store.cluster(cluster_id)  # NotFoundError for an unknown group
    members = store.faces(FaceQuery(cluster_id=cluster_id, limit=1_000_000))
    best = sorted(members, key=lambda f: (-f.quality, -f.last_ts))[:max(1, max_photos)]
    result = assign(store, gallery, [f.id for f in best], person_id, name, cluster_id=cluster_id)
    store.set_assigned([f.id for f in members], person_id)
    return result


def mark_not(store: LibraryStore, gallery: GalleryTarget, face_ids: Sequence[int],
             person_id: str) -> EditResult:
    """Record that these faces are not `person_id` (who must be in the gallery): the matcher
    then does not name a face X when it is closer to X's `not` examples than to X's own."""
    check_person_id(person_id)
    faces = _faces(store, face_ids)
    folder = gallery.path.parent / "faces" / person_id / "not"
    copies = [_copy_crop(face, folder) for face in faces]
    entries = [_entry(gallery.path, c) for c in copies]

    def change(data: dict[str, Any], _text: str) -> None:
        entry = _person(data, person_id)
        if entry is None:
            raise GalleryError(f"{gallery.path}: no person with id {person_id!r} in the gallery")
        current = entry.get("not")
        if isinstance(current, list):
            current.extend(e for e in entries if e not in current)
        elif isinstance(current, str):
            entry["not"] = [current, *entries]
        else:
            entry["not"] = list(entries)

    _edit(gallery, change, copies)
    actions = tuple(store.add_action("not", f.id, person_id, gallery.path, c, e, False)
                    for f, c, e in zip(faces, copies, entries))
    return EditResult(actions, person_id, False)


def undo(store: LibraryStore, gallery: GalleryTarget, action_id: int) -> Action:
    """Take back one assign or "not" edit: its entry leaves the YAML and its file is deleted.
    A person created by an assignment and left with no photo is removed with it."""
    action = store.action(action_id)
    if action.undone:
        raise BadInputError(f"edit {action_id}: already undone")
    if action.gallery.resolve() != gallery.path.resolve():
        raise BadInputError(f"edit {action_id}: was made in {action.gallery}, not {gallery.path}")
    key: Literal["images", "not"] = "images" if action.kind == "assign" else "not"

    def change(data: dict[str, Any], _text: str) -> None:
        people = data["people"]
        for i, entry in enumerate(people):
            if not isinstance(entry, dict) or entry.get("id") != action.person_id:
                continue
            items = entry.get(key)
            if isinstance(items, str):
                items = [items]
                entry[key] = items
            if not isinstance(items, list) or action.entry not in items:
                return  # already removed by hand: nothing to change in the YAML
            items.remove(action.entry)
            if not items:
                if key == "not":
                    del entry["not"]
                else:
                    del people[i]  # a person with no photo cannot enrol
            return

    edit_gallery(gallery.path, change, gallery.check)
    _remove_file(action.image)
    store.mark_undone(action.id)
    if action.kind == "assign":
        still = [a for a in store.actions(face_id=action.face_id) if a.kind == "assign"]
        if not still:
            store.set_assigned([action.face_id], None)
            face = store.get(action.face_id)
            if face.cluster_id is not None:
                cluster = store.cluster(face.cluster_id)
                if cluster.assigned_to == action.person_id:
                    members = store.faces(FaceQuery(cluster_id=cluster.id, limit=1_000_000))
                    if not any(store.actions(face_id=m.id) for m in members):
                        store.set_assigned([m.id for m in members], None)
                        store.set_cluster_state(cluster.id, assigned_to="")
    return store.action(action.id)


def split(store: LibraryStore, face_id: int) -> int:
    """Take a face out of its group into a group of its own; returns the new group's id."""
    face = store.get(face_id)
    if face.person_id is not None:
        raise BadInputError(f"face {face_id}: named {face.person_id} by the daemon; only unknown "
                            f"faces are grouped")
    return store.join_cluster(face_id, None)


def dismiss(store: LibraryStore, cluster_id: int, dismissed: bool = True) -> None:
    """Hide a group from the review (a face on a poster, a TV presenter); unknown faces that
    resemble it keep joining it and stay hidden.  `dismissed=False` brings it back."""
    store.set_cluster_state(cluster_id, dismissed=dismissed)


@dataclass(frozen=True)
class RegroupResult:
    faces: int
    groups: int
    left_alone: int  # older faces beyond REGROUP_MAX, kept in their groups


def regroup(store: LibraryStore, embedder: str, settings: ClusterSettings) -> RegroupResult:
    """Regroup the newest REGROUP_MAX unknown, unassigned faces of `embedder` from scratch
    (average linkage); groups keep their id, and so their dismissed state, where most of
    their faces stay together."""
    every = [f for f in store.faces(FaceQuery(unknown=True, limit=2**62))
             if f.embedder == embedder and f.assigned_to is None]
    faces = every[:REGROUP_MAX]  # newest first
    if not faces:
        return RegroupResult(0, 0, 0)
    labels = regroup_labels(store.vectors([f.id for f in faces]), settings.regroup)
    groups: dict[int, list[int]] = {}
    for face, label in zip(faces, labels):
        groups.setdefault(int(label), []).append(face.id)
    ids = store.regroup(embedder, list(groups.values()))
    return RegroupResult(len(faces), len(ids), len(every) - len(faces))


# ---------------------------------------------------------------------------- people

def add_photos(gallery: GalleryTarget, person_id: str, photos: Sequence[np.ndarray],
               name: str | None = None, *, new: bool = False) -> list[str]:
    """Enrol photos (RGB images, e.g. uploads) as `person_id`: each is saved as
    `faces/<id>/upload-<n>.jpg` and listed in the person's `images`.  `new`: the person must
    not exist yet (and is created); otherwise they must."""
    check_person_id(person_id)
    if name is not None:
        check_name(name)
    if not photos:
        raise BadInputError("photos: give at least one photo")
    folder = person_folder(gallery.path, person_id)
    copies = [_write_new(folder, UPLOAD_PREFIX, encode_jpeg(p, ENROL_JPEG_QUALITY)) for p in photos]
    entries = [_entry(gallery.path, c) for c in copies]
    add = add_person_images(person_id, name, entries)

    def change(data: dict[str, Any], text: str) -> str | None:
        exists = _person(data, person_id) is not None
        if new and exists:
            raise BadInputError(f"person {person_id!r} already exists; add photos to them "
                                f"instead")
        if not new and not exists:
            raise GalleryError(f"no person with id {person_id!r} in the gallery")
        return add(data, text)

    _edit(gallery, change, copies)
    return entries


def rename(gallery: GalleryTarget, person_id: str, name: str) -> None:
    check_person_id(person_id)
    edit_gallery(gallery.path, rename_person(person_id, check_name(name)), gallery.check)


def remove_photo(store: LibraryStore | None, gallery: GalleryTarget, person_id: str,
                 entry: str) -> None:
    """Take one photo (its `images` item) away from a person.  One named from the library is
    undone as `undo` does (the face shows up for review again); a copy facewatch made is
    deleted; a photo of the user's own stays on disk."""
    check_person_id(person_id)
    from facewatch.gallery.photos import find_person

    person = find_person(gallery.path, person_id)
    if person is not None and len(person.photos) <= 1:
        raise GalleryError(f"{entry!r} is {person_id!r}'s only photo; delete the person instead")
    if store is not None:
        action = next((a for a in store.actions(limit=1_000_000)
                       if a.kind == "assign" and a.person_id == person_id and a.entry == entry
                       and a.gallery.resolve() == gallery.path.resolve()), None)
        if action is not None:
            undo(store, gallery, action.id)
            return
    edit_gallery(gallery.path, remove_person_image(person_id, entry), gallery.check)
    path = gallery.path.parent / entry
    if path.resolve().parent == person_folder(gallery.path, person_id).resolve():
        _remove_file(path)


def delete_person(store: LibraryStore | None, gallery: GalleryTarget, person_id: str) -> None:
    """Remove a person from the gallery, with the copies facewatch made for them
    (`faces/<id>/`, "not" examples included); faces named as them from the library are
    unnamed again.  Photos of the user's own, listed by hand, stay on disk."""
    check_person_id(person_id)
    edit_gallery(gallery.path, remove_person(person_id), gallery.check)
    folder = person_folder(gallery.path, person_id)
    if folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder, ignore_errors=True)
    if store is None:
        return
    for action in store.actions(limit=1_000_000):
        if action.person_id == person_id and action.gallery.resolve() == gallery.path.resolve():
            store.mark_undone(action.id)
    named = store.get_many(store.face_ids(FaceQuery(person_id=person_id)))
    store.set_assigned([f.id for f in named.values() if f.assigned_to == person_id], None)
    for cluster in store.clusters(include_dismissed=True, include_assigned=True):
        if cluster.assigned_to == person_id:
            store.set_cluster_state(cluster.id, assigned_to="")


# ---------------------------------------------------------------------------- helpers

def _faces(store: LibraryStore, face_ids: Sequence[int]) -> list[Face]:
    if not face_ids:
        raise BadInputError("name at least one face")
    seen: list[int] = []
    for f in face_ids:
        if int(f) not in seen:
            seen.append(int(f))
    return [store.get(f) for f in seen]


def _person(data: dict[str, Any], person_id: str) -> Any:
    return next((e for e in data["people"] if isinstance(e, dict) and e.get("id") == person_id),
                None)


def _entry(gallery: Path, image: Path) -> str:
    return image.relative_to(gallery.parent).as_posix()


def _copy_crop(face: Face, folder: Path) -> Path:
    """A new file `<folder>/<track id>-<n>.jpg` holding the face with a border."""
    try:
        crop = load_image(face.crop)
    except BadInputError:
        raise BadInputError(f"face {face.id}: its image {face.crop} is missing or unreadable") from None
    padded = cv2.copyMakeBorder(crop, ENROL_BORDER, ENROL_BORDER, ENROL_BORDER, ENROL_BORDER,
                                cv2.BORDER_REPLICATE)
    data = encode_jpeg(np.ascontiguousarray(padded), ENROL_JPEG_QUALITY)
    return _write_new(folder, f"{face.track_id}-", data)


def _write_new(folder: Path, prefix: str, data: bytes) -> Path:
    """A new file `<folder>/<prefix><n>.jpg` (n: the first free number, claimed atomically
    so that two edits at once never write the same file)."""
    try:
        # with sudo into the service's gallery folder: the service's folders and files
        # (facewatch.ownership), so that the daemon can read what it is to enrol
        make_folders(folder)
        for n in range(1, 10_000):
            path = folder / f"{prefix}{n}.jpg"
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                continue
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            Ownership.for_new_file_in(folder).apply(path)
            return path
    except OSError as exc:
        raise GalleryError(f"{folder}: cannot copy the face there ({exc.strerror})") from None
    raise GalleryError(f"{folder}: too many files named {prefix}<n>.jpg")


def _edit(gallery: GalleryTarget, change: Change, copies: list[Path]) -> None:
    try:
        edit_gallery(gallery.path, change, gallery.check)
    except BaseException:
        for path in copies:
            _remove_file(path)
        raise


def _remove_file(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass
