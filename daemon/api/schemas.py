"""The API's request and response bodies, typed (they make the OpenAPI document at /api/docs).

Faces, groups and edits carry the same fields as `facewatch faces|clusters ... --json`, except
that files are given as URLs served by id (`crop_url`, `snapshot_url`), never as paths.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Ids are SQLite rowids: positive 64-bit integers.
MAX_ID = 2**62
MAX_FACES_PER_EDIT = 1000

FaceIdIn = Annotated[int, Field(ge=1, le=MAX_ID)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    error: str = Field(description="What was wrong, in one line.")


# ---------------------------------------------------------------------------- faces

class FaceOut(BaseModel):
    id: int
    camera: str
    track_id: int
    first_ts: float
    last_ts: float
    first_seen: str = Field(description="first_ts as ISO 8601 local time")
    last_seen: str
    status: Literal["known", "unknown"] = Field(description="named by the daemon, or not")
    person_id: str | None = Field(description="who the daemon named (None: unknown)")
    name: str | None
    score: float = Field(description="similarity to person_id, or to nearest_id when unknown")
    nearest_id: str | None
    group: int | None = Field(description="its group of unknown faces")
    assigned_to: str | None = Field(description="the person a user named it as")
    quality: float
    views: int
    embedder: str
    crop_url: str
    snapshot_url: str | None


class FacePage(BaseModel):
    faces: list[FaceOut]
    total: int
    offset: int
    limit: int


class EditOut(BaseModel):
    id: int
    kind: Literal["assign", "not"]
    face: int
    person_id: str
    entry: str = Field(description="the YAML list item written (relative to the gallery)")
    at: str
    undone: bool


class FaceDetail(FaceOut):
    edits: list[EditOut]
    segments: list[FaceOut] = Field(description="the other stored segments of the same track")


class SimilarFace(FaceOut):
    similarity: float


class SearchOut(BaseModel):
    results: list[SimilarFace]
    min_similarity: float


class AssignIn(Strict):
    faces: list[FaceIdIn] = Field(min_length=1, max_length=MAX_FACES_PER_EDIT)
    person: str = Field(description="the person's id (new or existing)")
    name: str | None = Field(None, description="display name (for a new person, or to rename)")


class NotIn(Strict):
    faces: list[FaceIdIn] = Field(min_length=1, max_length=MAX_FACES_PER_EDIT)
    person: str = Field(description="the id of the person these faces are not")


class EditResultOut(BaseModel):
    person_id: str
    created_person: bool
    edits: list[EditOut]


class SplitOut(BaseModel):
    face: int
    group: int


class UndoOut(BaseModel):
    id: int
    kind: Literal["assign", "not"]
    person_id: str
    removed: str
    undone: bool


# ---------------------------------------------------------------------------- groups

class ClusterOut(BaseModel):
    id: int
    size: int
    first_ts: float
    last_ts: float
    first_seen: str
    last_seen: str
    cameras: list[str]
    dismissed: bool
    assigned_to: str | None
    embedder: str
    faces: list[FaceOut] = Field(description="its best faces (all of them for one group)")


class ClustersOut(BaseModel):
    groups: list[ClusterOut]


class ClusterAssignIn(Strict):
    person: str
    name: str | None = None
    photos: int = Field(5, ge=1, le=50, description="how many of its best faces to enrol")


class DismissIn(Strict):
    dismissed: bool = True


class DismissOut(BaseModel):
    group: int
    dismissed: bool


class RegroupOut(BaseModel):
    faces: int
    groups: int
    left_alone: int


# ---------------------------------------------------------------------------- people

class PhotoOut(BaseModel):
    id: str = Field(description="stable id of the photo (a digest of its path)")
    url: str
    source: Literal["camera", "upload", "gallery"]
    removable: bool = Field(description="listed on its own in the YAML (not by a glob/folder)")


class PersonOut(BaseModel):
    id: str
    name: str
    metadata: dict[str, Any]
    photos: list[PhotoOut]
    not_entries: int = Field(description="items in the person's not: list")


class PeopleOut(BaseModel):
    people: list[PersonOut]
    editable: bool = Field(description="a YAML gallery (a folder-per-person one is read-only here)")


class RenameIn(Strict):
    name: str


class PhotosAddedOut(BaseModel):
    person: PersonOut
    added: list[str] = Field(description="the YAML items written")


# ---------------------------------------------------------------------------- recognize

class RecognizedFace(BaseModel):
    box: list[float]
    score: float
    landmarks: list[list[float]]
    quality: float
    identity: str | None = None
    name: str | None = None
    similarity: float | None = None


class RecognizedImage(BaseModel):
    path: str = Field(description="the uploaded file's name")
    faces: list[RecognizedFace]


class RecognizeOut(BaseModel):
    """As `facewatch identify --json`."""

    images: list[RecognizedImage]
