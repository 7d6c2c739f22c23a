"""`facewatch config check FILE`: validate a daemon configuration, as `facewatch run` would load it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facewatch.cli.common import add_command, without_options
from facewatch.cli.output import emit

# What the systemd unit's ProtectHome=yes hides from the service.
PROTECTED_HOMES = (Path("/home"), Path("/root"), Path("/run/user"))

if TYPE_CHECKING:
    from facewatch.config.daemon import DaemonConfig
    from facewatch.identity.threshold import OperatingPoint


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    # Only the common options that apply here: this command loads no models.
    common = without_options(common, "--models", "--threads")
    c = add_command(sub, "config", "check a daemon configuration file")
    csub = c.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = add_command(
        csub, "check", "validate FILE: exit 0 if valid, 3 with `file:line: field: problem` if not",
        parents=[common])
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
                        for c in public["cameras"]) or \
        "none yet (add one with `facewatch cameras add NAME URL`)"
    # The gallery is a file of its own, edited while the daemon runs; the config is valid
    # without it, but say now what `facewatch run` would refuse to start with, and what it
    # will do with no one enrolled yet (information, not a warning: that is how it starts).
    gallery = _gallery_state(config.gallery_path, args.file)
    shown = f"{config.gallery_path}  ({gallery['note']})" if gallery["note"] else f"{config.gallery_path}"
    warnings: list[str] = []
    if gallery["problem"]:
        warnings.append(f"gallery: {gallery['problem']}")
    if gallery["protected"]:
        warnings.append(gallery["protected"])
    point, point_problem = _operating_point(config, config.gallery_path)
    emit(args.json, {"file": str(args.file), "valid": True, "config": public,
                     "gallery_state": gallery["state"], "gallery_problem": gallery["problem"],
                     "operating_point": point.as_dict() if point else None,
                     "operating_point_problem": point_problem, "warnings": warnings},
         [f"{args.file}: valid",
          f"  cameras: {cameras}",
          f"  gallery: {shown}",
          f"  naming:  {point.describe() if point else point_problem}",
          f"  outputs: {', '.join(described) or 'none'}",
          f"  state:   {config.state_dir}"]
         + [f"  warning: {w}" for w in warnings])
    return 0


def _gallery_state(path: Path, config_file: Path) -> dict[str, Any]:
    """The gallery as the daemon would find it: `state` missing | empty | ok | broken, a
    `note` to show beside its path, the `problem` that would stop `run`, and a warning if
    the service could not read its photos."""
    from facewatch.errors import GalleryError
    from facewatch.gallery.spec import load_gallery_spec

    out: dict[str, Any] = {"state": "ok", "note": None, "problem": None, "protected": None}
    if not os.path.lexists(path):
        out.update(state="missing", note="not there yet: every face is unknown until someone "
                   "is named with `facewatch clusters assign` or `facewatch gallery add`, "
                   "which create it")
        return out
    try:
        spec = load_gallery_spec(path)
    except GalleryError as exc:
        out.update(state="broken", problem=str(exc), note="cannot be used; see the warning")
        return out
    if not spec.people:
        out.update(state="empty", note="nobody enrolled yet: every face is unknown")
        return out
    images = sum(len(p.images) for p in spec.people)
    out["note"] = f"{len(spec.people)} people, {images} photos"
    out["protected"] = protected_home_warning(path, [i for p in spec.people for i in p.images],
                                              config_file)
    return out


def under_protected_home(path: Path) -> bool:
    absolute = Path(os.path.abspath(path))
    return any(absolute == home or home in absolute.parents for home in PROTECTED_HOMES)


def protected_home_warning(gallery: Path, images: list[Path], config_file: Path) -> str | None:
    """A warning when photos (or the gallery) of a config the service may run are under
    /home, /root or /run/user, which the unit's ProtectHome=yes hides from it.  A config that
    lives there itself is a user's own, run by hand: nothing to say."""
    if under_protected_home(config_file):
        return None
    hidden = [i for i in images if under_protected_home(i)]
    if under_protected_home(gallery):
        return (f"the gallery {gallery} is under {_home_of(gallery)}, which the systemd unit "
                f"cannot read (ProtectHome=yes); move it (and its photos) into the service's "
                f"state folder, e.g. /var/lib/facewatch/")
    if not hidden:
        return None
    folder = Path(os.path.abspath(gallery)).parent / "photos"
    return (f"{len(hidden)} gallery photo(s) are under {_home_of(hidden[0])} (e.g. {hidden[0]}), "
            f"which the systemd unit cannot read (ProtectHome=yes); put them beside the gallery, "
            f"e.g. in {folder}/, and list them from there")


def _home_of(path: Path) -> str:
    absolute = Path(os.path.abspath(path))
    return next(str(h) for h in PROTECTED_HOMES if absolute == h or h in absolute.parents)


def _operating_point(config: DaemonConfig, gallery_file: Path
                     ) -> tuple[OperatingPoint | None, str | None]:
    """The threshold the daemon would start with (everyone in the gallery enrolled), from the
    embedder's manifest alone: no model is loaded."""
    from facewatch.engines.store import ModelStore
    from facewatch.errors import FacewatchError, GalleryError
    from facewatch.gallery.spec import load_gallery_spec
    from facewatch.identity.threshold import operating_point

    try:
        spec = load_gallery_spec(gallery_file, missing_ok=True)
    except GalleryError:
        return None, "decided when the gallery can be read"
    if not spec.people:
        return None, "decided when someone is enrolled"
    inference, recognition = config.inference, config.recognition
    try:
        store = ModelStore(Path(inference.models_dir) if inference.models_dir else None)
        manifest = store.manifest(store.resolve(inference.embedder, inference.precision))
        point = operating_point(
            len(spec.people), configured=recognition.threshold, gallery=spec.threshold,
            calibration=manifest.open_set_for(inference.flip), manifest=manifest.threshold,
            max_false_rate=recognition.max_false_rate)
    except FacewatchError as exc:
        return None, f"decided when the models are installed ({exc})"
    return point, None