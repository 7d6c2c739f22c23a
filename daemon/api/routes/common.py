"""What the route modules share: the services, ids checked at the edge, faces as JSON."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path as PathParam
from fastapi import Request

from facewatch.api.schemas import MAX_ID, EditOut, FaceOut
from facewatch.api.services import Services
from facewatch.library.store import Action, Face

FaceId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="a face of the library")]
ClusterId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="a group of unknown faces")]
EditId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="a gallery edit (see /api/edits)")]
TrackId = Annotated[int, PathParam(ge=0, le=MAX_ID, description="a track id, as in the events")]
PersonId = Annotated[str, PathParam(max_length=200, description="a person's id in the gallery")]
PhotoId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{16}$", description="a photo's id")]


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def person_id(value: str) -> str:
    """A person id as the gallery allows them: no path separators, dots first, wildcards, MQTT
    topic characters, NUL or line breaks can reach a file name or a topic."""
    from facewatch.library.operations import check_person_id

    return check_person_id(value)


def face_out(face: Face) -> FaceOut:
    from facewatch.library.cli_support import face_dict

    doc: dict[str, Any] = face_dict(face)
    doc.pop("crop")
    doc.pop("snapshot")
    return FaceOut(**doc, crop_url=f"/api/faces/{face.id}/crop",
                   snapshot_url=f"/api/faces/{face.id}/snapshot" if face.snapshot else None)


def edit_out(action: Action) -> EditOut:
    from facewatch.library.cli_support import iso

    return EditOut(id=action.id, kind=action.kind, face=action.face_id,
                   person_id=action.person_id, entry=action.entry, at=iso(action.ts),
                   undone=action.undone)


def parse_when(value: str | None, field: str) -> float | None:
    """`since`/`until` as the CLI takes them: an age (2h, 3d), an ISO date/time or Unix time."""
    if value is None or value == "":
        return None
    from facewatch.errors import BadInputError
    from facewatch.library.cli_support import parse_time

    try:
        return parse_time(value)
    except BadInputError as exc:
        raise BadInputError(f"{field}: {exc}") from None
