"""`facewatch config check FILE`: validate a daemon configuration, as `facewatch run` would load it."""

from __future__ import annotations

import argparse
from pathlib import Path

from facewatch.cli.common import without_options
from facewatch.cli.output import emit


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    # Only the common options that apply here: this command loads no models.
    common = without_options(common, "--models", "--threads")
    c = sub.add_parser("config", help="check a daemon configuration file")
    csub = c.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = csub.add_parser(
        "check", parents=[common],
        help="validate FILE: exit 0 if valid, 3 with `file:line: field: problem` if not")
    check.add_argument("file", type=Path, metavar="FILE")
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from facewatch.config import check_state_dir, load_config, resolve

    config = resolve(load_config(args.file))
    check_state_dir(config)  # as `run` does before it starts anything
    outputs = config.outputs
    described = []
    if outputs.zmq is not None:
        described.append(f"zmq {outputs.zmq.bind}" + (" (CURVE)" if outputs.zmq.curve else ""))
    if outputs.mqtt is not None:
        described.append(f"mqtt {outputs.mqtt.address}" + (" (TLS)" if outputs.mqtt.tls else ""))
    if outputs.jsonl is not None:
        described.append(f"jsonl {outputs.jsonl.path}")
    public = config.public_dict()
    cameras = ", ".join(f"{c['name']} ({c['url']})" + ("" if c["enabled"] else " disabled")
                        for c in public["cameras"])
    # The gallery is a file of its own, edited while the daemon runs; the config is valid
    # without it, but say now what `facewatch run` would refuse to start with.
    gallery_problem = _gallery_problem(config.gallery)
    gallery = f"{config.gallery}" + (f"  (warning: {gallery_problem})" if gallery_problem else "")
    emit(args.json, {"file": str(args.file), "valid": True, "config": public,
                     "gallery_problem": gallery_problem},
         [f"{args.file}: valid",
          f"  cameras: {cameras}",
          f"  gallery: {gallery}",
          f"  outputs: {', '.join(described) or 'none'}",
          f"  state:   {config.state_dir}"])
    return 0


def _gallery_problem(path: Path) -> str | None:
    """Why the gallery YAML cannot be used as it stands (people, image paths), or None."""
    from facewatch.errors import GalleryError
    from facewatch.gallery.spec import load_gallery_spec

    try:
        load_gallery_spec(path)
    except GalleryError as exc:
        return str(exc)
    return None
