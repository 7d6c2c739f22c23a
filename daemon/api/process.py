"""The `api` process: uvicorn serving the API and the review page.

It is a supervised child like the others: it beats from a thread while uvicorn runs the
event loop in the main thread, and stops when the supervisor asks (uvicorn's own signal
handling is left out: the child base owns signals).  It reads the database and files the
library and the gallery keep under state_dir, edits the gallery YAML through the same editor
as the CLI, and asks the inference process to reload the gallery after an edit.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facewatch.config.daemon import DaemonConfig
from facewatch.errors import EXIT_CONFIG
from facewatch.processes.channels import Channel, ControlCommand
from facewatch.processes.child import ChildContext, ChildKind

log = logging.getLogger(__name__)

# Not in the data flow: it stops first.
KIND = ChildKind("api", stop_timeout_s=2.0, stop_order=0)


@dataclass(frozen=True)
class ApiChannels:
    events: Any  # Channel[Event]: every published event, from the publisher
    control: Channel[ControlCommand]  # to the inference process
    status_path: Path  # the supervisor's status.json


def run_api(ctx: ChildContext, config: DaemonConfig, channels: ApiChannels) -> None:
    import uvicorn

    from facewatch.api.app import ApiContext, create_app
    from facewatch.api.live import LiveEvents
    from facewatch.publishers.api_feed import CAMERAS_FILE, read_camera_states

    live = LiveEvents(channels.events)
    live.start(read_camera_states(channels.status_path.with_name(CAMERAS_FILE)))
    app = create_app(ApiContext(config, live, channels.status_path, channels.control))

    class Server(uvicorn.Server):
        """uvicorn's server without its signal handlers (the child base owns SIGTERM)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    server = Server(uvicorn.Config(app, host=config.api.bind, port=config.api.port,
                                   log_config=None, access_log=False, lifespan="off",
                                   timeout_graceful_shutdown=1))
    beating = threading.Thread(target=_beat, args=(ctx, server), name="heartbeat", daemon=True)
    beating.start()
    try:
        server.run()
    except SystemExit:
        if server.started:
            raise
        # uvicorn exits when it cannot listen: the address was taken after the start-up
        # checks, and restarting cannot help
        log.error("the API cannot listen on %s:%d (see above)", config.api.bind, config.api.port)
        raise SystemExit(EXIT_CONFIG) from None
    finally:
        live.stop()
        app.state.services.close()


def _beat(ctx: ChildContext, server: Any) -> None:
    while not ctx.stopping():
        if server.started and not ctx.ready_event.is_set():
            log.info("API and review page on http://%s:%d/", server.config.host,
                     server.config.port)
            ctx.ready()
        ctx.beat()
        ctx.stop_event.wait(0.5)
    server.should_exit = True
