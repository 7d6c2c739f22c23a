"""Faces of the library: recent faces with filters and paging, one face with its edits, its
crop and snapshot (served by id), and the edits that name faces: assign, not, split, undo.

The same calls as `facewatch faces list|show|assign|not|split|undo`: the library's operations
edit the gallery through the comment-keeping editor, under its lock, and only save a gallery
that still enrols; the inference process is then asked to reload it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import FileResponse

from facewatch.api.routes.common import (
    EditId,
    FaceId,
    TrackId,
    edit_out,
    face_out,
    parse_when,
    person_id,
    services,
)
from facewatch.api.schemas import (
    MAX_ID,
    AssignIn,
    EditOut,
    EditResultOut,
    FaceDetail,
    FacePage,
    FaceOut,
    NotIn,
    SplitOut,
    UndoOut,
)
from facewatch.api.services import check_camera
from facewatch.library.store import FaceQuery

if TYPE_CHECKING:  # the operations bring OpenCV: imported when an edit is made
    from facewatch.library.operations import EditResult

router = APIRouter(tags=["faces"])


def edit_result(result: EditResult) -> EditResultOut:
    return EditResultOut(person_id=result.person_id, created_person=result.created_person,
                         edits=[edit_out(a) for a in result.actions])


@router.get("/faces", response_model=FacePage, summary="Recent faces, newest first")
def list_faces(request: Request,
               camera: Annotated[str | None, Query(max_length=64)] = None,
               person: Annotated[str | None, Query(max_length=200,
                                                   description="named or assigned as")] = None,
               unknown: Annotated[bool | None, Query(
                   description="true: only unknown faces; false: only named ones")] = None,
               since: Annotated[str | None, Query(max_length=64,
                                                  description="2h, 3d, 2025-06-01T18:00 ...")] = None,
               until: Annotated[str | None, Query(max_length=64)] = None,
               group: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
               limit: Annotated[int, Query(ge=1, le=500)] = 50,
               offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0) -> FacePage:
    query = FaceQuery(camera=check_camera(camera),
                      person_id=person_id(person) if person is not None else None,
                      unknown=unknown, since=parse_when(since, "since"),
                      until=parse_when(until, "until"), cluster_id=group, limit=limit,
                      offset=offset)
    store = services(request).store()
    faces = store.faces(query)
    return FacePage(faces=[face_out(f) for f in faces], total=store.count(query),
                    offset=offset, limit=limit)


@router.get("/faces/{face_id}", response_model=FaceDetail, summary="One face, with its edits")
def show_face(request: Request, face_id: FaceId) -> FaceDetail:
    store = services(request).store()
    face = store.get(face_id)
    edits = store.actions(face_id=face.id, include_undone=True)
    segments = [face_out(f) for f in store.by_track(face.track_id)
                if f.id != face.id and f.camera == face.camera]
    return FaceDetail(**face_out(face).model_dump(), edits=[edit_out(a) for a in edits],
                      segments=segments)


@router.get("/tracks/{track_id}", response_model=list[FaceOut],
            summary="The stored faces of a track id (as in the events), newest first")
def track_faces(request: Request, track_id: TrackId) -> list[FaceOut]:
    from facewatch.library.store import NotFoundError

    found = services(request).store().by_track(track_id)
    if not found:
        raise NotFoundError(f"track {track_id}: not in the library (yet: a track is stored "
                            f"when it ends)")
    return [face_out(f) for f in found]


def _image(request: Request, face_id: int, kind: str) -> FileResponse:
    from facewatch.library.store import NotFoundError

    store = services(request).store()
    face = store.get(face_id)
    path: Path | None = face.crop if kind == "crop" else face.snapshot
    if path is None:
        raise NotFoundError(f"face {face_id}: has no {kind}")
    root = Path(store.directory).resolve()
    resolved = path.resolve()
    if not resolved.is_relative_to(root) or not resolved.is_file():
        raise NotFoundError(f"face {face_id}: its {kind} is gone")
    return FileResponse(resolved, media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=86400"})


@router.get("/faces/{face_id}/crop", response_class=FileResponse,
            summary="The face's best aligned crop (JPEG)")
def face_crop(request: Request, face_id: FaceId) -> FileResponse:
    return _image(request, face_id, "crop")


@router.get("/faces/{face_id}/snapshot", response_class=FileResponse,
            summary="The face in its surroundings (JPEG)")
def face_snapshot(request: Request, face_id: FaceId) -> FileResponse:
    return _image(request, face_id, "snapshot")


@router.post("/faces/assign", response_model=EditResultOut,
             summary="Enrol faces as a person (created if new)")
def assign_faces(request: Request, body: AssignIn) -> EditResultOut:
    from facewatch.library import operations

    svc = services(request)
    store = svc.store()
    for f in body.faces:
        store.get(f)  # an unknown id is a 404 before the models are loaded
    result = operations.assign(store, svc.target(), body.faces, person_id(body.person),
                               body.name)
    svc.reload()
    return edit_result(result)


@router.post("/faces/not", response_model=EditResultOut,
             summary="Record that faces are not this person (the person's not: list)")
def not_person(request: Request, body: NotIn) -> EditResultOut:
    from facewatch.library import operations

    svc = services(request)
    store = svc.store()
    for f in body.faces:
        store.get(f)
    result = operations.mark_not(store, svc.target(), body.faces, person_id(body.person))
    svc.reload()
    return edit_result(result)


@router.post("/faces/{face_id}/split", response_model=SplitOut,
             summary="Take a face out of its group into a group of its own")
def split_face(request: Request, face_id: FaceId) -> SplitOut:
    from facewatch.library import operations

    group = operations.split(services(request).store(), face_id)
    return SplitOut(face=face_id, group=group)


@router.get("/edits", response_model=list[EditOut], summary="Recent gallery edits, newest first")
def list_edits(request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 50,
               undone: bool = False) -> list[EditOut]:
    store = services(request).store()
    return [edit_out(a) for a in store.actions(include_undone=undone, limit=limit)]


@router.post("/edits/{edit_id}/undo", response_model=UndoOut,
             summary="Take back an assign or not: its entry leaves the YAML, its file goes")
def undo_edit(request: Request, edit_id: EditId) -> UndoOut:
    from facewatch.library import operations

    svc = services(request)
    store = svc.store()
    action = store.action(edit_id)
    if action.undone:
        raise HTTPException(status.HTTP_409_CONFLICT, f"edit {edit_id}: already undone")
    if action.gallery.resolve() != svc.gallery_path.resolve():
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"edit {edit_id}: was made in another gallery ({action.gallery})")
    done = operations.undo(store, svc.target(), edit_id)
    svc.reload()
    return UndoOut(id=done.id, kind=done.kind, person_id=done.person_id, removed=done.entry,
                   undone=done.undone)
