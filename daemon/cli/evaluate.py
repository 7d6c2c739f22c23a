"""`facewatch eval lfw|identify|openset`: accuracy on LFW with facewatch's own detection and
alignment; `facewatch eval video`: the per-camera path on a clip, track by track; `facewatch
eval detector`: detector recall on photos with hand-drawn face boxes; `facewatch eval
clusters`: grouping of unknown faces on LFW."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

import platformdirs

from facewatch.cli.common import add_recognition_options, add_threshold_options, pipeline_from
from facewatch.cli.output import emit
from facewatch.errors import BadInputError
from facewatch.gallery.cache import AnalysisCache


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("eval", help="measure accuracy on LFW and video clips, detector recall on "
                                    "annotated photos")
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
    add_threshold_options(i)
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

    o = esub.add_parser("openset", parents=[common],
                        help="open-set identification per gallery size: TPIR at FPIR 1 %% and "
                             "0.1 %%, thresholds, the operating point")
    o.add_argument("--lfw", type=Path, required=True, metavar="DIR",
                   help="LFW images, one folder per person")
    o.add_argument("--sizes", default="10,100,1000", metavar="N,N,...",
                   help="gallery sizes, people enrolled (default: 10,100,1000)")
    o.add_argument("--draws", type=int, default=5, help="random draws per size (default: 5)")
    o.add_argument("--photos", type=int, default=1,
                   help="photos enrolled per person (default: 1)")
    o.add_argument("--match", choices=["mean", "nearest"], default="mean",
                   help="a person with several photos is matched through their mean (default, "
                        "as the gallery does) or each photo on its own")
    o.add_argument("--views", type=int, default=1,
                   help="photos averaged into one probe, like a track's views (default: 1)")
    o.add_argument("--seed", type=int, default=0, help="draws' random seed (default: 0)")
    o.add_argument("--every", type=int, default=1, metavar="K",
                   help="use every K-th LFW person only (a quick sample; default: all)")
    o.add_argument("--max-false-rate", type=float, default=None, metavar="RATE",
                   help="the operating point's target (default: the daemon's, 0.01)")
    o.add_argument("--write-calibration", action="store_true",
                   help="store the measured calibration in the embedder's manifest (for an "
                        "embedder of your own; facewatch's ship theirs)")
    _cache_options(o)
    add_recognition_options(o)
    o.set_defaults(handler=_openset)

    vid = esub.add_parser("video", parents=[common],
                          help="the real pipeline on a clip: every track, who it was named, how sure")
    vid.add_argument("--video", type=Path, required=True, metavar="FILE")
    vid.add_argument("--gallery", type=Path, metavar="G",
                     help="gallery YAML file or folder-per-person directory")
    vid.add_argument("--lfw", type=Path, metavar="DIR",
                     help="LFW images: enrol --lfw-people of its people too (strangers to the "
                          "clip), one photo each")
    vid.add_argument("--lfw-people", type=int, default=1000, metavar="N",
                     help="LFW people enrolled with --lfw, spread evenly over the alphabet "
                          "(default: 1000)")
    vid.add_argument("--expect", action="append", default=[], metavar="ID[=T0-T1[@X1,Y1,X2,Y2]]",
                     help="who must be named: on some track, or on the tracks seen in that time "
                          "(seconds) and place (pixels); `unknown=...` for a face that must not "
                          "be named, `nobody` for no name at all; anyone not expected must never "
                          "be named (repeatable)")
    vid.add_argument("--fps", type=float, default=10.0,
                     help="frames analysed per second of video, as a camera's fps (default: 10)")
    vid.add_argument("--state-dir", type=Path, metavar="DIR",
                     help="where the gallery's cache lives (default: beside the gallery; with "
                          "--lfw alone, the per-user cache folder)")
    vid.add_argument("--min-margin", type=float, default=None, metavar="SIM",
                     help="also require this lead over the next nearest person (default: the "
                          "daemon's)")
    vid.add_argument("--min-agreement", type=float, default=None, metavar="SHARE",
                     help="also require this share of a track's views to be nearest to the "
                          "person (default: the daemon's)")
    vid.add_argument("--borderline-views", type=int, default=None, metavar="N",
                     help="views a track near the threshold asks for (0: none; default: the "
                          "daemon's)")
    add_threshold_options(vid)
    add_recognition_options(vid)
    vid.set_defaults(handler=_video, min_face=40.0)


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
    from facewatch.evaluation.identification import run_identification, split_lfw
    from facewatch.identity.threshold import operating_point

    pipeline = pipeline_from(args)
    assert pipeline.embedder is not None
    manifest = pipeline.embedder.manifest
    point = operating_point(len(split_lfw(args.lfw).enrolled), configured=args.threshold,
                            calibration=manifest.open_set_for(args.flip),
                            manifest=manifest.threshold, max_false_rate=args.max_false_rate)
    cache = _open_cache(args)
    try:
        r = run_identification(args.lfw, pipeline, cache, point.threshold)
    finally:
        if cache:
            cache.close()
    emit(args.json, {**asdict(r), "operating_point": point.as_dict()}, [
        f"LFW open-set identification ({args.embedder}): {r.enrolled} people enrolled, "
        f"{r.genuine_probes} genuine and {r.impostor_probes} impostor probes",
        f"rank-1 accuracy          {100 * r.rank1:.2f} %",
        f"identified at threshold  {100 * r.identification_rate:.2f} % (threshold {r.threshold:.3f}, "
        f"{point.source})",
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


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise BadInputError(f"--sizes {text!r}: expected numbers separated by commas") from None
    if not sizes or min(sizes) < 1:
        raise BadInputError(f"--sizes {text!r}: each size must be at least 1")
    return sizes


def _openset(args: argparse.Namespace) -> int:
    from facewatch.engines.manifest import OpenSetCalibration
    from facewatch.evaluation.openset import (
        OpenSetOptions,
        lfw_faces,
        pair_calibration,
        run_open_set,
    )
    from facewatch.identity.threshold import DEFAULT_MAX_FALSE_RATE, threshold_for

    for name in ("draws", "photos", "views", "every"):
        if getattr(args, name) < 1:
            raise BadInputError(f"--{name} {getattr(args, name)}: must be at least 1")
    options = OpenSetOptions(sizes=_sizes(args.sizes), draws=args.draws, photos=args.photos,
                             match=args.match, views=args.views, seed=args.seed)
    target = args.max_false_rate if args.max_false_rate is not None else DEFAULT_MAX_FALSE_RATE
    pipeline = pipeline_from(args)
    assert pipeline.embedder is not None
    manifest = pipeline.embedder.manifest
    cache = _open_cache(args)
    try:
        faces = lfw_faces(args.lfw, pipeline, cache, every=args.every)
    finally:
        if cache:
            cache.close()
    tail = pair_calibration(faces, views=3)
    measured_now = OpenSetCalibration(
        flip=args.flip, source="", pair_rates=list(tail.rates),
        pair_thresholds=_strictly_ascending(tail.thresholds))
    shipped = manifest.open_set_for(args.flip)
    calibration = shipped if shipped is not None and shipped.flip == args.flip else measured_now
    operating = {n: threshold_for(calibration, n, target) for n in options.sizes}
    results = run_open_set(faces, options, manifest.threshold, operating)
    doc: dict[str, Any] = {
        "embedder": args.embedder, "flip": args.flip, "precision": args.precision,
        "images": int(faces.person.size), "people": len(faces.names),
        "fallbacks": faces.fallbacks, "options": asdict(options),
        "manifest_threshold": manifest.threshold, "max_false_rate": target,
        "operating_point_from": "manifest" if calibration is shipped else "this measurement",
        "sizes": [asdict(r) for r in results],
        "pair_tail": asdict(tail),
    }
    lines = [f"LFW open set, {args.embedder} (flip {'on' if args.flip else 'off'}, "
             f"{args.precision}): {faces.person.size:,} images of {len(faces.names):,} people; "
             f"{options.draws} draws; {options.photos} photo(s) enrolled per person "
             f"({options.match}); probes of {options.views} view(s)",
             f"{'people':>7} {'genuine':>8} {'strangers':>9} {'rank-1':>7}  "
             + "  ".join(f"TPIR@FPIR={100 * f:g}% (thr)" for f in options.false_rates)]
    for r in results:
        lines.append(f"{r.people:>7,} {r.genuine:>8,.0f} {r.strangers:>9,.0f} "
                     f"{100 * r.rank1:>6.2f}%  "
                     + "  ".join(f"{100 * a.tpir:6.2f}% ±{100 * a.tpir_std:4.2f} "
                                 f"({a.threshold:.3f})" for a in r.at))
    for r in results:
        parts = []
        if r.manifest is not None:
            parts.append(f"manifest threshold {r.manifest.threshold:.3f}: FPIR "
                         f"{100 * r.manifest.fpir:.1f} %, TPIR {100 * r.manifest.tpir:.1f} %")
        if r.calibrated is not None:
            parts.append(f"operating point {r.calibrated.threshold:.3f} "
                         f"({100 * target:g} % target): FPIR {100 * r.calibrated.fpir:.2f} %, "
                         f"TPIR {100 * r.calibrated.tpir:.2f} %")
        lines.append(f"{r.people:>7,} people: " + "; ".join(parts))
    for r in results:
        n = r.not_examples
        if n is not None and n.marked:
            lines.append(f"{r.people:>7,} people, `not:` photos: {n.marked} stranger photos "
                         f"marked \"not X\" for whom they were named as at FPIR "
                         f"{100 * options.false_rates[0]:g} %; their {n.other_photos:,} other "
                         f"photos: {n.named_before} named before, {n.named_after} after; TPIR "
                         f"{100 * n.tpir_before:.2f} % -> {100 * n.tpir_after:.2f} %")
    lines.append(f"pair tail ({tail.pairs:,} pairs of a 3-view stranger track and another "
                 f"person): " + ", ".join(f"{r:g}: {t:.3f}" for r, t in zip(tail.rates,
                                                                          tail.thresholds)))
    if args.write_calibration:
        path = _write_calibration(args, measured_now, results, options, tail, faces)
        doc["wrote"] = str(path)
        lines.append(f"wrote the calibration into {path}")
    emit(args.json, doc, lines)
    return 0


def _strictly_ascending(values: tuple[float, ...]) -> list[float]:
    out: list[float] = []
    for v in values:
        out.append(v if not out or v > out[-1] else out[-1] + 1e-4)
    return out


def _write_calibration(args: argparse.Namespace, calibration: Any, results: list[Any],
                       options: Any, tail: Any, faces: Any) -> Path:
    from facewatch.cli.common import store_from
    from facewatch.engines.manifest import OpenSetPoint, write_manifest
    from facewatch.engines.store import variant_name

    if options.photos != 1 or options.views != 1 or args.every != 1:
        raise BadInputError("--write-calibration measures the standard protocol: drop --photos, "
                            "--views and --every")
    store = store_from(args)
    name = variant_name(args.embedder, args.precision)
    manifest = store.manifest(name)
    points = [OpenSetPoint(people=r.people, false_rate=a.false_rate,
                           threshold=round(a.threshold, 4), tpir=round(a.tpir, 4))
              for r in results for a in r.at]
    entry = calibration.model_copy(update={
        "source": f"facewatch eval openset on {faces.person.size} LFW images of "
                  f"{len(faces.names)} people: pairs of a 3-view stranger track and another "
                  f"person ({tail.pairs:,}); {options.draws} draws per size",
        "measured": points})
    kept = [c for c in manifest.open_set if c.flip != args.flip]
    path = store.manifest_path(name)
    write_manifest(path, manifest.model_copy(update={"open_set": kept + [entry]}))
    return path


def _video(args: argparse.Namespace) -> int:
    from facewatch.evaluation.video import VideoOptions, parse_expectation, run_video
    from facewatch.gallery.gallery import Gallery, default_state_dir

    expectations = [parse_expectation(e) for e in args.expect]
    if args.fps <= 0:
        raise BadInputError(f"--fps {args.fps}: must be above 0")
    if not args.video.is_file():
        raise BadInputError(f"{args.video}: no such file")
    if args.gallery is None and args.lfw is None:
        raise BadInputError("eval video needs --gallery, --lfw, or both")
    source = args.gallery
    state_dir = args.state_dir or (default_state_dir(args.gallery) if args.gallery else None)
    if args.lfw is not None:
        from facewatch.evaluation.video import gallery_with_lfw

        # beside the user's gallery, else in the per-user cache (never inside the LFW copy)
        state_dir = state_dir or platformdirs.user_cache_path("facewatch") / "eval-video"
        source = gallery_with_lfw(args.gallery, args.lfw, args.lfw_people, state_dir)
    pipeline = pipeline_from(args)
    # LFW photos may show someone behind the subject: enrol the largest face of those
    gallery = Gallery.open(source, pipeline, state_dir=state_dir, largest_face=args.lfw is not None,
                           skip_bad=args.lfw is not None, threshold=args.threshold,
                           max_false_rate=args.max_false_rate)
    options = VideoOptions(fps=args.fps, min_margin=args.min_margin,
                           min_agreement=args.min_agreement,
                           borderline_views=args.borderline_views)
    report = run_video(args.video, pipeline, gallery, options, expectations)
    emit(args.json, report.as_dict(), report.lines())
    return 0 if report.passed else 1
