"""`facewatch zmq keygen DIR`: the CURVE key pairs that secure the daemon's ZeroMQ socket."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from facewatch.cli.common import without_options
from facewatch.cli.output import emit
from facewatch.errors import BadInputError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    # Only the common options that apply here: this command loads no models.
    common = without_options(common, "--models", "--threads")
    z = sub.add_parser("zmq", help="ZeroMQ CURVE keys for outputs.zmq.curve")
    zsub = z.add_subparsers(dest="zmq_command", metavar="ACTION", required=True)
    keygen = zsub.add_parser(
        "keygen", parents=[common],
        help="write a new CURVE key pair: DIR/NAME.key (public, to hand out) and "
             "DIR/NAME.key_secret (0600, to keep)",
        description="Write a new ZeroMQ CURVE key pair.  For the daemon: `keygen /etc/facewatch/zmq` "
                    "and set outputs.zmq.curve.secret_key_file to server.key_secret; clients get "
                    "server.key.  For a client allowed through authorized_keys: `keygen DIR --name "
                    "NAME` and copy NAME.key into that folder.")
    keygen.add_argument("dir", type=Path, metavar="DIR", help="folder for the key files (created 0700)")
    keygen.add_argument("--name", default="server", help="file name stem (default: server)")
    keygen.set_defaults(handler=_keygen)


def _keygen(args: argparse.Namespace) -> int:
    from facewatch.publishers.zmq import write_keypair

    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", args.name) or args.name.startswith("."):
        raise BadInputError(f"--name {args.name!r}: use 1-64 of letters, digits, _ . - "
                            f"(not starting with .)")
    for existing in (args.dir / f"{args.name}.key", args.dir / f"{args.name}.key_secret"):
        if existing.exists():
            raise BadInputError(f"{existing} already exists; keys are never overwritten "
                                f"(choose another --name or remove it)")
    try:
        public, secret = write_keypair(args.dir, args.name)
    except OSError as exc:
        raise BadInputError(f"{args.dir}: cannot write the keys ({exc.strerror})") from None
    emit(args.json, {"public_key_file": str(public), "secret_key_file": str(secret)},
         [f"public key (give it to clients, e.g. tail --curve-server-key): {public}",
          f"key pair (keep it private; outputs.zmq.curve.secret_key_file):  {secret}"])
    return 0
