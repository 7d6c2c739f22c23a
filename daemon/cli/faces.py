"""`facewatch faces list|show|search|assign|not|undo|split`: the face library from a shell,
whether or not the daemon runs (it reads the same state folder)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from facewatch.cli.common import add_recognition_options, pipeline_from, without_options
from facewatch.cli.output import emit
from facewatch.errors import BadInputError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    from facewatch.library.cli_support import add_location_options

    light = without_options(common, "--models", "--threads")
    p = sub.add_parser("faces", help="the face library: recent faces, search by face, name them")
    fsub = p.add_subparsers(dest="faces_command", metavar="ACTION", required=True)

    ls = fsub.add_parser("list", parents=[light], help="recent faces, newest first")
    ls.add_argument("--camera", metavar="NAME")
    ls.add_argument("--person", metavar="ID", help="named (or assigned) as this person")
    kind = ls.add_mutually_exclusive_group()
    kind.add_argument("--unknown", action="store_true", help="only faces nobody was named for")
    kind.add_argument("--known", action="store_true", help="only named faces")
    _time_options(ls)
    ls.add_argument("--group", type=int, metavar="N", help="only the faces of this group")
    ls.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (default: 50)")
    ls.add_argument("--offset", type=int, default=0, metavar="N", help="skip the N newest (paging)")
    add_location_options(ls)
    ls.set_defaults(handler=_list)

    show = fsub.add_parser("show", parents=[light], help="one face, with its gallery edits")
    show.add_argument("face", type=int, metavar="FACE")
    add_location_options(show)
    show.set_defaults(handler=_show)

    se = fsub.add_parser("search", parents=[common], help="when and where a face was seen")
    what = se.add_mutually_exclusive_group(required=True)
    what.add_argument("--image", type=Path, metavar="FILE", help="a photo (its largest face)")
    what.add_argument("--crop", type=Path, metavar="FILE",
                      help="an aligned 112x112 face crop, e.g. a library crop")
    what.add_argument("--face", type=int, metavar="FACE", help="a face of the library")
    what.add_argument("--track", type=int, metavar="ID", help="a track id, as in the events")
    se.add_argument("--camera", metavar="NAME")
    _time_options(se)
    se.add_argument("--newest", action="store_true", help="newest first (default: most similar first)")
    se.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (default: 20)")
    se.add_argument("--min-similarity", type=float, metavar="SIM",
                    help="leave out faces less similar (default: the naming threshold)")
    add_location_options(se)
    add_recognition_options(se)
    se.set_defaults(handler=_search)

    for name, helptext, handler in (
            ("assign", "enrol faces as a person (created if new): copies them beside the gallery "
                       "and lists them in the YAML", _assign),
            ("not", "record that faces are not this person (the person's not: list)", _not)):
        a = fsub.add_parser(name, parents=[common], help=helptext)
        a.add_argument("faces", type=int, nargs="+", metavar="FACE")
        a.add_argument("--person", required=True, metavar="ID", help="the person's id")
        if name == "assign":
            a.add_argument("--name", help="display name (for a new person, or to rename)")
        add_location_options(a, gallery=True)
        add_recognition_options(a)
        a.set_defaults(handler=handler)

    u = fsub.add_parser("undo", parents=[common],
                        help="take back an assign or not (its id is in `faces show`)")
    u.add_argument("edit", type=int, metavar="EDIT")
    add_location_options(u, gallery=True)
    add_recognition_options(u)
    u.set_defaults(handler=_undo)

    sp = fsub.add_parser("split", parents=[light], help="take a face out of its group")
    sp.add_argument("face", type=int, metavar="FACE")
    add_location_options(sp)
    sp.set_defaults(handler=_split)


def _time_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", metavar="WHEN", help="seen since: 2h, 3d, 2025-06-01T18:00, ...")
    p.add_argument("--until", metavar="WHEN", help="seen until (same forms)")


def _times(args: argparse.Namespace) -> tuple[float | None, float | None]:
    from facewatch.library.cli_support import parse_time

    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until) if args.until else None
    return since, until


def _positive(value: int, flag: str, zero: bool = False) -> int:
    if value < (0 if zero else 1):
        raise BadInputError(f"{flag} {value}: must be at least {0 if zero else 1}")
    return value


def _list(args: argparse.Namespace) -> int:
    from facewatch.library.cli_support import face_dict, face_line, locate, open_library
    from facewatch.library.store import FaceQuery

    since, until = _times(args)
    query = FaceQuery(camera=args.camera, person_id=args.person,
                      unknown=True if args.unknown else (False if args.known else None),
                      since=since, until=until, cluster_id=args.group,
                      limit=_positive(args.limit, "--limit"),
                      offset=_positive(args.offset, "--offset", zero=True))
    store = open_library(locate(args))
    try:
        faces = store.faces(query)
        total = store.count(query)
    finally:
        store.close()
    emit(args.json, {"faces": [face_dict(f) for f in faces], "total": total,
                     "offset": query.offset, "limit": query.limit},
         [face_line(f) for f in faces] + [f"{len(faces)} of {total} face(s)"])
    return 0


def _show(args: argparse.Namespace) -> int:
    from facewatch.library.cli_support import face_dict, face_line, iso, locate, open_library

    store = open_library(locate(args))
    try:
        face = store.get(args.face)
        edits = store.actions(face_id=face.id, include_undone=True)
    finally:
        store.close()
    doc = face_dict(face)
    doc["edits"] = [{"id": a.id, "kind": a.kind, "person_id": a.person_id, "image": str(a.image),
                     "entry": a.entry, "at": iso(a.ts), "undone": a.undone} for a in edits]
    lines = [face_line(face), f"  crop      {face.crop}", f"  snapshot  {face.snapshot}",
             f"  first seen {iso(face.first_ts)}, {face.views} view(s), best quality "
             f"{face.quality:.2f}"]
    if face.person_id is None and face.nearest_id:
        lines.append(f"  nearest enrolled person: {face.nearest_id} ({face.score:.2f})")
    lines += [f"  edit {a.id}: {a.kind} {a.person_id} ({a.entry}){' undone' if a.undone else ''}"
              for a in edits]
    emit(args.json, doc, lines)
    return 0


def _pipeline(args: argparse.Namespace, where: Any) -> Any:
    """The daemon's recognition settings when its config is given (so the gallery check shares
    its cache); the command line's otherwise."""
    if where.config is not None:
        from facewatch.engines.store import ModelStore
        from facewatch.pipeline import FacePipeline

        inference = where.config.inference
        models = args.models or inference.models_dir
        return FacePipeline.load(inference.pipeline_settings(), ModelStore(Path(models)))
    return pipeline_from(args)


def _search(args: argparse.Namespace) -> int:
    from facewatch.images import load_image
    from facewatch.library.cli_support import face_dict, face_line, locate, open_library
    from facewatch.library.search import search, vector_from_crop, vector_from_image
    from facewatch.library.store import NotFoundError

    since, until = _times(args)
    where = locate(args)
    store = open_library(where)
    try:
        threshold = where.config.recognition.threshold if where.config is not None else None
        exclude: tuple[int, ...] = ()
        if args.face is not None or args.track is not None:
            if args.track is not None:
                found = store.by_track(args.track)
                if not found:
                    raise NotFoundError(f"track {args.track}: not in the library")
                face = found[0]
            else:
                face = store.get(args.face)
            vector, embedder = store.vectors([face.id])[0], face.embedder
            exclude = (face.id,)
            if threshold is None:
                threshold = _manifest_threshold(args, where)
        else:
            pipeline = _pipeline(args, where)
            assert pipeline.embedder is not None
            embedder = pipeline.embedder.manifest.sha256
            threshold = threshold or pipeline.embedder.manifest.threshold
            path = args.image or args.crop
            image = load_image(path)
            vector = (vector_from_image(pipeline, image, str(path)) if args.image is not None
                      else vector_from_crop(pipeline, image, str(path)))
        floor = args.min_similarity if args.min_similarity is not None else (threshold or 0.0)
        hits = search(store, vector, embedder, limit=_positive(args.limit, "--limit"),
                      order="newest" if args.newest else "similarity", min_similarity=floor,
                      camera=args.camera, since=since, until=until, exclude=exclude)
    finally:
        store.close()
    emit(args.json, {"results": [{**face_dict(h.face), "similarity": round(h.similarity, 4)}
                                 for h in hits], "min_similarity": floor},
         [f"{h.similarity:.2f} {face_line(h.face)}" for h in hits]
         + [f"{len(hits)} face(s) at least {floor:.2f} similar"])
    return 0


def _manifest_threshold(args: argparse.Namespace, where: Any) -> float | None:
    from facewatch.engines.store import ModelStore
    from facewatch.errors import FacewatchError

    name = where.config.inference.embedder if where.config is not None else args.embedder
    root = args.models or (where.config.inference.models_dir if where.config is not None else None)
    try:
        return ModelStore(Path(root) if root else None).manifest(name).threshold
    except FacewatchError:
        return None


def gallery_target(args: argparse.Namespace, where: Any) -> Any:
    from facewatch.gallery.gallery import Gallery
    from facewatch.library.operations import GalleryTarget

    if where.gallery is None:
        raise BadInputError("which gallery? give --gallery G, or --config FILE to use the daemon's")
    if where.gallery_state is None:
        from facewatch.gallery.gallery import default_state_dir

        where.gallery_state = default_state_dir(where.gallery)
    pipeline = _pipeline(args, where)

    def check(tmp: Path) -> None:
        Gallery.open(tmp, pipeline, state_dir=where.gallery_state)

    return GalleryTarget(where.gallery, check)


def edit_report(args: argparse.Namespace, result: Any, verb: str) -> int:
    doc = {"person_id": result.person_id, "created_person": result.created_person,
           "edits": [{"id": a.id, "kind": a.kind, "face": a.face_id, "image": str(a.image),
                      "entry": a.entry} for a in result.actions]}
    lines = [f"{verb} {len(result.actions)} face(s) "
             f"{'as' if verb == 'assigned' else 'as not'} {result.person_id}"
             f"{' (new person)' if result.created_person else ''}"]
    lines += [f"  edit {a.id}: face {a.face_id} -> {a.entry}" for a in result.actions]
    emit(args.json, doc, lines)
    return 0


def _assign(args: argparse.Namespace) -> int:
    from facewatch.library.cli_support import locate, open_library
    from facewatch.library.operations import assign

    where = locate(args)
    store = open_library(where)
    try:
        result = assign(store, gallery_target(args, where), args.faces, args.person, args.name)
    finally:
        store.close()
    return edit_report(args, result, "assigned")


def _not(args: argparse.Namespace) -> int:
    from facewatch.library.cli_support import locate, open_library
    from facewatch.library.operations import mark_not

    where = locate(args)
    store = open_library(where)
    try:
        result = mark_not(store, gallery_target(args, where), args.faces, args.person)
    finally:
        store.close()
    return edit_report(args, result, "marked")


def _undo(args: argparse.Namespace) -> int:
    from facewatch.library.cli_support import locate, open_library
    from facewatch.library.operations import undo

    where = locate(args)
    store = open_library(where)
    try:
        action = store.action(args.edit)
        if where.gallery is None:  # the gallery the edit was made in
            from facewatch.config.resolve import gallery_cache_dir

            where.gallery = action.gallery
            # the cache of the daemon whose library this is (its state folder's)
            where.gallery_state = gallery_cache_dir(where.library.parent)
        done = undo(store, gallery_target(args, where), args.edit)
    finally:
        store.close()
    emit(args.json, {"id": done.id, "kind": done.kind, "person_id": done.person_id,
                     "removed": done.entry, "undone": done.undone},
         f"undid edit {done.id}: {done.kind} {done.person_id} ({done.entry} removed)")
    return 0


def _split(args: argparse.Namespace) -> int:
    from facewatch.library.cli_support import locate, open_library
    from facewatch.library.operations import split

    store = open_library(locate(args))
    try:
        group = split(store, args.face)
    finally:
        store.close()
    emit(args.json, {"face": args.face, "group": group},
         f"face {args.face} is now alone in group {group}")
    return 0
