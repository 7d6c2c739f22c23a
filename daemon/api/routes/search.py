"""POST /api/search: when and where a face was seen -- from an uploaded photo (its largest
face) or crop, a face of the library, or a track id; the most similar first or the newest
first; filtered by camera and time.  As `facewatch faces search`."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool

from facewatch.api.routes.common import face_out, parse_when, services
from facewatch.api.schemas import MAX_ID, SearchOut, SimilarFace
from facewatch.api.services import check_camera
from facewatch.api.uploads import read_image, upload_name
from facewatch.errors import BadInputError

router = APIRouter(tags=["search"])


@router.post("/search", response_model=SearchOut,
             summary="Past faces like a photo, a face or a track (exactly one of them)")
async def search_faces(
        request: Request,
        image: Annotated[UploadFile | None, File(description="a photo or a face crop")] = None,
        face: Annotated[int | None, Form(ge=1, le=MAX_ID, description="a face id")] = None,
        track: Annotated[int | None, Form(ge=0, le=MAX_ID, description="a track id")] = None,
        camera: Annotated[str | None, Form(max_length=64)] = None,
        since: Annotated[str | None, Form(max_length=64)] = None,
        until: Annotated[str | None, Form(max_length=64)] = None,
        order: Annotated[Literal["similarity", "newest"], Form()] = "similarity",
        limit: Annotated[int, Form(ge=1, le=200)] = 20,
        min_similarity: Annotated[float | None, Form(ge=-1.0, le=1.0, description=(
            "leave out faces less similar (default: the naming threshold)"))] = None,
) -> SearchOut:
    given = [x for x in (image, face, track) if x is not None]
    if len(given) != 1:
        raise BadInputError("give exactly one of image, face or track")
    svc = services(request)
    cam = check_camera(camera or None)
    t0, t1 = parse_when(since, "since"), parse_when(until, "until")
    photo = None
    if image is not None:
        photo = await read_image(image, int(svc.config.api.max_upload_mb * 1_000_000))
    where = upload_name(image) if image is not None else ""

    def run() -> SearchOut:
        from facewatch.library.search import search, vector_from_crop
        from facewatch.library.store import NotFoundError

        store = svc.store()
        exclude: tuple[int, ...] = ()
        if photo is not None:
            pipeline = svc.pipeline()
            assert pipeline.embedder is not None
            embedder = pipeline.embedder.manifest.sha256
            vector = vector_from_crop(pipeline, photo, where)
        else:
            if track is not None:
                found = store.by_track(track)
                if not found:
                    raise NotFoundError(f"track {track}: not in the library")
                chosen = found[0]
            else:
                assert face is not None
                chosen = store.get(face)
            vector, embedder = store.vectors([chosen.id])[0], chosen.embedder
            exclude = (chosen.id,)
        floor = min_similarity if min_similarity is not None else (svc.embedder_threshold() or 0.0)
        hits = search(store, vector, embedder, limit=limit, order=order, min_similarity=floor,
                      camera=cam, since=t0, until=t1, exclude=exclude)
        return SearchOut(results=[SimilarFace(**face_out(h.face).model_dump(),
                                              similarity=round(h.similarity, 4)) for h in hits],
                         min_similarity=floor)

    return await run_in_threadpool(run)
