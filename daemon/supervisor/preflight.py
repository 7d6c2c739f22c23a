"""What can be checked before the daemon starts its processes, and again before a reload.

Each failure is one line and `ConfigError` (exit code 3, `facewatch.errors.EXIT_CONFIG`), so
systemd does not restart a daemon that cannot work in a loop.
"""

from __future__ import annotations

from pathlib import Path

from facewatch.config.daemon import DaemonConfig
from facewatch.errors import ConfigError, FacewatchError


def preflight(config_path: Path) -> DaemonConfig:
    """Everything that can be checked before starting processes, each failure one line and
    exit code 3 (`facewatch.errors.EXIT_CONFIG`), so systemd does not restart in a loop."""
    from facewatch.config import check_state_dir, load_resolved
    from facewatch.engines import catalog
    from facewatch.engines.store import ModelStore
    from facewatch.gallery.spec import load_gallery_spec

    config = load_resolved(config_path)
    check_state_dir(config)
    try:
        # no gallery file yet is normal (every face unknown); a broken one is not
        load_gallery_spec(config.gallery_path, missing_ok=True)
        store = ModelStore(Path(config.inference.models_dir)) if config.inference.models_dir \
            else ModelStore()
        for name in (*catalog.MTCNN_NAMES.values(), config.inference.embedder):
            store.manifest(name)
    except ConfigError:
        raise
    except FacewatchError as exc:
        raise ConfigError(str(exc)) from None
    check_zmq_bind(config)
    check_api_bind(config)
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


def check_api_bind(config: DaemonConfig) -> None:
    """The API's address in use is a config error now, like the ZeroMQ one."""
    import socket

    api = config.api
    if not api.enabled:
        return
    family = socket.AF_INET6 if ":" in api.bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((api.bind, api.port))
        except OSError as exc:
            where = config.where(("api", "port"))
            raise ConfigError(f"{where}: api: {api.bind}:{api.port}: cannot listen "
                              f"({exc.strerror or exc}); set api.port, or api.enabled: false") from None
