"""`facewatch run --config FILE`: the daemon (what the systemd unit starts)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from facewatch.errors import ConfigError, FacewatchError

log = logging.getLogger("facewatch")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", parents=[common], help="run the daemon (cameras → events)")
    p.add_argument("--config", type=Path, required=True, metavar="FILE", help="daemon config YAML")
    p.set_defaults(handler=_run)


def preflight(config_path: Path) -> object:
    """Everything that can be checked before starting processes, each failure one line and
    exit code 3 (`facewatch.errors.EXIT_CONFIG`), so systemd does not restart in a loop."""
    from facewatch.config import load_resolved
    from facewatch.engines import catalog
    from facewatch.engines.store import ModelStore
    from facewatch.gallery.spec import load_gallery_spec

    config = load_resolved(config_path)
    try:
        load_gallery_spec(Path(config.gallery))
        store = ModelStore(Path(config.inference.models_dir)) if config.inference.models_dir \
            else ModelStore()
        for name in (*catalog.MTCNN_NAMES.values(), config.inference.embedder):
            store.manifest(name)
    except ConfigError:
        raise
    except FacewatchError as exc:
        raise ConfigError(str(exc)) from None
    return config


def _run(args: argparse.Namespace) -> int:
    from facewatch.supervisor.supervisor import Supervisor

    config = preflight(args.config)
    logging.getLogger().setLevel(config.logging.numeric_level)  # type: ignore[attr-defined]
    return Supervisor(config, args.config).run()  # type: ignore[arg-type]
