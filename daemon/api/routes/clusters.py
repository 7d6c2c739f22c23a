"""Groups of unknown faces: list them with their best faces, show one, name it (a new or an
existing person), dismiss it, regroup -- as `facewatch clusters list|show|assign|dismiss|regroup`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from facewatch.api.routes.common import ClusterId, face_out, person_id, services
from facewatch.api.routes.faces import edit_result
from facewatch.api.schemas import (
    ClusterAssignIn,
    ClusterOut,
    ClustersOut,
    DismissIn,
    DismissOut,
    EditResultOut,
    RegroupOut,
)
from facewatch.library.store import Cluster, FaceQuery, LibraryStore

router = APIRouter(tags=["groups"])


def _cluster_out(store: LibraryStore, group: Cluster, faces: int) -> ClusterOut:
    from facewatch.library.cli_support import cluster_dict

    members = store.faces(FaceQuery(cluster_id=group.id, limit=max(faces, 1) * 20))
    best = sorted(members, key=lambda f: (-f.quality, -f.last_ts))[:faces]
    return ClusterOut(**cluster_dict(group), faces=[face_out(f) for f in best])


@router.get("/clusters", response_model=ClustersOut,
            summary="Groups of unknown faces, most recently seen first")
def list_clusters(request: Request,
                  all: Annotated[bool, Query(description="also dismissed and named groups")] = False,
                  faces: Annotated[int, Query(ge=0, le=50,
                                              description="best faces shown per group")] = 8,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> ClustersOut:
    store = services(request).store()
    groups = store.clusters(include_dismissed=all, include_assigned=all)[:limit]
    return ClustersOut(groups=[_cluster_out(store, g, faces) for g in groups])


@router.get("/clusters/{cluster_id}", response_model=ClusterOut,
            summary="A group and all its faces, newest first")
def show_cluster(request: Request, cluster_id: ClusterId) -> ClusterOut:
    from facewatch.library.cli_support import cluster_dict

    store = services(request).store()
    group = store.cluster(cluster_id)
    members = store.faces(FaceQuery(cluster_id=group.id, limit=1_000_000))
    return ClusterOut(**cluster_dict(group), faces=[face_out(f) for f in members])


@router.post("/clusters/{cluster_id}/assign", response_model=EditResultOut,
             summary="Enrol a group as a person: its best faces are copied to the gallery")
def assign_cluster(request: Request, cluster_id: ClusterId, body: ClusterAssignIn) -> EditResultOut:
    from facewatch.library import operations

    svc = services(request)
    store = svc.store()
    store.cluster(cluster_id)  # an unknown id is a 404 before the models are loaded
    result = operations.assign_cluster(store, svc.target(), cluster_id, person_id(body.person),
                                       body.name, max_photos=body.photos)
    svc.reload()
    return edit_result(result)


@router.post("/clusters/{cluster_id}/dismiss", response_model=DismissOut,
             summary="Hide a group from the review (dismissed: false shows it again)")
def dismiss_cluster(request: Request, cluster_id: ClusterId, body: DismissIn) -> DismissOut:
    from facewatch.library import operations

    operations.dismiss(services(request).store(), cluster_id, dismissed=body.dismissed)
    return DismissOut(group=cluster_id, dismissed=body.dismissed)


@router.post("/clusters/regroup", response_model=RegroupOut,
             summary="Group the unknown faces again from scratch (average linkage)")
def regroup(request: Request) -> RegroupOut:
    from facewatch.library import operations
    from facewatch.library.clusters import settings_for

    svc = services(request)
    store = svc.store()
    settings = settings_for(svc.config.library.cluster_threshold, svc.config.recognition.threshold)
    results = [operations.regroup(store, e, settings) for e in store.embedders()]
    return RegroupOut(faces=sum(r.faces for r in results), groups=sum(r.groups for r in results),
                      left_alone=sum(r.left_alone for r in results))
