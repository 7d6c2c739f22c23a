"""`facewatch gallery build|list|add|remove`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from facewatch.cli.common import (
    add_command,
    add_recognition_options,
    add_state_dir_option,
    add_threshold_options,
    gallery_cache_from,
    pipeline_from,
)
from facewatch.cli.output import emit, warn


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = add_command(sub, "gallery", "enrol people from photos and inspect the gallery")
    gsub = p.add_subparsers(dest="gallery_command", metavar="ACTION", required=True)
    for name, helptext, handler in (
        ("build", "enrol every photo of a gallery (only new or changed ones are analysed)", _build),
        ("list", "show the people of a gallery", _list),
        ("add", "add photos of a person, creating the person (and the gallery file) if needed",
         _add),
        ("remove", "remove a person from a gallery", _remove),
    ):
        g = add_command(gsub, name, helptext, parents=[common])
        g.add_argument("gallery", type=Path, metavar="G",
                       help="gallery YAML file (or, for build/list, a folder-per-person directory)")
        if name == "add":
            g.add_argument("--id", required=True, help="the person's id")
            g.add_argument("--name", help="display name")
            g.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
        if name == "remove":
            g.add_argument("id", help="the person's id")
        add_state_dir_option(g)
        g.add_argument("--largest", action="store_true",
                       help="enrol the largest face of photos that show several")
        g.add_argument("--skip-bad", action="store_true",
                       help="enrol what can be enrolled and list the rest (exit 0), instead of "
                            "failing")
        add_recognition_options(g)
        add_threshold_options(g)
        g.set_defaults(handler=handler)


def _open(args: argparse.Namespace, source: Path | None = None) -> Any:
    """Open the gallery; `source` is an edited copy of it, sharing the gallery's cache."""
    from facewatch.gallery.gallery import Gallery

    return Gallery.open(source or args.gallery, pipeline_from(args),
                        state_dir=gallery_cache_from(args), largest_face=args.largest,
                        skip_bad=args.skip_bad, threshold=args.threshold,
                        max_false_rate=args.max_false_rate)


def _report(args: argparse.Namespace, gallery: Any, verb: str) -> int:
    r = gallery.report
    point = gallery.operating_point
    doc = {"gallery": str(args.gallery), "threshold": gallery.threshold,
           "operating_point": point.as_dict(), **r.as_dict(),
           "people_list": [{"id": p.id, "name": p.name, "images": len(p.images),
                            "enrolled": int((gallery.entry_person == i).sum()),
                            "not": int((gallery.not_person == i).sum())}
                           for i, p in enumerate(gallery.people)]}
    nots = f", {r.not_images} `not:` photos" if r.not_images else ""
    lines = [f"{verb} {args.gallery}: {r.people} people, {r.enrolled}/{r.images} images enrolled "
             f"({r.analysed} analysed, {r.reused} from cache){nots}",
             f"  {point.describe()}"]
    lines += [f"  skipped {i}" for i in r.issues]
    lines += [f"  left out of the template: {i}" for i in r.left_out]
    emit(args.json, doc, lines)
    # Photos that cannot be enrolled fail the command unless --skip-bad asked to skip them:
    # then they are listed above, once, and the gallery that was built is a success.
    return 0


def _build(args: argparse.Namespace) -> int:
    return _report(args, _open(args), "built")


def _list(args: argparse.Namespace) -> int:
    gallery = _open(args)
    rows = [{"id": p.id, "name": p.name, "images": [str(i) for i in p.images],
             "enrolled": int((gallery.entry_person == i).sum()), "metadata": p.metadata}
            for i, p in enumerate(gallery.people)]
    emit(args.json, {"gallery": str(args.gallery), "people": rows},
         [f"{r['id']:20s} {r['name']:30s} {r['enrolled']}/{len(r['images'])} images" for r in rows]
         or [f"{args.gallery}: nobody enrolled"])
    return 0


def _edit(args: argparse.Namespace, change: Any, verb: str) -> int:
    from facewatch.gallery.editing import edit_gallery

    built: list[Any] = []

    def enrol(tmp: Path) -> None:
        built.append(_open(args, tmp))

    edit_gallery(args.gallery, change, enrol)
    return _report(args, built[0], verb)


def _add(args: argparse.Namespace) -> int:
    from facewatch.cli.config_check import protected_home_warning
    from facewatch.errors import GalleryError
    from facewatch.gallery.editing import add_person_images, relative_to_gallery

    for image in args.images:
        if not image.is_file():
            raise GalleryError(f"{image}: no such file")
    images = [relative_to_gallery(args.gallery, i) for i in args.images]
    code = _edit(args, add_person_images(args.id, args.name, images), "added to")
    hidden = protected_home_warning(args.gallery, list(args.images), args.gallery)
    if hidden is not None:
        warn(hidden)
    return code


def _remove(args: argparse.Namespace) -> int:
    from facewatch.gallery.editing import remove_person

    return _edit(args, remove_person(args.id), "removed from")
