"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse

from facewatch.detection.detector import MtcnnSettings
from facewatch.engines import catalog
from facewatch.engines.backends.base import BackendName, BackendOptions, Precision
from facewatch.engines.store import ModelStore
from facewatch.errors import BadInputError
from facewatch.images import DEFAULT_MAX_PIXELS
from facewatch.pipeline import FacePipeline, PipelineSettings


def add_recognition_options(parser: argparse.ArgumentParser, embedder: bool = True) -> None:
    g = parser.add_argument_group("recognition")
    g.add_argument("--min-face", type=float, default=20.0, metavar="PX",
                   help="smallest face to detect, in pixels (default: 20)")
    g.add_argument("--scale-factor", type=float, default=0.709, metavar="F",
                   help="image pyramid step, 0.5..0.95 (default: 0.709)")
    g.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help=f"refuse images larger than this (default: {DEFAULT_MAX_PIXELS:,})")
    add_backend_options(g)
    if embedder:
        g.add_argument("--embedder", default=catalog.DEFAULT_EMBEDDER, metavar="NAME",
                       help=f"embedder model name (default: {catalog.DEFAULT_EMBEDDER})")
        g.add_argument("--flip", action="store_true",
                       help="add the embedding of the mirrored face (slower, slightly more accurate)")


def add_backend_options(g: argparse._ActionsContainer) -> None:
    g.add_argument("--backend", choices=["onnxruntime", "tensorrt"], default="onnxruntime",
                   help="inference backend (default: onnxruntime; tensorrt needs an NVIDIA GPU "
                        "and engines from `facewatch tensorrt build`)")
    g.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp32",
                   help="fp32 (default); int8 runs the models `facewatch calibrate` made; "
                        "fp16 those `facewatch tensorrt fp16` made (meant for --backend "
                        "tensorrt; ONNX Runtime runs them slowly, to check accuracy)")


def store_from(args: argparse.Namespace) -> ModelStore:
    return ModelStore(args.models) if getattr(args, "models", None) else ModelStore()


def backend_from(args: argparse.Namespace) -> BackendOptions:
    if args.threads < 1:
        raise BadInputError(f"--threads {args.threads}: must be at least 1")
    # argparse's `choices` already restricted both to the Literal values
    backend: BackendName = getattr(args, "backend", "onnxruntime")
    precision: Precision = getattr(args, "precision", "fp32")
    return BackendOptions(backend=backend, precision=precision, intra_op_threads=args.threads)


def settings_from(args: argparse.Namespace) -> PipelineSettings:
    if not 0.5 <= args.scale_factor <= 0.95:
        raise BadInputError(f"--scale-factor {args.scale_factor}: must be between 0.5 and 0.95")
    if args.min_face < 12:
        raise BadInputError(f"--min-face {args.min_face}: must be at least 12 pixels")
    return PipelineSettings(
        embedder=getattr(args, "embedder", catalog.DEFAULT_EMBEDDER),
        flip=getattr(args, "flip", False),
        detector=MtcnnSettings(min_face=args.min_face, scale_factor=args.scale_factor),
        backend=backend_from(args),
    )


def pipeline_from(args: argparse.Namespace, with_embedder: bool = True) -> FacePipeline:
    return FacePipeline.load(settings_from(args), store_from(args), with_embedder=with_embedder)


def without_options(parent: argparse.ArgumentParser, *options: str) -> argparse.ArgumentParser:
    """A copy of the common options without those that do nothing for a command."""
    trimmed = argparse.ArgumentParser(add_help=False)
    for action in parent._actions:
        if not set(action.option_strings) & set(options):
            trimmed._add_action(action)
    return trimmed
