"""`facewatch models fetch|list`."""

from __future__ import annotations

import argparse
from pathlib import Path

from facewatch.cli.common import add_command, store_from, without_options
from facewatch.cli.output import emit
from facewatch.engines.store import default_models_dir


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    common = without_options(common, "--threads")  # nothing here runs a model
    p = add_command(sub, "models", "fetch the public weights and build the ONNX models")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    f = add_command(msub, "fetch", "get the pinned weights (or import them with --from) and "
                                   "build the models", parents=[common])
    f.add_argument("--from", dest="from_dir", type=Path, metavar="DIR",
                   help="import the weight files from this directory instead of downloading")
    f.add_argument("--dest", type=Path, metavar="DIR",
                   help="where to put the models (default: --models, $FACEWATCH_MODELS, or "
                        "the per-user data dir)")
    f.add_argument("--mirror", metavar="URL",
                   help="fetch GitHub files from this mirror (URL/<owner>/<repo>/<commit>/<path>)")
    f.set_defaults(handler=_fetch)
    ls = add_command(msub, "list", "show the installed models", parents=[common])
    ls.set_defaults(handler=_list)


def _fetch(args: argparse.Namespace) -> int:
    from facewatch.engines.install import install_models

    dest = args.dest or args.models or default_models_dir()
    installed = install_models(dest, from_dir=args.from_dir, mirror=args.mirror)
    emit(args.json,
         {"dest": str(dest), "models": [{"name": m.name, "manifest": str(m.manifest_path),
                                         "sha256": m.sha256, "obtained": m.obtained}
                                        for m in installed]},
         [f"{m.name:24s} {m.sha256[:12]}  {m.obtained}" for m in installed]
         + [f"models are in {dest}"])
    return 0


def _list(args: argparse.Namespace) -> int:
    store = store_from(args)
    rows = []
    for name in store.names():
        m = store.manifest(name)
        rows.append({"name": name, "role": m.role, "file": m.file, "sha256": m.sha256,
                     "embedding_size": m.embedding_size, "licence": m.licence})
    emit(args.json, {"dir": str(store.root), "models": rows},
         [f"{r['name']:24s} {r['role']:11s} {r['file']}" for r in rows] or
         [f"no models in {store.root} (run `facewatch models fetch`)"])
    return 0
