"""`facewatch run --config FILE`: the daemon (what the systemd unit starts)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", parents=[common], help="run the daemon (cameras → events)")
    p.add_argument("--config", type=Path, required=True, metavar="FILE", help="daemon config YAML")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from facewatch.supervisor.preflight import preflight
    from facewatch.supervisor.supervisor import Supervisor

    config = preflight(args.config)
    logging.getLogger().setLevel(config.logging.numeric_level)
    return Supervisor(config, args.config).run()
