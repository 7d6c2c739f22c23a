"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from facewatch.config.inference import InferenceConfig
from facewatch.detection.detector import MtcnnSettings
from facewatch.engines import catalog
from facewatch.engines.backends.base import BackendName, BackendOptions, Precision
from facewatch.engines.store import ModelStore
from facewatch.errors import BadInputError, ConfigError
from facewatch.images import DEFAULT_MAX_PIXELS
from facewatch.pipeline import FacePipeline, PipelineSettings


log = logging.getLogger(__name__)

# The one-shot commands detect as the daemon does (its inference: defaults): a face found by
# `facewatch detect` is one the daemon would find, and a smaller minimum only adds noise (a
# fold of a jacket, a tuft of hair) at a higher cost.
DAEMON_MIN_FACE = float(InferenceConfig.model_fields["min_face"].default)
DAEMON_SCALE_FACTOR = float(InferenceConfig.model_fields["scale_factor"].default)


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, helptext: str,
                parents: list[argparse.ArgumentParser] | None = None, **kwargs: Any
                ) -> argparse.ArgumentParser:
    """A subcommand whose one-line description shows both in its parent's list and at the
    top of its own --help."""
    return sub.add_parser(name, parents=parents or [], help=helptext,
                          description=helptext[0].upper() + helptext[1:] + ".", **kwargs)


def add_recognition_options(parser: argparse.ArgumentParser, embedder: bool = True) -> None:
    g = parser.add_argument_group("recognition")
    g.add_argument("--min-face", type=float, default=DAEMON_MIN_FACE, metavar="PX",
                   help=f"smallest face to detect, in pixels (default: {DAEMON_MIN_FACE:g}, "
                        f"the daemon's)")
    g.add_argument("--scale-factor", type=float, default=DAEMON_SCALE_FACTOR, metavar="F",
                   help=f"image pyramid step, 0.5..0.95 (default: {DAEMON_SCALE_FACTOR:g})")
    g.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help=f"refuse images larger than this (default: {DEFAULT_MAX_PIXELS:,})")
    add_backend_options(g)
    if embedder:
        g.add_argument("--embedder", default=catalog.DEFAULT_EMBEDDER, metavar="NAME",
                       help=f"embedder model name (default: {catalog.DEFAULT_EMBEDDER})")
        g.add_argument("--flip", action=argparse.BooleanOptionalAction,
                       default=catalog.DEFAULT_FLIP,
                       help=f"add the embedding of the mirrored face (2x the embedding cost; "
                            f"default: {'on' if catalog.DEFAULT_FLIP else 'off'})")


def add_threshold_options(parser: argparse.ArgumentParser) -> None:
    """--threshold and --max-false-rate, for commands that name people from a gallery."""
    from facewatch.identity.threshold import DEFAULT_MAX_FALSE_RATE

    parser.add_argument("--threshold", type=float, metavar="SIM",
                        help="cosine similarity needed to name someone, fixed (default: the "
                             "gallery's, else the embedder's calibration for the gallery's size)")
    parser.add_argument("--max-false-rate", type=float, default=DEFAULT_MAX_FALSE_RATE,
                        metavar="RATE",
                        help=f"share of strangers that may be named, which sets the threshold "
                             f"for the gallery's size (default: {DEFAULT_MAX_FALSE_RATE:g})")


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
        flip=getattr(args, "flip", catalog.DEFAULT_FLIP),
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


def add_state_dir_option(parser: argparse.ArgumentParser | argparse._ActionsContainer) -> None:
    parser.add_argument(
        "--state-dir", type=Path, metavar="DIR",
        help="the daemon's state folder, whose gallery cache (DIR/gallery) is shared (default: "
             "the state_dir of the daemon's config, else $STATE_DIRECTORY, else the per-user "
             "state folder)")


def gallery_cache_from(args: argparse.Namespace) -> Path:
    """The gallery cache a one-shot command shares with the daemon: `--state-dir`'s, else that
    of the config the daemon would run by default (FACEWATCH_CONFIG, the per-user one or the
    service's), else that of the default state folder."""
    from facewatch.config.resolve import default_state_dir, gallery_cache_dir

    if getattr(args, "state_dir", None) is not None:
        return gallery_cache_dir(Path(args.state_dir))
    state = configured_state_dir()
    return gallery_cache_dir(state if state is not None else default_state_dir())


def configured_state_dir(config_file: Path | None = None) -> Path | None:
    """The state folder the daemon's config names (or defaults to), without reading its
    secrets; None when there is no config or it cannot be read (logged at debug level)."""
    from facewatch.config import load_config
    from facewatch.config.resolve import default_config_path, default_state_dir

    path = config_file or default_config_path()
    if path is None or not path.is_file():
        return None
    try:
        config = load_config(path)
    except ConfigError as exc:
        log.debug("not using the state folder of %s: %s", path, exc)
        return None
    if config.state_dir is None:
        return default_state_dir()
    state = Path(config.state_dir).expanduser()
    return state if state.is_absolute() else Path(os.path.abspath(path.parent / state))
