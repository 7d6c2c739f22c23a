"""`facewatch gallery build|list|add|remove`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from facewatch.cli.common import add_recognition_options, pipeline_from
from facewatch.cli.output import emit


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("gallery", help="enrol people and inspect the gallery")
    gsub = p.add_subparsers(dest="gallery_command", metavar="ACTION", required=True)
    for name, helptext, handler in (
        ("build", "enrol every image (only new or changed ones are embedded)", _build),
        ("list", "show enrolled people", _list),
        ("add", "add images of a person (creating the person if needed)", _add),
        ("remove", "remove a person", _remove),
    ):
        g = gsub.add_parser(name, parents=[common], help=helptext)
        g.add_argument("gallery", type=Path, metavar="G",
                       help="gallery YAML file (or, for build/list, a folder-per-person directory)")
        if name == "add":
            g.add_argument("--id", required=True, help="the person's id")
            g.add_argument("--name", help="display name")
            g.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
        if name == "remove":
            g.add_argument("id", help="the person's id")
        g.add_argument("--state-dir", type=Path, metavar="DIR",
                       help="where the cache and index live (default: beside the gallery)")
        g.add_argument("--largest", action="store_true",
                       help="enrol the largest face of photos that show several")
        g.add_argument("--skip-bad", action="store_true",
                       help="enrol what can be enrolled and report the rest, instead of failing")
        add_recognition_options(g)
        g.set_defaults(handler=handler)


def _open(args: argparse.Namespace, source: Path | None = None) -> Any:
    """Open the gallery; `source` is an edited copy of it, sharing the gallery's cache."""
    from facewatch.gallery.gallery import Gallery, default_state_dir

    state_dir = args.state_dir or default_state_dir(args.gallery)
    return Gallery.open(source or args.gallery, pipeline_from(args), state_dir=state_dir,
                        largest_face=args.largest, skip_bad=args.skip_bad)


def _report(args: argparse.Namespace, gallery: Any, verb: str) -> int:
    r = gallery.report
    doc = {"gallery": str(args.gallery), "threshold": gallery.threshold, **r.as_dict(),
           "people_list": [{"id": p.id, "name": p.name, "images": len(p.images),
                            "enrolled": int((gallery.entry_person == i).sum())}
                           for i, p in enumerate(gallery.people)]}
    lines = [f"{verb} {args.gallery}: {r.people} people, {r.enrolled}/{r.images} images enrolled "
             f"({r.analysed} analysed, {r.reused} from cache), threshold {gallery.threshold:.3f}"]
    lines += [f"  skipped {i}" for i in r.issues]
    emit(args.json, doc, lines)
    return 2 if r.issues else 0


def _build(args: argparse.Namespace) -> int:
    return _report(args, _open(args), "built")


def _list(args: argparse.Namespace) -> int:
    gallery = _open(args)
    rows = [{"id": p.id, "name": p.name, "images": [str(i) for i in p.images],
             "enrolled": int((gallery.entry_person == i).sum()), "metadata": p.metadata}
            for i, p in enumerate(gallery.people)]
    emit(args.json, {"gallery": str(args.gallery), "people": rows},
         [f"{r['id']:20s} {r['name']:30s} {r['enrolled']}/{len(r['images'])} images" for r in rows])
    return 0


def _edit(args: argparse.Namespace, change: Any, verb: str) -> int:
    from facewatch.gallery.editing import edit_gallery

    built: list[Any] = []

    def enrol(tmp: Path) -> None:
        built.append(_open(args, tmp))

    edit_gallery(args.gallery, change, enrol)
    return _report(args, built[0], verb)


def _add(args: argparse.Namespace) -> int:
    from facewatch.errors import GalleryError
    from facewatch.gallery.editing import add_person_images, relative_to_gallery

    for image in args.images:
        if not image.is_file():
            raise GalleryError(f"{image}: no such file")
    images = [relative_to_gallery(args.gallery, i) for i in args.images]
    return _edit(args, add_person_images(args.id, args.name, images), "added to")


def _remove(args: argparse.Namespace) -> int:
    from facewatch.gallery.editing import remove_person

    return _edit(args, remove_person(args.id), "removed from")
