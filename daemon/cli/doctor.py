"""`facewatch doctor`: what this machine can run, and what is missing."""

from __future__ import annotations

import argparse
from typing import Any

from facewatch.cli.common import add_command, store_from, without_options
from facewatch.cli.output import emit
from facewatch.engines import catalog
from facewatch.errors import FacewatchError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = add_command(sub, "doctor",
                    "check backends, GStreamer and models; exit 1 if something needed is missing",
                    parents=[without_options(common, "--threads")])
    p.set_defaults(handler=_doctor)


def _onnxruntime() -> dict[str, Any]:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return {"ok": False, "problem": f"onnxruntime not importable ({exc})"}
    return {"ok": True, "version": ort.__version__, "providers": ort.get_available_providers()}


def _tensorrt() -> dict[str, Any]:
    try:
        from facewatch.engines.backends.tensorrt.cuda import gpu_problem
    except ImportError:
        return {"ok": False, "problem": "not built into this version"}
    problem = gpu_problem()
    return {"ok": problem is None, "problem": problem}


def _gstreamer() -> dict[str, Any]:
    from facewatch.streams.auto import gstreamer_problem
    from facewatch.streams.urls import SourceKind

    problems = {kind.value: gstreamer_problem(kind) for kind in SourceKind}
    version = None
    try:
        from gi.repository import Gst

        version = Gst.version_string()
    except (ImportError, ValueError):
        pass
    return {"ok": not any(problems.values()), "version": version,
            "problems": {k: v for k, v in problems.items() if v}}


def _models(args: argparse.Namespace) -> dict[str, Any]:
    store = store_from(args)
    found, problems = [], {}
    for name in store.names():
        try:
            from facewatch.engines.manifest import verify_model_file

            manifest = store.manifest(name)
            verify_model_file(manifest, store.manifest_path(name))
            found.append({"name": name, "role": manifest.role, "sha256": manifest.sha256})
        except FacewatchError as exc:
            problems[name] = str(exc)
    needed = [*catalog.MTCNN_NAMES.values(), catalog.DEFAULT_EMBEDDER]
    missing = [n for n in needed if n not in {m["name"] for m in found}]
    return {"ok": not missing and not problems, "dir": str(store.root), "found": found,
            "missing": missing, "problems": problems}


def _doctor(args: argparse.Namespace) -> int:
    report = {"onnxruntime": _onnxruntime(), "tensorrt": _tensorrt(), "gstreamer": _gstreamer(),
              "models": _models(args)}
    # TensorRT is optional and GStreamer has an OpenCV fallback: only these two are required.
    report["ok"] = report["onnxruntime"]["ok"] and report["models"]["ok"]
    lines = []
    ort = report["onnxruntime"]
    lines.append(f"onnxruntime  {'ok' if ort['ok'] else 'MISSING'}  "
                 f"{ort.get('version', '')} {', '.join(ort.get('providers', []))}")
    trt = report["tensorrt"]
    lines.append(f"tensorrt     {'ok' if trt['ok'] else 'unavailable'}  {trt.get('problem') or ''}")
    gst = report["gstreamer"]
    lines.append(f"gstreamer    {'ok' if gst['ok'] else 'partial'}  {gst.get('version') or ''}")
    lines += [f"  {kind}: {problem}" for kind, problem in gst["problems"].items()]
    m = report["models"]
    lines.append(f"models       {'ok' if m['ok'] else 'INCOMPLETE'}  in {m['dir']}")
    lines += [f"  {x['name']:24s} {x['role']}" for x in m["found"]]
    lines += [f"  missing: {n} (run `facewatch models fetch`)" for n in m["missing"]]
    lines += [f"  {n}: {p}" for n, p in m["problems"].items()]
    emit(args.json, report, lines)
    return 0 if report["ok"] else 1
