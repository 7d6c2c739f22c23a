"""`facewatch eval lfw|identify`: accuracy on LFW with facewatch's own detection and alignment."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import platformdirs

from facewatch.cli.common import add_recognition_options, pipeline_from
from facewatch.cli.output import emit
from facewatch.gallery.cache import AnalysisCache


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("eval", help="measure accuracy on LFW")
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
