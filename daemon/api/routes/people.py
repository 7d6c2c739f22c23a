"""People of the gallery: list them with their photos, create one with photos, rename, delete,
add photos by upload, remove one.

Every change goes through the comment-keeping gallery editor under its lock and is saved only
if the edited gallery still enrols (a photo without exactly one clear face is refused with the
reason, and nothing changes); the inference process is then asked to reload.  Uploaded photos
are saved, re-encoded as JPEG without their metadata, as `<gallery dir>/faces/<id>/upload-<n>.jpg`.
Photos are served by the person's id and the photo's id, never by a path.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response

from facewatch.api.routes.common import PersonId, PhotoId, person_id, services
from facewatch.api.schemas import PeopleOut, PersonOut, PhotoOut, PhotosAddedOut, RenameIn
from facewatch.api.uploads import read_images
from facewatch.gallery.photos import PersonPhotos, people_photos
from facewatch.library.store import NotFoundError

router = APIRouter(tags=["people"])
_THUMB_JPEG_QUALITY = 85


def _person_out(p: PersonPhotos) -> PersonOut:
    return PersonOut(id=p.id, name=p.name, metadata=p.metadata, not_entries=p.not_entries,
                     photos=[PhotoOut(id=ph.id, url=f"/api/people/{p.id}/photos/{ph.id}",
                                      source=ph.source, removable=ph.entry is not None)
                             for ph in p.photos])


def _find(request: Request, pid: str) -> PersonPhotos:
    person = next((p for p in people_photos(services(request).gallery_path) if p.id == pid), None)
    if person is None:
        raise NotFoundError(f"person {pid!r}: not in the gallery")
    return person


@router.get("/people", response_model=PeopleOut, summary="Everyone in the gallery, with photos")
def list_people(request: Request) -> PeopleOut:
    path = services(request).gallery_path
    if not path.exists():
        return PeopleOut(people=[], editable=True)  # an empty gallery is a normal start
    return PeopleOut(people=[_person_out(p) for p in people_photos(path)],
                     editable=not path.is_dir())


@router.get("/people/{pid}", response_model=PersonOut, summary="One person, with photos")
def show_person(request: Request, pid: PersonId) -> PersonOut:
    return _person_out(_find(request, person_id(pid)))


@router.post("/people", response_model=PhotosAddedOut, status_code=201,
             summary="Create a person from uploaded photos (each must show one clear face)")
async def create_person(request: Request,
                        id: Annotated[str, Form(max_length=200, description="the new id")],
                        photos: Annotated[list[UploadFile], File(description="photos of them")],
                        name: Annotated[str | None, Form(max_length=400)] = None
                        ) -> PhotosAddedOut:
    return await _add(request, id, photos, name, new=True)


@router.post("/people/{pid}/photos", response_model=PhotosAddedOut,
             summary="Add uploaded photos to a person")
async def add_photos(request: Request, pid: PersonId,
                     photos: Annotated[list[UploadFile], File()]) -> PhotosAddedOut:
    return await _add(request, pid, photos, None, new=False)


async def _add(request: Request, pid: str, photos: list[UploadFile], name: str | None,
               new: bool) -> PhotosAddedOut:
    from facewatch.library import operations

    svc = services(request)
    pid = person_id(pid)
    if name is not None:
        operations.check_name(name)
    if not new:
        await run_in_threadpool(_find, request, pid)
    images = await read_images(photos, _max_bytes(request))

    def edit() -> PhotosAddedOut:
        entries = operations.add_photos(svc.target(), pid, images, name or None, new=new)
        svc.reload()
        return PhotosAddedOut(person=_person_out(_find(request, pid)), added=entries)

    return await run_in_threadpool(edit)


@router.patch("/people/{pid}", response_model=PersonOut, summary="Rename a person (the id stays)")
def rename_person(request: Request, pid: PersonId, body: RenameIn) -> PersonOut:
    from facewatch.library import operations

    svc = services(request)
    pid = person_id(pid)
    _find(request, pid)
    operations.check_name(body.name)
    operations.rename(svc.target(), pid, body.name)
    svc.reload()
    return _person_out(_find(request, pid))


@router.delete("/people/{pid}", status_code=204,
               summary="Delete a person (and the copies facewatch made for them)")
def delete_person(request: Request, pid: PersonId) -> Response:
    from facewatch.library import operations

    svc = services(request)
    pid = person_id(pid)
    _find(request, pid)
    operations.delete_person(svc.store_if_enabled(), svc.target(), pid)
    svc.reload()
    return Response(status_code=204)


@router.get("/people/{pid}/photos/{photo}", response_class=FileResponse,
            summary="One of a person's photos (size=N: a JPEG at most N pixels across)")
def person_photo(request: Request, pid: PersonId, photo: PhotoId,
                 size: Annotated[int | None, Query(ge=16, le=1024)] = None) -> Response:
    found = _photo(request, pid, photo)
    if size is None:
        media = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        return FileResponse(found, media_type=media, headers={"Cache-Control": "private, max-age=3600"})
    return Response(_thumbnail(found, size), media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=3600"})


@router.delete("/people/{pid}/photos/{photo}", response_model=PersonOut,
               summary="Remove one photo from a person (not their only one)")
def remove_photo(request: Request, pid: PersonId, photo: PhotoId) -> PersonOut:
    from facewatch.errors import BadInputError
    from facewatch.library import operations

    svc = services(request)
    pid = person_id(pid)
    person = _find(request, pid)
    chosen = next((p for p in person.photos if p.id == photo), None)
    if chosen is None:
        raise NotFoundError(f"photo {photo!r}: not one of {pid!r}'s photos")
    if chosen.entry is None:
        raise BadInputError(f"photo {photo!r} is listed through a glob or a folder in the YAML; "
                            f"remove the file, or edit the YAML")
    operations.remove_photo(svc.store_if_enabled(), svc.target(), pid, chosen.entry)
    svc.reload()
    return _person_out(_find(request, pid))


def _photo(request: Request, pid: str, photo: str) -> Path:
    person = _find(request, person_id(pid))
    chosen = next((p for p in person.photos if p.id == photo), None)
    if chosen is None:
        raise NotFoundError(f"photo {photo!r}: not one of {pid!r}'s photos")
    return chosen.path


def _thumbnail(path: Path, size: int) -> bytes:
    import cv2
    import numpy as np

    from facewatch.images import load_image
    from facewatch.library.sqlite_store import encode_jpeg

    image = load_image(path)
    h, w = image.shape[:2]
    scale = min(1.0, size / max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
    return encode_jpeg(np.ascontiguousarray(image), _THUMB_JPEG_QUALITY)


def _max_bytes(request: Request) -> int:
    return int(services(request).config.api.max_upload_mb * 1_000_000)
