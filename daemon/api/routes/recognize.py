"""POST /api/recognize: name the faces of an uploaded photo against the daemon's gallery, with
the same JSON as `facewatch identify --json` (one image), at the daemon's naming threshold
(the gallery's operating point: facewatch.identity.threshold)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.concurrency import run_in_threadpool

from facewatch.api.routes.common import services
from facewatch.api.schemas import RecognizeOut
from facewatch.api.uploads import read_image, upload_name

router = APIRouter(tags=["recognize"])


@router.post("/recognize", response_model=RecognizeOut,
             summary="Find and name the faces of an uploaded photo")
async def recognize(request: Request,
                    image: Annotated[UploadFile, File(description="a photo")]) -> Any:
    svc = services(request)
    photo = await read_image(image, int(svc.config.api.max_upload_mb * 1_000_000))
    name = upload_name(image)

    def run() -> dict[str, Any]:
        from facewatch.cli.oneshot import identified_faces

        pipeline = svc.pipeline()
        gallery = svc.gallery()
        analyzed = pipeline.analyze([photo])[0]
        faces = identified_faces(analyzed, gallery, gallery.threshold)
        return {"images": [{"path": name, "faces": faces}]}

    return await run_in_threadpool(run)
