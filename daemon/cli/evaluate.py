"""`facewatch eval lfw|identify`: accuracy on LFW with facewatch's own detection and alignment;
`facewatch eval detector`: detector recall on photos with hand-drawn face boxes;
`facewatch eval clusters`: grouping of unknown faces on LFW."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import platformdirs

from facewatch.cli.common import add_recognition_options, pipeline_from
from facewatch.cli.output import emit
from facewatch.gallery.cache import AnalysisCache


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("eval", help="measure accuracy on LFW, detector recall on annotated photos")
    esub = p.add_subparsers(dest="eval_command", metavar="BENCHMARK", required=True)
    v = esub.add_parser("lfw", parents=[common], help="LFW verification, standard 10-fold protocol")
    v.add_argument("--lfw", type=Path, required=True, metavar="DIR",
                   help="LFW images, one folder per person")
    v.add_argument("--pairs", type=Path, required=True, metavar="FILE", help="LFW's pairs.txt")
    _cache_options(v)
    add_recognition_options(v)
    v.set_defaults(handler=_lfw)
    i = esub.add_parser("identify", parents=[common],
                        help="open-set identification on LFW (rank-1, false accepts)")
    i.add_argument("--lfw", type=Path, required=True, metavar="DIR")
    i.add_argument("--threshold", type=float, metavar="SIM",
                   help="similarity to accept a match (default: the embedder's)")
    _cache_options(i)
    add_recognition_options(i)
    i.set_defaults(handler=_identify)
    d = esub.add_parser("detector", parents=[common],
                        help="detector recall by face size on photos with hand-drawn face boxes")
    d.add_argument("--photos", type=Path, required=True, metavar="DIR",
                   help="photos and the dlib XML files that annotate them (e.g. dlib's "
                        "examples/faces: training.xml, testing.xml)")
    add_recognition_options(d, embedder=False)
    d.set_defaults(handler=_detector)
    c = esub.add_parser("clusters", parents=[common],
                        help="grouping of unknown faces on LFW (purity, photos per person kept together)")
    c.add_argument("--lfw", type=Path, required=True, metavar="DIR")
    c.add_argument("--min-photos", type=int, default=10, metavar="N",
                   help="people with at least this many photos (default: 10)")
    c.add_argument("--people", type=int, metavar="N", help="a random N of those people (default: all)")
    c.add_argument("--seed", type=int, default=0, help="order of the photos and choice of people")
    c.add_argument("--join", type=float, metavar="SIM",
                   help="similarity to join a group online (default: the library's, for the embedder)")
    c.add_argument("--regroup", type=float, metavar="SIM",
                   help="average similarity to merge groups when regrouping (default: the library's)")
    _cache_options(c)
    add_recognition_options(c)
    c.set_defaults(handler=_clusters)


def _cache_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache", type=Path, metavar="FILE",
                   help="analysis cache, reused across runs (default: in the per-user cache dir)")
    p.add_argument("--no-cache", action="store_true", help="analyse every image afresh")


def _open_cache(args: argparse.Namespace) -> AnalysisCache | None:
    if args.no_cache:
        return None
    return AnalysisCache(args.cache or platformdirs.user_cache_path("facewatch") / "analysis.sqlite")


def _lfw(args: argparse.Namespace) -> int:
    from facewatch.evaluation.lfw import run_verification

    pipeline = pipeline_from(args)
    cache = _open_cache(args)
    try:
        r = run_verification(args.lfw, args.pairs, pipeline, cache)
    finally:
        if cache:
            cache.close()
    doc = {"accuracy": r.accuracy, "accuracy_std": r.accuracy_std,
           "val_at_far_1e-3": r.val_at_far, "threshold": r.threshold,
           "threshold_at_far_1e-3": r.threshold_at_far, "fallbacks": r.fallbacks,
           "pairs": r.pairs, "images": r.images, "fold_accuracies": r.fold_accuracies,
           "embedder": args.embedder, "flip": args.flip}
    emit(args.json, doc, [
        f"LFW verification, {r.pairs} pairs, 10 folds ({args.embedder}, flip {args.flip})",
        f"accuracy       {100 * r.accuracy:.2f} % ± {100 * r.accuracy_std:.2f}",
        f"VAL@FAR=1e-3   {100 * r.val_at_far:.2f} %",
        f"threshold      {r.threshold:.4f} (cosine similarity; best accuracy)",
        f"               {r.threshold_at_far:.4f} at FAR=1e-3 (all pairs)",
        f"fallbacks      {r.fallbacks} of {r.images} images had no face detected",
    ])
    return 0


def _identify(args: argparse.Namespace) -> int:
    from facewatch.evaluation.identification import run_identification
    from facewatch.gallery.gallery import FALLBACK_THRESHOLD

    pipeline = pipeline_from(args)
    assert pipeline.embedder is not None
    threshold = args.threshold or pipeline.embedder.manifest.threshold or FALLBACK_THRESHOLD
    cache = _open_cache(args)
    try:
        r = run_identification(args.lfw, pipeline, cache, threshold)
    finally:
        if cache:
            cache.close()
    emit(args.json, asdict(r), [
        f"LFW open-set identification ({args.embedder}): {r.enrolled} people enrolled, "
        f"{r.genuine_probes} genuine and {r.impostor_probes} impostor probes",
        f"rank-1 accuracy          {100 * r.rank1:.2f} %",
        f"identified at threshold  {100 * r.identification_rate:.2f} % (threshold {r.threshold:.3f})",
        f"impostors accepted       {100 * r.false_accept_rate:.2f} %",
        f"fallbacks                {r.fallbacks}",
    ])
    return 0


def _detector(args: argparse.Namespace) -> int:
    from facewatch.evaluation.detection import detector_recall

    r = detector_recall(pipeline_from(args, with_embedder=False).detector, args.photos)

    def percent(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f} %"

    doc = {"photos": r.photos, "faces": r.faces, "found": r.found, "recall": r.recall,
           "detections": r.detections, "min_face": args.min_face,
           "bands": [{"height_px": [b.low, None if b.high == float("inf") else b.high],
                      "faces": b.faces, "found": b.found, "recall": b.recall} for b in r.bands]}
    emit(args.json, doc, [
        f"detector recall on {r.faces} hand-drawn faces in {r.photos} photos "
        f"(min face {args.min_face:g} px): {percent(r.recall)}, {r.detections} detections",
        *(f"  {b.label:>10}  {b.found:4d} of {b.faces:4d}  {percent(b.recall)}" for b in r.bands)])
    return 0


def _clusters(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from facewatch.errors import BadInputError
    from facewatch.evaluation.clusters import run_cluster_evaluation
    from facewatch.library.clusters import settings_for

    if args.min_photos < 2:
        raise BadInputError("--min-photos must be at least 2")
    pipeline = pipeline_from(args)
    assert pipeline.embedder is not None
    settings = settings_for(None, pipeline.embedder.manifest.threshold)
    if args.join is not None:
        settings = replace(settings, join=args.join)
    if args.regroup is not None:
        settings = replace(settings, regroup=args.regroup)
    cache = _open_cache(args)
    try:
        r = run_cluster_evaluation(args.lfw, pipeline, cache, settings, args.min_photos,
                                   args.people, args.seed)
    finally:
        if cache:
            cache.close()

    def line(label: str, s: object, seconds: float) -> str:
        from facewatch.library.clusters import ClusterScore

        assert isinstance(s, ClusterScore)
        return (f"{label:9s} purity {s.purity:.3f}  in largest group {100 * s.completeness:.1f} % "
                f"(worst person {100 * s.worst_person:.0f} %, {s.people_below_90} below 90 %)  "
                f"{s.groups} groups ({s.singletons} single)  {1000 * seconds:.0f} ms")

    emit(args.json, asdict(r), [
        f"LFW people with >= {args.min_photos} photos: {r.people} people, {r.photos} photos "
        f"({args.embedder}; join {r.settings.join:.3f}, regroup {r.settings.regroup:.3f})",
        line("online", r.online, r.online_seconds),
        line("regroup", r.regrouped, r.regroup_seconds),
    ])
    return 0
