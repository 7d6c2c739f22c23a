"""The step after validation: everything that depends on the machine rather than the file.

`resolve()` makes relative paths absolute against the config file's folder, fills the folders
that default to systemd's `$STATE_DIRECTORY` (or the per-user ones), and reads secrets from
`password_file` or `$CREDENTIALS_DIRECTORY`, and checks that the TLS and CURVE key files load.
It returns a new frozen `DaemonConfig`; the validated one is left as it was.  It does not read
the gallery, probe devices or open sockets.

Every password it sees (the MQTT one, those in camera URLs) is handed to
`facewatch.redact.remember`, so that no log line of this process shows it, whatever prints it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import platformdirs
from pydantic import SecretStr

from facewatch import redact
from facewatch.config.api import API_TOKEN_CREDENTIAL, MIN_TOKEN_CHARS, ApiConfig
from facewatch.config.daemon import DaemonConfig
from facewatch.config.mqtt import MQTT_PASSWORD_CREDENTIAL, MqttOutput, TlsFileError
from facewatch.config.outputs import ZmqOutput, is_loopback_host
from facewatch.errors import ConfigError
from facewatch.streams.urls import SourceKind, url_secrets
from facewatch.yamlfile import Location, dotted, read_small_text

MODELS_ENV = "FACEWATCH_MODELS"  # as facewatch.engines.store
CONFIG_ENV = "FACEWATCH_CONFIG"
MAX_SECRET_BYTES = 64 * 1024
# The service's config, as systemd/install.sh writes it and the unit starts it.
SERVICE_CONFIG = Path("/etc/facewatch/config.yaml")
# The gallery when the config names none: in the state folder, which the service may write
# (its API and `facewatch clusters assign` add people there; /etc is read-only to the unit).
DEFAULT_GALLERY_NAME = "gallery.yaml"


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the daemon keeps its state when the config does not say: systemd's
    `$STATE_DIRECTORY` (the unit's StateDirectory=, /var/lib/facewatch), else the per-user
    state folder (~/.local/state/facewatch)."""
    env = os.environ if environ is None else environ
    if env.get("STATE_DIRECTORY"):
        # systemd sets it, colon-separated when the unit names several; the first is ours.
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    return platformdirs.user_state_path("facewatch")


def user_config_path() -> Path:
    """The per-user config, which `facewatch cameras add` creates when there is none."""
    return platformdirs.user_config_path("facewatch") / "config.yaml"


def default_config_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """The config a command uses when none is given: `$FACEWATCH_CONFIG`, else the per-user
    one (~/.config/facewatch/config.yaml), else the service's (/etc/facewatch/config.yaml),
    whichever exists first; None if there is none."""
    env = os.environ if environ is None else environ
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    for candidate in (user_config_path(), SERVICE_CONFIG):
        if candidate.is_file():
            return candidate
    return None


def gallery_cache_dir(state_dir: Path) -> Path:
    """Where the daemon with this state folder keeps its gallery's analyses and index; the
    one-shot commands use the same folder, so building first speeds up the daemon's start."""
    return state_dir / "gallery"


def resolve(config: DaemonConfig, *, base_dir: Path | None = None,
            environ: Mapping[str, str] | None = None) -> DaemonConfig:
    """`config` ready to run; raises `ConfigError` (one line) if a secret cannot be read."""
    if config.is_resolved:
        return config
    env = os.environ if environ is None else environ
    if base_dir is None:
        base_dir = config.source.parent if config.source is not None else Path.cwd()
    base = base_dir.expanduser().absolute()

    def absolute(path: Path) -> Path:
        path = path.expanduser()
        return path if path.is_absolute() else base / path

    cameras = tuple(
        c.model_copy(update={"url": str(absolute(Path(c.url)))})
        if c.kind is SourceKind.FILE and not c.url.startswith("file:") else c
        for c in config.cameras)
    for camera in cameras:
        if camera.kind in (SourceKind.RTSP, SourceKind.HTTP):
            for secret in url_secrets(camera.url):
                redact.remember(secret)

    state_dir = absolute(config.state_dir) if config.state_dir is not None \
        else default_state_dir(env)

    snapshots = config.snapshots.model_copy(update={
        "dir": absolute(config.snapshots.dir) if config.snapshots.dir else state_dir / "snapshots"})

    inference = config.inference
    if inference.models_dir is not None:
        models_dir = absolute(inference.models_dir)
    elif env.get(MODELS_ENV):
        models_dir = Path(env[MODELS_ENV]).expanduser()
    else:
        models_dir = platformdirs.user_data_path("facewatch") / "models"
    inference = inference.model_copy(update={"models_dir": models_dir})

    outputs = config.outputs
    if outputs.jsonl is not None:
        outputs = outputs.model_copy(update={
            "jsonl": outputs.jsonl.model_copy(update={"path": absolute(outputs.jsonl.path)})})
    if outputs.mqtt is not None:
        outputs = outputs.model_copy(update={
            "mqtt": _resolve_mqtt(config, outputs.mqtt, absolute, env)})
    if outputs.zmq is not None and outputs.zmq.curve is not None:
        outputs = outputs.model_copy(update={"zmq": _resolve_curve(config, outputs.zmq, absolute)})

    api = _resolve_api(config, absolute, env)

    gallery = absolute(config.gallery) if config.gallery is not None \
        else state_dir / DEFAULT_GALLERY_NAME
    resolved = config.model_copy(update={
        "cameras": cameras, "gallery": gallery, "state_dir": state_dir,
        "snapshots": snapshots, "inference": inference, "outputs": outputs, "api": api})
    resolved._resolved = True
    return resolved


def _resolve_mqtt(config: DaemonConfig, mqtt: MqttOutput, absolute: Callable[[Path], Path],
                  env: Mapping[str, str]) -> MqttOutput:
    update: dict[str, object] = {}
    if mqtt.tls is not None:
        tls = mqtt.tls.model_copy(update={
            name: absolute(value) for name in ("ca", "cert", "key")
            if (value := getattr(mqtt.tls, name)) is not None})
        try:
            tls.ssl_context()  # the files load: a typo fails `config check`, not the publisher
        except TlsFileError as exc:
            loc = ("outputs", "mqtt", "tls", exc.field)
            raise ConfigError(" ".join(f"{config.where(loc)}: {dotted(loc)}: {exc}".split())) from None
        update["tls"] = tls
    if mqtt.password_file is not None:
        path = absolute(mqtt.password_file)
        update["password_file"] = path
        update["password"] = read_secret(path, config, ("outputs", "mqtt", "password_file"))
    elif mqtt.password is None and mqtt.username is not None and env.get("CREDENTIALS_DIRECTORY"):
        path = Path(env["CREDENTIALS_DIRECTORY"]) / MQTT_PASSWORD_CREDENTIAL
        if path.is_file():
            update["password"] = read_secret(path, config, ("outputs", "mqtt", "password"))
    password = update.get("password", mqtt.password)
    if isinstance(password, SecretStr):
        redact.remember(password.get_secret_value())
    return mqtt.model_copy(update=update) if update else mqtt


def _resolve_api(config: DaemonConfig, absolute: Callable[[Path], Path],
                 env: Mapping[str, str]) -> ApiConfig:
    api = config.api
    token = None
    update: dict[str, object] = {}
    if api.token_file is not None:
        update["token_file"] = path = absolute(api.token_file)
        token = read_secret(path, config, ("api", "token_file"))
    elif env.get("CREDENTIALS_DIRECTORY"):
        path = Path(env["CREDENTIALS_DIRECTORY"]) / API_TOKEN_CREDENTIAL
        if path.is_file():
            token = read_secret(path, config, ("api", "token_file"))
    if token is not None:
        if len(token.get_secret_value().strip()) < MIN_TOKEN_CHARS:
            loc = ("api", "token_file")
            raise ConfigError(f"{config.where(loc)}: api.token_file: the token is shorter than "
                              f"{MIN_TOKEN_CHARS} characters; make one with e.g. `openssl rand "
                              f"-hex 24`")
        redact.remember(token.get_secret_value())
        update["token"] = token
    elif api.enabled and not is_loopback_host(api.bind):
        loc = ("api", "bind")
        raise ConfigError(" ".join(f"{config.where(loc)}: api.bind: {api.bind} would serve faces "
                                   f"and gallery edits to the network without a token: set "
                                   f"api.token_file (or bind 127.0.0.1)".split()))
    return api.model_copy(update=update) if update else api


def _resolve_curve(config: DaemonConfig, zmq: ZmqOutput, absolute: Callable[[Path], Path]) -> ZmqOutput:
    from facewatch.publishers.zmq import CurveKeyError, load_authorized_keys, load_keypair

    assert zmq.curve is not None
    curve = zmq.curve.model_copy(update={
        "secret_key_file": absolute(zmq.curve.secret_key_file),
        "authorized_keys": absolute(zmq.curve.authorized_keys) if zmq.curve.authorized_keys else None})
    try:
        load_keypair(curve.secret_key_file)
        if curve.authorized_keys is not None:
            load_authorized_keys(curve.authorized_keys)
    except CurveKeyError as exc:
        loc = ("outputs", "zmq", "curve", exc.field)
        raise ConfigError(" ".join(f"{config.where(loc)}: {dotted(loc)}: {exc}".split())) from None
    return zmq.model_copy(update={"curve": curve})


def read_secret(path: Path, config: DaemonConfig, loc: Location) -> SecretStr:
    """The secret in `path`: its text without the trailing newline; never logged or shown."""
    try:
        return _read_secret(path)
    except ValueError as exc:
        raise ConfigError(" ".join(f"{config.where(loc)}: {dotted(loc)}: {exc}".split())) from None


def _read_secret(path: Path) -> SecretStr:
    text = read_small_text(path, MAX_SECRET_BYTES, "a secret", regular_only=True)
    secret = text.removesuffix("\n").removesuffix("\r")
    if not secret:
        raise ValueError(f"{path} is empty")
    return SecretStr(secret)


def check_state_dir(config: DaemonConfig) -> None:
    """ConfigError (one line) unless the resolved `state_dir` is a folder facewatch can write,
    or can create: what `facewatch run` needs before it starts anything, and what `facewatch
    config check` reports.  Separate from `resolve()`, which commands that never write there
    (`tensorrt build`, `calibrate`) also call, possibly as another user."""
    assert config.state_dir is not None, "check a resolved config"
    state_dir = Path(config.state_dir)
    problem = unusable_folder(state_dir)
    if problem is None:
        return
    if config.written(("state_dir",)):
        origin = f"{config.where(('state_dir',))}: state_dir"
    elif config.source is not None:
        origin = f"{config.source}: state_dir (not set; the default)"
    else:
        origin = "state_dir (not set; the default)"
    raise ConfigError(" ".join(f"{origin}: {state_dir}: {problem}; facewatch keeps its outbox, "
                               f"snapshots and gallery cache there, so give a folder it can "
                               f"create and write".split()))


def unusable_folder(path: Path) -> str | None:
    """Why files could not be written in `path`, creating it first if it is missing; None if
    they can.  Tried for real (a temporary entry made and removed where `path`, or the nearest
    folder above it that exists, is), since permission bits say little to root and nothing
    about /proc, read-only mounts or a full inode table."""
    existing = path
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder" if existing != path else "not a folder"
    try:
        if existing == path:
            fd, probe = tempfile.mkstemp(dir=path, prefix=".facewatch-probe-")
            os.close(fd)
            os.unlink(probe)
        else:
            os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".facewatch-probe-"))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return f"cannot write in it ({reason})" if existing == path else \
            f"cannot be created in {existing} ({reason})"
    return None
