"""`facewatch clusters list|show|assign|dismiss|regroup`: groups of unknown faces, to name
each person once."""

from __future__ import annotations

import argparse

from facewatch.cli.common import add_recognition_options, without_options
from facewatch.cli.output import emit
from facewatch.errors import BadInputError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    from facewatch.library.cli_support import add_location_options

    light = without_options(common, "--models", "--threads")
    p = sub.add_parser("clusters", help="groups of unknown faces: name a person once")
    csub = p.add_subparsers(dest="clusters_command", metavar="ACTION", required=True)

    ls = csub.add_parser("list", parents=[light], help="groups, most recently seen first")
    ls.add_argument("--all", action="store_true", help="also dismissed and already named groups")
    add_location_options(ls)
    ls.set_defaults(handler=_list)

    show = csub.add_parser("show", parents=[light], help="a group and its faces")
    show.add_argument("group", type=int, metavar="GROUP")
    add_location_options(show)
    show.set_defaults(handler=_show)

    a = csub.add_parser("assign", parents=[common],
                        help="enrol a group as a person (its best faces are copied to the gallery)")
    a.add_argument("group", type=int, metavar="GROUP")
    a.add_argument("--person", required=True, metavar="ID", help="the person's id (new or existing)")
    a.add_argument("--name", help="display name")
    a.add_argument("--photos", type=int, default=5, metavar="N",
                   help="how many of the group's best faces to enrol (default: 5)")
    add_location_options(a, gallery=True)
    add_recognition_options(a)
    a.set_defaults(handler=_assign)

    d = csub.add_parser("dismiss", parents=[light], help="hide a group (--undo shows it again)")
    d.add_argument("group", type=int, metavar="GROUP")
    d.add_argument("--undo", action="store_true", help="bring a dismissed group back")
    add_location_options(d)
    d.set_defaults(handler=_dismiss)

    r = csub.add_parser("regroup", parents=[light],
                        help="group the unknown faces again from scratch (average linkage)")
    add_location_options(r)
    r.set_defaults(handler=_regroup)


def _list(args: argparse.Namespace) -> int:
    from facewatch.library.cli_support import cluster_dict, cluster_line, locate, open_library

    store = open_library(locate(args))
    try:
        groups = store.clusters(include_dismissed=args.all, include_assigned=args.all)
    finally:
        store.close()
    emit(args.json, {"groups": [cluster_dict(c) for c in groups]},
         [cluster_line(c) for c in groups] + [f"{len(groups)} group(s)"])
    return 0


def _show(args: argparse.Namespace) -> int:
    from facewatch.library.cli_support import (
        cluster_dict,
        cluster_line,
        face_dict,
        face_line,
        locate,
        open_library,
    )
    from facewatch.library.store import FaceQuery

    store = open_library(locate(args))
    try:
        group = store.cluster(args.group)
        faces = store.faces(FaceQuery(cluster_id=group.id, limit=1_000_000))
    finally:
        store.close()
    emit(args.json, {**cluster_dict(group), "faces": [face_dict(f) for f in faces]},
         [cluster_line(group)] + [f"  {face_line(f)}" for f in faces])
    return 0


def _assign(args: argparse.Namespace) -> int:
    from facewatch.cli.faces import edit_report, gallery_target
    from facewatch.library.cli_support import locate, open_library
    from facewatch.library.operations import assign_cluster

    if args.photos < 1:
        raise BadInputError(f"--photos {args.photos}: must be at least 1")
    where = locate(args)
    store = open_library(where)
    try:
        result = assign_cluster(store, gallery_target(args, where), args.group, args.person,
                                args.name, max_photos=args.photos)
    finally:
        store.close()
    return edit_report(args, result, "assigned")


def _dismiss(args: argparse.Namespace) -> int:
    from facewatch.library.cli_support import locate, open_library
    from facewatch.library.operations import dismiss

    store = open_library(locate(args))
    try:
        dismiss(store, args.group, dismissed=not args.undo)
    finally:
        store.close()
    emit(args.json, {"group": args.group, "dismissed": not args.undo},
         f"group {args.group} {'shown again' if args.undo else 'dismissed'}")
    return 0


def _regroup(args: argparse.Namespace) -> int:
    from facewatch.library.cli_support import locate, open_library
    from facewatch.library.operations import regroup

    where = locate(args)
    store = open_library(where)
    try:
        results = [regroup(store, embedder, where.clusters) for embedder in store.embedders()]
    finally:
        store.close()
    faces = sum(r.faces for r in results)
    groups = sum(r.groups for r in results)
    left = sum(r.left_alone for r in results)
    emit(args.json, {"faces": faces, "groups": groups, "left_alone": left},
         f"regrouped {faces} unknown face(s) into {groups} group(s)"
         + (f"; {left} older one(s) left in their groups" if left else ""))
    return 0
