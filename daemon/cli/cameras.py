"""`facewatch cameras add|remove|list`: the daemon's cameras without editing YAML by hand.

`add` probes the stream first (opens it and reads a frame), then edits the config keeping its
comments, saves it only if `facewatch config check` would accept it, and reloads the daemon
running that config (SIGHUP to the pid it recorded in its state folder).  With no config yet,
`add` makes one from the shipped example (`~/.config/facewatch/config.yaml`, or --config).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from facewatch.cli.common import add_command, without_options
from facewatch.cli.output import emit, warn

DEFAULT_PROBE_TIMEOUT_S = 15.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    common = without_options(common, "--models", "--threads")  # no model is loaded here
    p = add_command(sub, "cameras", "add, remove and list the daemon's cameras")
    csub = p.add_subparsers(dest="cameras_command", metavar="ACTION", required=True)

    a = add_command(csub, "add", "probe a stream, add it to the config and reload the daemon",
                    parents=[common])
    a.add_argument("name", metavar="NAME", help="a-z, 0-9, _ and -; used in event topics")
    a.add_argument("url", metavar="URL",
                   help="rtsp://user:pass@host/path, http(s)://..., a video file or /dev/videoN; "
                        "write a password as ${ENV_VAR} to keep it out of the file")
    a.add_argument("--fps", type=float, metavar="N",
                   help="frames per second analysed (default: the config's default, 5)")
    a.add_argument("--no-loop", dest="loop", action="store_false",
                   help="a video file: play it once (by default a file stands in for a camera "
                        "and starts again at its end)")
    a.add_argument("--no-probe", action="store_true",
                   help="add it without opening the stream first (a camera that is off now)")
    a.add_argument("--probe-timeout", type=float, default=DEFAULT_PROBE_TIMEOUT_S, metavar="S",
                   help=f"how long the probe waits for a frame (default: {DEFAULT_PROBE_TIMEOUT_S:g})")
    _config_option(a)
    a.set_defaults(handler=_add)

    r = add_command(csub, "remove", "remove a camera from the config and reload the daemon",
                    parents=[common])
    r.add_argument("name", metavar="NAME")
    _config_option(r)
    r.set_defaults(handler=_remove)

    ls = add_command(csub, "list", "show the config's cameras (passwords hidden)", parents=[common])
    _config_option(ls)
    ls.set_defaults(handler=_list)


def _config_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="the daemon's config (default: $FACEWATCH_CONFIG, else "
                        "~/.config/facewatch/config.yaml, else /etc/facewatch/config.yaml; "
                        "`add` creates the first from the example when none exists)")


def _config_path(args: argparse.Namespace, create: bool = False) -> Path:
    from facewatch.config.resolve import default_config_path, user_config_path
    from facewatch.errors import ConfigError

    path: Path | None = args.config or default_config_path()
    if path is None:
        if create:
            return user_config_path()
        raise ConfigError(f"no config: give --config FILE, or add a camera first (`facewatch "
                          f"cameras add NAME URL` makes {user_config_path()})")
    if not create and not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    return path


def _add(args: argparse.Namespace) -> int:
    from facewatch.config import check_state_dir, load_config, resolve
    from facewatch.config.daemon import DaemonConfig
    from facewatch.config.editing import append_list_item, example_text, list_items, read_config_text
    from facewatch.config.editing import save_config
    from facewatch.errors import BadInputError, ConfigError
    from facewatch.streams.probe import probe_stream
    from facewatch.streams.source import StreamError
    from facewatch.streams.urls import SourceKind, classify_url, redact_url

    path = _config_path(args, create=True)
    created = not path.exists()
    text = example_text() if created else read_config_text(path)
    if any(isinstance(c, dict) and c.get("name") == args.name
           for c in list_items(text, path, "cameras")):
        raise BadInputError(f"{path}: a camera named {args.name!r} is already there (remove it "
                            f"first with `facewatch cameras remove {args.name}`, or choose "
                            f"another name)")
    url = args.url
    if classify_url(url) is SourceKind.FILE and not url.startswith("file:"):
        # as the user means it: relative to where they are, not to the config's folder
        url = os.path.abspath(os.path.expanduser(url))
    entry: dict[str, Any] = {"name": args.name, "url": url}
    if args.fps is not None:
        entry["fps"] = int(args.fps) if float(args.fps).is_integer() else args.fps
    if classify_url(url) is SourceKind.FILE:
        entry["loop"] = bool(args.loop)
    if args.probe_timeout <= 0:
        raise BadInputError(f"--probe-timeout {args.probe_timeout:g}: must be > 0")
    probed: list[Any] = []

    def check(candidate: Path) -> DaemonConfig:
        config = resolve(load_config(candidate), base_dir=path.parent)
        check_state_dir(config)  # as `config check` and `run` do
        if not args.no_probe:
            camera = config.camera(args.name)
            try:
                probed.append(probe_stream(camera.stream_settings(), args.probe_timeout, args.name))
            except StreamError as exc:
                raise BadInputError(f"camera {args.name}: {exc.reason}; check the URL, user, "
                                    f"password and that the stream is H.264, H.265 or MJPEG "
                                    f"(--no-probe adds it anyway)") from None
        return config

    try:
        config = save_config(path, append_list_item(text, path, "cameras", entry), check)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (nothing was changed)") from None
    shown = redact_url(config.camera(args.name).url)
    size = f", {probed[0].width}x{probed[0].height}" if probed else ""
    lines = [f"{'created' if created else 'updated'} {path}: camera {args.name} ({shown}{size})"]
    reloaded = _reload(config, path, lines)
    emit(args.json, {"config": str(path), "created": created, "camera": args.name, "url": shown,
                     "probed": {"width": probed[0].width, "height": probed[0].height}
                     if probed else None, "reloaded": reloaded}, lines)
    return 0


def _remove(args: argparse.Namespace) -> int:
    from facewatch.config import check_state_dir, load_config, resolve
    from facewatch.config.daemon import DaemonConfig
    from facewatch.config.editing import list_items, read_config_text, remove_list_items
    from facewatch.config.editing import save_config
    from facewatch.errors import BadInputError

    path = _config_path(args)
    text = read_config_text(path)
    names = [c.get("name") for c in list_items(text, path, "cameras") if isinstance(c, dict)]
    if args.name not in names:
        raise BadInputError(f"{path}: no camera named {args.name!r} (there are: "
                            f"{', '.join(str(n) for n in names) or 'none'})")

    def check(candidate: Path) -> DaemonConfig:
        config = resolve(load_config(candidate), base_dir=path.parent)
        check_state_dir(config)
        return config

    new_text = remove_list_items(text, path, "cameras",
                                 lambda c: isinstance(c, dict) and c.get("name") == args.name)
    config = save_config(path, new_text, check)
    lines = [f"updated {path}: camera {args.name} removed"]
    reloaded = _reload(config, path, lines)
    emit(args.json, {"config": str(path), "removed": args.name, "reloaded": reloaded}, lines)
    return 0


def _list(args: argparse.Namespace) -> int:
    from facewatch.config import load_config, resolve
    from facewatch.supervisor.pidfile import find_daemon

    path = _config_path(args)
    config = resolve(load_config(path))
    public = config.public_dict()["cameras"]
    assert config.state_dir is not None
    daemon = find_daemon(Path(config.state_dir), path)
    rows = [{"name": c["name"], "url": c["url"], "enabled": c["enabled"], "fps": c["fps"]}
            for c in public]
    lines = [f"{r['name']:16s} {r['url']}" + ("" if r["enabled"] else "  (disabled)") for r in rows]
    lines = lines or [f"no cameras in {path} (add one: facewatch cameras add NAME URL)"]
    lines.append(f"daemon: running (pid {daemon.pid})" if daemon else "daemon: not running")
    emit(args.json, {"config": str(path), "cameras": rows,
                     "daemon_pid": daemon.pid if daemon else None}, lines)
    return 0


def _reload(config: Any, path: Path, lines: list[str]) -> bool:
    """SIGHUP to the daemon running `path`, if one is; says what happened in `lines`."""
    from facewatch.supervisor.pidfile import find_daemon, reload_daemon

    daemon = find_daemon(Path(config.state_dir), path)
    if daemon is None:
        lines.append("no daemon is running this config: it reads it when it starts")
        return False
    try:
        reload_daemon(daemon)
    except PermissionError:
        warn(f"the daemon (pid {daemon.pid}) is another user's: reload it with sudo, or "
             f"`systemctl reload facewatch`")
        return False
    except ProcessLookupError:
        lines.append("no daemon is running this config: it reads it when it starts")
        return False
    lines.append(f"reloaded the running daemon (pid {daemon.pid})")
    return True
