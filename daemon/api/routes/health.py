"""GET /api/health: cameras, processes, gallery and library at a glance."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

router = APIRouter(tags=["health"])


class CameraState(BaseModel):
    name: str
    state: str  # online, offline, reconnecting, or unknown before its first report
    reason: str | None = None
    since: float | None = None


class ProcessState(BaseModel):
    role: str
    alive: bool
    ready: bool
    restarts: int


class LibraryState(BaseModel):
    enabled: bool
    faces: int | None = None  # stored faces (None: off, or not readable)
    groups: int | None = None  # groups of unknown faces awaiting review
    problem: str | None = None


class Health(BaseModel):
    status: str  # ok, or degraded when a camera or a process is not working
    version: str
    uptime_s: float
    cameras: list[CameraState]
    processes: list[ProcessState]
    gallery: dict[str, Any]
    library: LibraryState
    auth: bool  # whether requests need a token
    models_loaded: bool  # whether this process has loaded the models yet (on first need)


@router.get("/health", response_model=Health)
def health(request: Request) -> Health:
    from facewatch import __version__
    from facewatch.errors import FacewatchError
    from facewatch.gallery.spec import load_gallery_spec

    context = request.app.state.context
    seen = context.live.cameras()
    cameras = []
    for camera in context.config.enabled_cameras:
        status = seen.get(camera.name)
        cameras.append(CameraState(name=camera.name, state=status.state if status else "unknown",
                                   reason=status.reason if status else None,
                                   since=status.ts if status else None))
    processes = _processes(context.status_path)
    gallery: dict[str, Any] = {"path": str(context.config.gallery_path)}
    try:
        # no gallery file yet is nobody enrolled, as the daemon sees it
        gallery["people"] = len(load_gallery_spec(context.config.gallery_path,
                                                  missing_ok=True).people)
    except FacewatchError as exc:
        gallery["people"] = None
        gallery["problem"] = " ".join(str(exc).split())
    degraded = any(c.state != "online" for c in cameras) or \
        any(not p.alive for p in processes)
    services = request.app.state.services
    return Health(status="degraded" if degraded else "ok", version=__version__,
                  uptime_s=round(time.time() - context.started, 1), cameras=cameras,
                  processes=processes, gallery=gallery, library=_library(services),
                  auth=request.app.state.auth.required, models_loaded=services.models_loaded)


def _library(services: Any) -> LibraryState:
    from facewatch.errors import FacewatchError

    if not services.library_enabled:
        return LibraryState(enabled=False)
    try:
        store = services.store()
        return LibraryState(enabled=True, faces=store.count(),
                            groups=len(store.clusters(include_dismissed=False,
                                                      include_assigned=False)))
    except FacewatchError as exc:
        return LibraryState(enabled=True, problem=" ".join(str(exc).split()))


def _processes(path: Any) -> list[ProcessState]:
    if path is None:
        return []
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [ProcessState(**{k: c.get(k) for k in ("role", "alive", "ready", "restarts")})
            for c in data.get("children", [])]
