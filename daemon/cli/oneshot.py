"""`facewatch detect|embed|identify IMAGE...`: one-shot recognition of image files."""

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
from facewatch.cli.output import emit, rounded, warn
from facewatch.errors import EXIT_BAD_INPUT, ImageError
from facewatch.images import load_image
from facewatch.pipeline import AnalyzedFaces, FacePipeline
from facewatch.progress import progress_bar

# Images are decoded and analysed this many at a time, so a folder of 10,000 photos neither
# holds every decoded image in memory nor pays per-image model-call overhead.
_CHUNK = 16


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    for name, helptext, handler in (
        ("detect", "find faces in photos: boxes, scores, landmarks, quality", _detect),
        ("embed", "find faces in photos and print their embeddings", _embed),
        ("identify", "find faces in photos and name them against a gallery", _identify),
    ):
        p = add_command(sub, name, helptext, parents=[common])
        p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
        add_recognition_options(p, embedder=name != "detect")
        if name == "identify":
            p.add_argument("--gallery", type=Path, required=True, metavar="G",
                           help="gallery YAML file or folder-per-person directory")
            add_threshold_options(p)
            # the same choices as `gallery build`, so a gallery it accepts is accepted here
            add_state_dir_option(p)
            p.add_argument("--largest", action="store_true",
                           help="enrol the largest face of gallery photos that show several")
            p.add_argument("--skip-bad", action="store_true",
                           help="leave out gallery photos that cannot be enrolled (a warning "
                                "lists them) instead of failing")
        p.set_defaults(handler=handler)


def _run(args: argparse.Namespace, pipeline: FacePipeline, embed: bool,
         describe: Any) -> int:
    paths: list[str] = list(args.images)
    # One result per argument, in the order given (a path given twice is reported twice, in
    # both places); failures are reported as they happen, the results once all are done.
    results: list[dict[str, Any]] = [{} for _ in paths]
    failed = 0
    bar = progress_bar(len(paths), args.command)
    for start in range(0, len(paths), _CHUNK):
        loaded, images = [], []
        for at in range(start, min(start + _CHUNK, len(paths))):
            try:
                images.append(load_image(paths[at], args.max_pixels))
                loaded.append(at)
            except ImageError as exc:
                warn(str(exc))
                failed += 1
                results[at] = {"path": paths[at], "error": str(exc), "faces": []}
        for at, analyzed in zip(loaded, pipeline.analyze(images, embed=embed)):
            results[at] = {"path": paths[at], "faces": describe(analyzed)}
        bar.update(min(_CHUNK, len(paths) - start))
    bar.close()
    lines = []
    for r in results:
        if "error" in r:
            continue
        lines.append(f"{r['path']}: {len(r['faces'])} face(s)")
        for f in r["faces"]:
            extra = ""
            if "identity" in f:
                who = f["name"] if f["identity"] is not None else "unknown"
                extra = f"  {who} ({f['similarity']:.2f})"
            lines.append(f"  box {f['box']} score {f['score']:.3f}{extra}")
    emit(args.json, {"images": results}, lines)
    return EXIT_BAD_INPUT if failed else 0


def _faces(a: AnalyzedFaces, with_embedding: bool = False) -> list[dict[str, Any]]:
    out = []
    for i in range(len(a)):
        face: dict[str, Any] = {
            "box": rounded(a.detections.boxes[i]),
            "score": round(float(a.detections.scores[i]), 4),
            "landmarks": rounded(a.detections.landmarks[i]),
            "quality": round(float(a.quality[i]), 3),
        }
        if with_embedding and a.embeddings is not None:
            face["embedding"] = rounded(a.embeddings[i], 6)
        out.append(face)
    return out


def _detect(args: argparse.Namespace) -> int:
    return _run(args, pipeline_from(args, with_embedder=False), False, _faces)


def _embed(args: argparse.Namespace) -> int:
    return _run(args, pipeline_from(args), True, lambda a: _faces(a, with_embedding=True))


def _identify(args: argparse.Namespace) -> int:
    from facewatch.gallery.gallery import Gallery

    pipeline = pipeline_from(args)
    gallery = Gallery.open(args.gallery, pipeline, state_dir=gallery_cache_from(args),
                           largest_face=args.largest, skip_bad=args.skip_bad,
                           threshold=args.threshold, max_false_rate=args.max_false_rate)
    for issue in gallery.report.issues:
        warn(f"gallery: not enrolled: {issue}")
    if not gallery.people:
        warn(f"{args.gallery}: nobody enrolled; every face is unknown")

    return _run(args, pipeline, True, lambda a: identified_faces(a, gallery, gallery.threshold))


def identified_faces(a: AnalyzedFaces, gallery: Any, threshold: float) -> list[dict[str, Any]]:
    """The faces of one image, named against `gallery`, as `identify --json` (and the API's
    recognize) report them."""
    faces = _faces(a)
    if a.embeddings is None or len(a) == 0:
        return faces
    for face, match in zip(faces, gallery.identify(a.embeddings, threshold)):
        face.update(identity=match.person_id, name=match.name,
                    similarity=round(match.similarity, 4))
    return faces
