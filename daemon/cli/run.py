"""`facewatch run --config FILE`: the daemon (what the systemd unit starts)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from facewatch.errors import ConfigError, FacewatchError

if TYPE_CHECKING:
    from facewatch.config.daemon import DaemonConfig

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
    check_zmq_bind(config)
    return config


def check_zmq_bind(config: DaemonConfig) -> None:
    """Bind the ZeroMQ address once and let it go: an address in use (another daemon, an old
    one still running) is a config error now, rather than a publisher that fails and is
    restarted for ever.  The publisher binds again a moment later; if something takes the
    address in between, the publisher's own failure stops the daemon with the same code."""
    zmq_output = config.outputs.zmq
    if zmq_output is None or zmq_output.bind.endswith(":*"):
        return
    import zmq

    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    socket = context.socket(zmq.PUB)
    socket.setsockopt(zmq.LINGER, 0)
    try:
        socket.bind(zmq_output.bind)
    except zmq.ZMQError as exc:
        where = config.where(("outputs", "zmq", "bind"))
        reason = zmq.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfigError(f"{where}: outputs.zmq.bind: {zmq_output.bind}: cannot bind "
                          f"({reason})") from None
    finally:
        socket.close(0)
        context.term()


def _run(args: argparse.Namespace) -> int:
    from facewatch.supervisor.supervisor import Supervisor

    config = preflight(args.config)
    logging.getLogger().setLevel(config.logging.numeric_level)  # type: ignore[attr-defined]
    return Supervisor(config, args.config).run()  # type: ignore[arg-type]
