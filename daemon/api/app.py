"""The FastAPI application: routes per area, one auth dependency, errors as one JSON line.

    app = create_app(ApiContext(config, live, status_path, control))

Every error a client can cause is a 4xx with `{"error": "<one line>"}` and changes nothing;
anything else is logged with its traceback and answered 500 `{"error": "internal error"}`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from facewatch import __version__
from facewatch.api.auth import TokenAuth
from facewatch.api.live import LiveEvents
from facewatch.config.daemon import DaemonConfig
from facewatch.errors import FacewatchError
from facewatch.printable import printable

log = logging.getLogger(__name__)


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


def create_app(context: ApiContext) -> FastAPI:
    from facewatch.api.routes import health, track_media

    token = context.config.api.token
    auth = TokenAuth(token.get_secret_value() if token is not None else None)
    app = FastAPI(title="facewatch", version=__version__,
                  description="Faces the daemon saw, who they are, and the gallery behind it.",
                  docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None)
    app.state.context = context
    app.state.auth = auth
    protected = [Depends(auth)]
    app.include_router(health.router, prefix="/api", dependencies=protected)
    # the face images events link to: the token, or the link's own signature (see the module)
    app.include_router(track_media.router, prefix="/api")

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
        return JSONResponse({"error": one_line(exc)}, status_code=400)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("API %s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": "internal error (see the daemon's log)"}, status_code=500)

    return app
