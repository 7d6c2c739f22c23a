"""`facewatch run [--config FILE]`: the daemon (what the systemd unit starts)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from facewatch.cli.common import add_command, without_options


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    # The config says everything else (models, threads); the daemon prints no JSON.
    common = without_options(common, "--json", "--models", "--threads")
    p = add_command(sub, "run", "run the daemon: cameras in, events out, until stopped",
                    parents=[common])
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="daemon config YAML (default: $FACEWATCH_CONFIG, else "
                        "~/.config/facewatch/config.yaml, else /etc/facewatch/config.yaml)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from facewatch.config.resolve import default_config_path, user_config_path
    from facewatch.errors import ConfigError
    from facewatch.supervisor.preflight import preflight
    from facewatch.supervisor.supervisor import Supervisor

    path = args.config or default_config_path()
    if path is None:
        raise ConfigError(f"no config: give --config FILE, or make {user_config_path()} with "
                          f"`facewatch cameras add NAME URL`")
    config = preflight(path)
    logging.getLogger().setLevel(config.logging.numeric_level)
    return Supervisor(config, path).run()
