"""The `facewatch` command: one console script, one subcommand per job.

Each subcommand lives in its own module with `register(subparsers, common)`; `main` only parses,
sets up logging and turns user errors into one line and an exit code.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from facewatch import __version__
from facewatch.errors import EXIT_BAD_INPUT, EXIT_FAILURE, FacewatchError
from facewatch.printable import printable
from facewatch.progress import set_quiet
from facewatch.redact import install_filter, redact, route_stderr

_COMMAND_MODULES = ("models", "oneshot", "gallery", "cameras", "faces", "clusters", "evaluate",
                    "bench", "doctor", "config_check", "tail", "zmq_keys", "run", "calibrate",
                    "tensorrt")

DESCRIPTION = ("Real-time face recognition: cameras in, who-is-where events out (ZeroMQ, MQTT, "
               "JSON lines).")
EPILOG = """first steps:
  facewatch models fetch                 get and build the models
  facewatch cameras add door URL         add a camera (RTSP URL, video file or /dev/videoN)
  facewatch run                          run the daemon (or install the service: systemd/install.sh)
  facewatch clusters list                the people it has seen, grouped
  facewatch clusters assign G --person ID   name one; the next sighting is recognised

`facewatch COMMAND --help` describes each command."""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true",
                        help="print exactly one JSON document on stdout (logs go to stderr)")
    common.add_argument("--models", type=Path, metavar="DIR",
                        help="models directory (default: $FACEWATCH_MODELS or the per-user data dir)")
    common.add_argument("--threads", type=int, default=2, metavar="N",
                        help="ONNX Runtime intra-op threads per model (default: 2)")
    common.add_argument("-v", "--verbose", action="store_true", help="log debug details")

    parser = argparse.ArgumentParser(prog="facewatch", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"facewatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(f"facewatch.cli.{name}").register(sub, common)
    _describe(parser)
    return parser


def _describe(parser: argparse.ArgumentParser) -> None:
    """Every command's --help starts with the one line its parent's list shows for it."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, child in action.choices.items():
            text = helps.get(name)
            if child.description is None and text:
                child.description = text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")
            _describe(child)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    wants_json = "--json" in argv
    args = parser.parse_args(argv)  # argparse exits 2 with usage on bad arguments
    set_quiet(bool(getattr(args, "json", False)))  # no progress bars around a JSON answer
    # The daemon's stderr carries what its children and their C libraries (FFmpeg, OpenCV,
    # GStreamer) print; every line of it is redacted on the way out (facewatch.redact).
    restore_stderr = route_stderr() if args.command == "run" else None
    if args.command == "run":
        # Everything the daemon and its children create (snapshots, the outbox, gallery caches,
        # metrics files, sockets) is private: 0600 files in 0700 folders, as the unit's UMask=
        # does under systemd, also when run by hand.  Explicit modes remain where files are made.
        os.umask(0o077)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # On the root's handlers, which the daemon's supervisor also hands its children's records.
    install_filter(logging.getLogger().handlers)
    try:
        return int(args.handler(args) or 0)
    except FacewatchError as exc:
        return _fail(str(exc), exc.exit_code, wants_json)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_FAILURE, wants_json)
    finally:
        if restore_stderr is not None:
            restore_stderr()


def _fail(message: str, code: int, wants_json: bool) -> int:
    # one line, whatever the message held, with no control character reaching the terminal
    line = printable(redact(" ".join(message.split())))
    sys.stderr.write(f"facewatch: error: {line}\n")
    if wants_json:
        sys.stdout.write(json.dumps({"error": line, "exit_code": code}) + "\n")
    return code if code else EXIT_BAD_INPUT
