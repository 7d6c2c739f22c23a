"""GET /api/tracks/{track_id}/snapshot and /crop: the face images events link to.

Events carry `snapshot_url` and `crop_url` (`facewatch.events.urls`) from the moment a face is
recognised, when the library has no face id for the track yet: hence images by track id.

- snapshot: the event's snapshot file (`<snapshots.dir>/<camera>/<track_id>.jpg`, only a file
  facewatch wrote: it carries its JPEG comment), else the one the face library kept for the
  track (snapshots are pruned beyond `snapshots.max_files`, the library keeps its own).
- crop: the aligned 112x112 face the library keeps once the track has ended; 404 until then.

Auth: the API's token as everywhere (`Authorization: Bearer`, or `?token=`), or the link's own
`sig`, which opens this one image: a phone fetching a notification's picture sends no header.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi import Path as PathParam

from facewatch.events.snapshots import is_snapshot
from facewatch.events.urls import MediaKind, media_path, signature_valid

log = logging.getLogger(__name__)

router = APIRouter(tags=["faces"])

TrackId = Annotated[int, PathParam(ge=0, le=2**63 - 1, description="The event's track_id.")]
Signature = Annotated[str | None, Query(max_length=128, description="The link's signature, "
                                        "as in the event's snapshot_url or crop_url.")]
_JPEG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/jpeg": {}}, "description": "JPEG"}}
_store_lock = threading.Lock()


@router.get("/tracks/{track_id}/snapshot", response_class=Response, responses=_JPEG)
def track_snapshot(track_id: TrackId, request: Request, sig: Signature = None) -> Response:
    """The track's snapshot: its face with some surroundings."""
    _allow(request, track_id, "snapshot", sig)
    config = request.app.state.context.config
    snapshots = Path(config.snapshots.dir) if config.snapshots.dir is not None else None
    if snapshots is not None:
        for camera in config.camera_names:
            path = snapshots / camera / f"{track_id}.jpg"
            if is_snapshot(path):
                data = _read(path)
                if data is not None:
                    return _jpeg(data)
    face = _library_face(request, track_id)
    if face is not None and face.snapshot is not None:
        data = _read(face.snapshot)
        if data is not None:
            return _jpeg(data)
    raise HTTPException(status.HTTP_404_NOT_FOUND,
                        f"track {track_id}: no snapshot (none was saved, or it was deleted: "
                        f"snapshots.max_files, library.max_age_days)")


@router.get("/tracks/{track_id}/crop", response_class=Response, responses=_JPEG)
def track_crop(track_id: TrackId, request: Request, sig: Signature = None) -> Response:
    """The track's aligned face, as the face library keeps it once the track has ended."""
    _allow(request, track_id, "crop", sig)
    if not request.app.state.context.config.library.enabled:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"track {track_id}: no crop: the face library is off (library.enabled)")
    face = _library_face(request, track_id)
    data = _read(face.crop) if face is not None else None
    if data is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"track {track_id}: no crop (yet): the face library keeps a track's "
                            f"face once the track has ended; the snapshot is there before")
    return _jpeg(data)


def _allow(request: Request, track_id: int, kind: MediaKind, sig: str | None) -> None:
    token = request.app.state.context.config.api.token
    if token is None:
        return
    if sig and signature_valid(token.get_secret_value(), media_path(track_id, kind), sig):
        return
    request.app.state.auth(request)  # the token itself, or 401


def _library_face(request: Request, track_id: int) -> Any:
    """The library's face of `track_id` (the newest, if a camera reused it), or None."""
    config = request.app.state.context.config
    if not config.library.enabled or config.state_dir is None:
        return None
    from facewatch.library.store import StorageError

    with _store_lock:
        store = getattr(request.app.state, "track_media_library", None)
        if store is None:
            from facewatch.library.sqlite_store import SqliteLibrary
            from facewatch.library.writer import library_dir

            try:
                store = SqliteLibrary(library_dir(Path(config.state_dir)))
            except StorageError as exc:
                log.warning("API: %s", exc)
                return None
            request.app.state.track_media_library = store
    try:
        faces = store.by_track(track_id)
    except Exception as exc:  # sqlite3.Error: a database being replaced or gone
        log.warning("API: the face library could not be read (%s)", exc)
        return None
    return faces[0] if faces else None


def _read(path: Path) -> bytes | None:
    try:
        data = Path(path).read_bytes()
    except OSError:  # deleted by retention since it was found
        return None
    return data if data.startswith(b"\xff\xd8") else None


def _jpeg(data: bytes) -> Response:
    # private: a face; a minute: the snapshot of a live track improves while it is tracked
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=60"})
