"""The FastAPI application: routes per area, one auth dependency, errors as one JSON line,
and the review page (static files shipped in the package) at `/`.

    app = create_app(ApiContext(config, live, status_path, control))

Every error a client can cause is a 4xx with `{"error": "<one line>"}` and changes nothing:
400 bad input, 401 no or wrong token, 404 unknown id, 409 an edit already undone, 413 a body
over `api.max_upload_mb`, 415 an upload that is not an image.  Anything else is logged with
its traceback and answered 500 `{"error": "internal error ..."}`; a storage failure (a full
disk) is 503 with its one line.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from facewatch import __version__
from facewatch.api.auth import TokenAuth
from facewatch.api.live import LiveEvents
from facewatch.config.daemon import DaemonConfig
from facewatch.errors import BadInputError, FacewatchError
from facewatch.printable import printable

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
# Multipart framing and form fields on top of the photos themselves.
FORM_OVERHEAD_BYTES = 256 * 1024
# The page loads nothing from elsewhere and is never framed.
PAGE_POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
               "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
               "frame-ancestors 'none'; form-action 'self'")


@dataclass
class ApiContext:
    """What the routes need, built once per process."""

    config: DaemonConfig  # resolved
    live: LiveEvents
    status_path: Path | None = None  # the supervisor's status.json, when run by the daemon
    control: Any = None  # the control channel to the inference process (reload the gallery)
    started: float = field(default_factory=time.time)


def one_line(text: object) -> str:
    return printable(" ".join(str(text).split()))


def create_app(context: ApiContext, services: Any = None) -> FastAPI:
    """`services`: what the routes share (`facewatch.api.services.Services`); made from the
    context when not given (tests hand one with the models already loaded)."""
    from facewatch.api.routes import (
        clusters,
        events,
        faces,
        health,
        people,
        recognize,
        search,
        track_media,
    )
    from facewatch.api.services import Services

    api = context.config.api
    token = api.token
    auth = TokenAuth(token.get_secret_value() if token is not None else None)
    app = FastAPI(title="facewatch", version=__version__,
                  description="Faces the daemon saw, who they are, and the gallery behind it. "
                              "With a token configured, every request needs "
                              "`Authorization: Bearer <token>`.",
                  docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None)
    app.state.context = context
    app.state.auth = auth
    app.state.services = services or Services(context.config, context.control)
    protected = [Depends(auth)]
    # the face images events link to: the token, or the link's own signature (see the module)
    app.include_router(track_media.router, prefix="/api")
    for area in (health, recognize, people, faces, clusters, search, events):
        app.include_router(area.router, prefix="/api", dependencies=protected)

    # the page: static files, no data in them (the data comes from the API, with the token)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def _page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.add_middleware(BodyLimit, max_bytes=int(api.max_upload_mb * 1_000_000) + FORM_OVERHEAD_BYTES)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if not request.url.path.startswith("/api/"):
            response.headers.setdefault("Content-Security-Policy", PAGE_POLICY)
        return response

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": one_line(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "bad request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        message = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
        return JSONResponse({"error": one_line(message)}, status_code=400)

    @app.exception_handler(FacewatchError)
    async def _user_error(_request: Request, exc: FacewatchError) -> JSONResponse:
        from facewatch.library.store import NotFoundError

        code = 404 if isinstance(exc, NotFoundError) else 400 \
            if isinstance(exc, BadInputError) else 503
        return JSONResponse({"error": one_line(exc)}, status_code=code)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("API %s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": "internal error (see the daemon's log)"}, status_code=500)

    return app


class BodyLimit:
    """A request body over `max_bytes` is refused with 413 and the API's JSON error: at once
    when its Content-Length says so (nothing is read), else as soon as more arrives.  (The
    framework's own limit answers in plain text.)"""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body over api.max_upload_mb ({self.max_bytes / 1e6:.1f} MB)"
        length = dict(scope.get("headers", ())).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            response = JSONResponse({"error": message}, status_code=413,
                                    headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            got = await receive()
            if got["type"] == "http.request":
                seen += len(got.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, message)
            return got

        await self.app(scope, counted, send)
