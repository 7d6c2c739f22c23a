"""The daemon config: shipped files valid, every error as `file:line: dotted.path: message`,
${ENV} substitution, secrets from files and systemd credentials, and the resolve step."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
from pydantic import BaseModel

from facewatch.cli.main import main
from facewatch.config import (
    DaemonConfig,
    load_config,
    load_resolved,
    resolve,
)
from facewatch.errors import EXIT_CONFIG, ConfigError
from facewatch.streams.settings import StreamSettings

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"

# Exactly the minimal form from the daemon issue.
ISSUE_MINIMAL = """\
cameras:
  - name: door                     # [a-z0-9_-], unique; used in MQTT topics
    url: rtsp://127.0.0.1:8554/door  # also file paths, file://, /dev/videoN
    fps: 10                        # analysis rate
    realtime: true                 # files: native speed like a camera; false = as fast as possible
    loop: false                    # files: start again at the end
gallery: /path/gallery.yaml
outputs:
  zmq: {bind: "tcp://127.0.0.1:5556"}
  mqtt: {host: 127.0.0.1, port: 1883}    # optional
  jsonl: /var/lib/facewatch/events.jsonl # optional
state_dir: /var/lib/facewatch
"""

BASE = """\
cameras:
  - name: door
    url: rtsp://127.0.0.1:8554/door
  - name: yard
    url: videos/yard.mp4
    loop: true
gallery: gallery.yaml
"""

ONE_LINE = re.compile(r"^[^\n]+$")


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={} if environ is None else environ)
    message = str(info.value)
    assert ONE_LINE.match(message), message
    assert info.value.exit_code == EXIT_CONFIG
    return message.removeprefix(f"{path}:")


# -- valid files ---------------------------------------------------------------------------------

def test_the_issue_minimal_form_validates(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ISSUE_MINIMAL), environ={})
    door = config.cameras[0]
    assert (door.name, door.url, door.fps, door.realtime, door.loop) == \
        ("door", "rtsp://127.0.0.1:8554/door", 10.0, True, False)
    assert config.outputs.zmq is not None and config.outputs.zmq.bind == "tcp://127.0.0.1:5556"
    assert config.outputs.mqtt is not None and config.outputs.mqtt.address == "127.0.0.1:1883"
    assert config.outputs.jsonl is not None
    assert config.outputs.jsonl.path == Path("/var/lib/facewatch/events.jsonl")
    assert config.state_dir == Path("/var/lib/facewatch")
    # The documented defaults.
    assert (config.inference.max_batch, config.inference.max_wait_ms, config.inference.min_face) == (8, 20, 40)
    t = config.tracking
    assert (t.high_score, t.low_score, t.match_iou, t.max_lost_s, t.min_hits, t.embed_every_n) == \
        (0.9, 0.7, 0.3, 1.5, 2, 5)
    assert (config.recognition.exit_margin, config.recognition.min_evidence) == (0.05, 2)
    assert config.outputs.mqtt.prefix == "facewatch" and config.outputs.mqtt.qos == 1
    assert config.outputs.mqtt.home_assistant is False
    assert config.outputs.mqtt.discovery_prefix == "homeassistant"
    assert (config.metrics.bind, config.metrics.port) == ("127.0.0.1", 9108)
    assert config.snapshots.max_files == 1000


@pytest.mark.parametrize("name", ["minimal.yaml", "example.yaml"])
def test_shipped_files_validate_and_resolve(name: str) -> None:
    config = load_resolved(CONFIG_DIR / name)
    assert config.is_resolved
    # Neither names a gallery or a state folder that may not exist (/var/lib/facewatch for a
    # user who is not root): both default, the gallery into the state folder.
    assert not config.written(("gallery",)) and not config.written(("state_dir",))
    assert config.gallery_path == Path(str(config.state_dir)) / "gallery.yaml"
    assert config.outputs.mqtt is None  # no broker that cannot be reached
    assert len(config.cameras) == (1 if name == "minimal.yaml" else 0)


def test_shipped_example_has_no_fake_cameras(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(CONFIG_DIR / "example.yaml"), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["valid"] is True and document["config"]["cameras"] == []
    assert document["gallery_problem"] is None and document["warnings"] == []


def _commented_block(text: str, first: str, stop: str, indent: str = "") -> str:
    """The commented-out YAML from the line starting with `first` up to `stop`, uncommented
    (`indent` + "#" removed) and indented as it was."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(stop))
    marker = indent + "#"
    return "".join(indent + line[len(marker):] + "\n" for line in lines[start:end]
                   if line.startswith(marker))


def test_the_examples_in_the_comments_are_valid(tmp_path: Path) -> None:
    """The example's cameras and MQTT broker are comments; uncommented, they are valid."""
    text = (CONFIG_DIR / "example.yaml").read_text()
    cameras = _commented_block(text, "#  - name: door", "cameras:")
    mqtt = _commented_block(text, "  # mqtt:", "  # One JSON", indent="  ")
    assert "rtsp://" in cameras and "/dev/video0" in cameras and "  host:" in mqtt
    config = load_config(write(tmp_path, f"cameras:\n{cameras}outputs:\n{mqtt}"),
                         environ={"DOOR_CAMERA_PASSWORD": "changeme"})
    assert config.camera_names == ("door", "garden", "replay")
    assert config.outputs.mqtt is not None and config.outputs.mqtt.home_assistant
    document = config.public_dict()
    # The camera password is never printed.
    assert "changeme" not in json.dumps(document)
    assert document["cameras"][0]["url"].startswith("rtsp://viewer:***@")


def test_every_field_has_a_description() -> None:
    def walk(model: type[BaseModel], path: str) -> list[str]:
        missing = []
        for name, field in model.model_fields.items():
            if not field.description:
                missing.append(f"{path}{name}")
            for arg in _models_in(field.annotation):
                missing += walk(arg, f"{path}{name}.")
        return missing

    assert walk(DaemonConfig, "") == []


def _models_in(annotation: object) -> list[type[BaseModel]]:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE), environ={})
    with pytest.raises(ValueError):
        config.cameras[0].fps = 3


def test_camera_maps_to_stream_settings(tmp_path: Path) -> None:
    text = BASE.replace("    url: rtsp://127.0.0.1:8554/door\n",
                        "    url: rtsp://127.0.0.1:8554/door\n    rtsp_transport: udp\n"
                        "    decoder: opencv\n    no_frame_timeout_s: 4\n    reconnect_initial_s: 0.5\n"
                        "    reconnect_max_s: 8\n    max_size: 640x360\n    fps: null\n")
    config = resolve(load_config(write(tmp_path, text), environ={}))
    settings = config.cameras[0].stream_settings()
    assert settings == StreamSettings(url="rtsp://127.0.0.1:8554/door", fps=None,
                                      rtsp_transport="udp", decoder="opencv",
                                      no_frame_timeout_s=4, reconnect_initial_s=0.5,
                                      reconnect_max_s=8, max_size=(640, 360))
    yard = config.cameras[1].stream_settings()
    assert yard.url == str(tmp_path / "videos" / "yard.mp4") and yard.loop


def test_camera_detection_settings_fall_back_to_inference(tmp_path: Path) -> None:
    text = BASE.replace("    loop: true\n", "    loop: true\n    detection:\n      motion: false\n"
                        "      min_face: 24\n") + "inference:\n  full_frame_every_s: 3\n"
    config = load_config(write(tmp_path, text), environ={})
    door, yard = (c.detection_settings(config.inference, i / 2) for i, c in enumerate(config.cameras))
    # the defaults a home camera gets: gating on, the whole frame every 5 s (here 3), 40 px
    assert (door.motion, door.full_frame_every_s, door.min_face, door.motion_threshold,
            door.phase) == (True, 3.0, 40.0, 15.0, 0.0)
    assert (yard.motion, yard.full_frame_every_s, yard.min_face, yard.phase) == (False, 3.0, 24.0, 0.5)
    defaults = load_config(write(tmp_path, BASE), environ={}).inference
    assert (defaults.motion, defaults.full_frame_every_s, defaults.motion_threshold) == (True, 5.0, 15.0)


def test_empty_sections_mean_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE + "inference:\ntracking:\noutputs:\n  zmq:\n"), environ={})
    assert config.inference.max_batch == 8
    assert config.outputs.zmq is not None and config.outputs.zmq.bind == "tcp://127.0.0.1:5556"


def test_outputs_can_be_switched_off(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE + "outputs: {zmq: false, mqtt: false}\n"), environ={})
    assert config.outputs.zmq is None and config.outputs.mqtt is None and config.outputs.jsonl is None


def test_allow_remote_permits_a_network_bind(tmp_path: Path) -> None:
    text = BASE + "outputs:\n  zmq: {bind: 'tcp://0.0.0.0:5556', allow_remote: true}\n"
    config = load_config(write(tmp_path, text), environ={})
    assert config.outputs.zmq is not None and config.outputs.zmq.allow_remote


@pytest.mark.parametrize("bind", ["tcp://127.0.0.1:5556", "tcp://127.0.0.2:*", "tcp://[::1]:5556",
                                  "tcp://localhost:5556", "ipc:///run/facewatch/events.sock"])
def test_local_binds_are_accepted(tmp_path: Path, bind: str) -> None:
    config = load_config(write(tmp_path, BASE + f"outputs:\n  zmq: {{bind: '{bind}'}}\n"), environ={})
    assert config.outputs.zmq is not None and config.outputs.zmq.bind == bind


def test_mqtt_tls_switch_and_port_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE + "outputs:\n  mqtt: {host: broker, tls: true}\n"), environ={})
    mqtt = config.outputs.mqtt
    assert mqtt is not None and mqtt.tls is not None and mqtt.port == 8883


# -- errors: file:line: dotted.path: message --------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    # unknown keys, with a suggestion
    (BASE.replace("    loop: true", "    lop: true"),
     r"^6: cameras\[1\]\.lop: unknown key 'lop' \(did you mean 'loop'\?"),
    (BASE + "outputs:\n  mqtt:\n    host: h\n    pasword: x\n",
     r"^11: outputs\.mqtt\.pasword: unknown key 'pasword' \(did you mean 'password'\?"),
    (BASE + "camera: []\n", r"^8: camera: unknown key 'camera' \(did you mean 'cameras'\?"),
    (BASE + "outputs: {mqtt: {hots: x}}\n",
     r"^8: outputs\.mqtt\.hots: unknown key 'hots' \(did you mean 'host'"),
    # wrong types
    (BASE.replace("    loop: true", "    fps: fast"),
     r"^6: cameras\[1\]\.fps: Input should be a valid number"),
    (BASE + "tracking:\n  min_hits: [1]\n", r"^9: tracking\.min_hits: Input should be a valid integer"),
    (BASE + "outputs: {mqtt: {host: h, port: 70000}}\n",
     r"^8: outputs\.mqtt\.port: Input should be less than or equal to 65535"),
    (BASE + "inference:\n  max_batch: 65\n",
     r"^9: inference\.max_batch: must be 1 to 64, got 65"),
    (BASE + "logging: {level: loud}\n",
     r"^8: logging\.level: Input should be 'debug', 'info', 'warning' or 'error'"),
    (BASE + "inference: [1]\n", r"^8: inference: Input should be a valid dictionary"),
    # bad URLs (the password is never echoed)
    (BASE.replace("videos/yard.mp4", "ftp://x/y"), r"^5: cameras\[1\]\.url: .*unsupported scheme 'ftp'"),
    (BASE.replace("videos/yard.mp4", "rtsp://admin:hunter2@/y"),
     r"^5: cameras\[1\]\.url: .*'rtsp://admin:\*\*\*@/y' has no host"),
    (BASE.replace("videos/yard.mp4", "'rtsp://host/a b'"), r"^5: cameras\[1\]\.url: .*whitespace"),
    (BASE.replace("videos/yard.mp4", "rtsp://h/y"), r"^6: cameras\[1\]\.loop: loop applies to files only"),
    # names
    (BASE.replace("name: yard", "name: door"),
     r"^4: cameras\[1\]\.name: 'door' is already the name of cameras\[0\]"),
    (BASE.replace("name: yard", "name: Yard Cam"), r"^4: cameras\[1\]\.name: 'Yard Cam': use 1-64 of a-z"),
    # missing and empty
    ("cameras:\n  - name: x\ngallery: g\n", r"^2: cameras\[0\]\.url: required, but missing"),
    (BASE.replace("gallery: gallery.yaml", "gallery: ''"), r"^7: gallery: an empty string is not a path"),
    # bind addresses
    (BASE + "outputs:\n  zmq:\n    bind: tcp://0.0.0.0:5556\n",
     (r"^10: outputs\.zmq\.bind: tcp://0\.0\.0\.0:5556 would publish events to the network: "
      r".*allow_remote: true")),
    (BASE + "outputs:\n  zmq:\n    bind: 'tcp://*:5556'\n",
     r"^10: outputs\.zmq\.bind: .*would publish events to the network"),
    (BASE + "outputs:\n  zmq:\n    bind: tcp://eth0:5556\n",
     r"^10: outputs\.zmq\.bind: .*would publish events to the network"),
    (BASE + "outputs:\n  zmq:\n    bind: udp://x\n",
     r"^10: outputs\.zmq\.bind: 'udp://x': unsupported transport"),
    (BASE + "outputs:\n  zmq:\n    bind: tcp://127.0.0.1:99999\n",
     r"^10: outputs\.zmq\.bind: .*port '99999' is not 1-65535"),
    (BASE + "metrics: {bind: everywhere}\n", r"^8: metrics\.bind: 'everywhere' is not an IP address"),
    (BASE.replace("    loop: true\n", "    loop: true\n    detection:\n      min_face: 5\n"),
     r"^8: cameras\[1\]\.detection\.min_face: must be 12 to 4096 pixels, got 5"),
    (BASE.replace("    loop: true\n", "    loop: true\n    detection: {motoin: false}\n"),
     r"^7: cameras\[1\]\.detection\.motoin: unknown key"),
    (BASE + "inference:\n  full_frame_every_s: -1\n",
     r"^9: inference\.full_frame_every_s: must be 0 \(every frame\) to 3600 s, got -1"),
    # cross-field rules
    (BASE + "tracking:\n  low_score: 0.95\n",
     r"^9: tracking\.low_score: must be in \(0, high_score = 0\.9\], got 0\.95"),
    (BASE + "inference:\n  precision: fp16\n", r"^9: inference\.precision: fp16 needs backend: tensorrt"),
    (BASE + "outputs:\n  mqtt: {host: h, password: x}\n",
     r"^9: outputs\.mqtt\.password: a password needs a username"),
    (BASE + "outputs:\n  mqtt: {host: h, tls: {cert: c.pem}}\n",
     r"^9: outputs\.mqtt\.tls\.key: cert and key go together"),
    (BASE + "outputs:\n  mqtt: {host: 'mqtt://h'}\n", r"^9: outputs\.mqtt\.host: give the host name only"),
    (BASE + "outputs:\n  mqtt: {host: h, prefix: 'a/+/b'}\n",
     r"^9: outputs\.mqtt\.prefix: must not contain \+, #"),
    # file level
    ("", r"^ the file is empty"),
    ("- a\n", r"^1: top level: expected a mapping"),
    ("cameras: [\n", r"^2: malformed YAML"),
    (BASE + "1: 2\n", r"^8: 1: unknown key '1'"),
    (BASE + "version: 2\n", r"^8: version: Input should be 1"),
])
def test_errors_name_the_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    message = error_of(tmp_path, text)
    assert re.search(expected, message), message
    assert "hunter2" not in message


@pytest.mark.parametrize("text", ["!!float ", "cameras: !!int\n", "a: !!timestamp x\n", "\x1f",
                                  "a: 1\na: 2\n", "x: &a [*a]\n"])
def test_odd_yaml_is_a_config_error(tmp_path: Path, text: str) -> None:
    message = error_of(tmp_path, text)
    assert message.split(":")[0].isdigit() or message.startswith(" ")


def test_error_messages_start_with_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("name: yard", "name: door"))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}:4: cameras\[1\]\.name: "):
        load_config(path, environ={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.yaml")


# -- ${ENV} substitution ------------------------------------------------------------------------

def test_env_substitution_in_strings(tmp_path: Path) -> None:
    text = BASE.replace("rtsp://127.0.0.1:8554/door", "rtsp://viewer:${CAM_PW}@${CAM_HOST:-10.0.0.9}/door") + \
        "outputs:\n  mqtt:\n    host: ${MQTT_HOST}\n    port: ${MQTT_PORT:-1884}\n" \
        "    username: fw\n    password: ${MQTT_PASSWORD}\n    prefix: 'cost$$x'\n" \
        "    discovery_prefix: 'ha$${B}'\n"
    config = load_config(write(tmp_path, text),
                         environ={"CAM_PW": "p@ss:w}rd", "MQTT_HOST": "broker", "MQTT_PASSWORD": "s3cret"})
    assert config.cameras[0].url == "rtsp://viewer:p@ss:w}rd@10.0.0.9/door"
    mqtt = config.outputs.mqtt
    assert mqtt is not None
    assert (mqtt.host, mqtt.port) == ("broker", 1884)
    assert mqtt.password is not None and mqtt.password.get_secret_value() == "s3cret"
    assert mqtt.prefix == "cost$$x"  # a bare $ is left alone
    assert mqtt.discovery_prefix == "ha${B}"  # $${ is a literal ${
    assert "s3cret" not in repr(config) and "s3cret" not in json.dumps(config.public_dict())


def test_unset_variable_is_an_error_naming_the_field(tmp_path: Path) -> None:
    text = BASE + "outputs:\n  mqtt:\n    host: h\n    username: u\n    password: ${MQTT_PASSWORD}\n"
    message = error_of(tmp_path, text)
    assert message == ("12: outputs.mqtt.password: environment variable MQTT_PASSWORD is not set "
                       "(write ${MQTT_PASSWORD:-default} to give a default)")


def test_default_applies_to_empty_variables_too(tmp_path: Path) -> None:
    text = BASE + "outputs:\n  mqtt: {host: '${H:-fallback}'}\n"
    config = load_config(write(tmp_path, text), environ={"H": ""})
    assert config.outputs.mqtt is not None and config.outputs.mqtt.host == "fallback"


def test_malformed_reference(tmp_path: Path) -> None:
    message = error_of(tmp_path, BASE.replace("gallery: gallery.yaml", "gallery: '${not valid}'"))
    assert message.startswith("7: gallery: malformed ${...} reference")


def test_substituted_values_are_validated(tmp_path: Path) -> None:
    text = BASE + "outputs:\n  mqtt: {host: h, port: '${PORT}'}\n"
    message = error_of(tmp_path, text, {"PORT": "http"})
    assert message.startswith("9: outputs.mqtt.port: Input should be a valid integer")


# -- secrets from files ---------------------------------------------------------------------------

MQTT_USER = BASE + "outputs:\n  mqtt:\n    host: h\n    username: fw\n"


def test_password_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "mqtt.pass").write_text("from-file\n")
    config = load_resolved(write(tmp_path, MQTT_USER + "    password_file: secrets/mqtt.pass\n"))
    mqtt = config.outputs.mqtt
    assert mqtt is not None and mqtt.password is not None
    assert mqtt.password.get_secret_value() == "from-file"
    assert mqtt.password_file == tmp_path / "secrets" / "mqtt.pass"


def test_password_from_systemd_credentials(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt_password").write_text("from-credential")
    config = load_config(write(tmp_path, MQTT_USER + "    password: ${MQTT_PASSWORD:-}\n"), environ={})
    resolved = resolve(config, environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert resolved.outputs.mqtt is not None and resolved.outputs.mqtt.password is not None
    assert resolved.outputs.mqtt.password.get_secret_value() == "from-credential"
    # An inline password wins over the credential.
    inline = load_config(write(tmp_path, MQTT_USER + "    password: inline\n"), environ={})
    resolved = resolve(inline, environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert resolved.outputs.mqtt is not None and resolved.outputs.mqtt.password is not None
    assert resolved.outputs.mqtt.password.get_secret_value() == "inline"


def test_unreadable_password_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MQTT_USER + "    password_file: missing.pass\n"), environ={})
    with pytest.raises(ConfigError, match=rf"config.yaml:12: outputs\.mqtt\.password_file: "
                                          rf"{re.escape(str(tmp_path))}/missing.pass: no such file$"):
        resolve(config, environ={})
    (tmp_path / "empty.pass").write_text("\n")
    config = load_config(write(tmp_path, MQTT_USER + "    password_file: empty.pass\n"), environ={})
    with pytest.raises(ConfigError, match="is empty"):
        resolve(config, environ={})


def test_password_and_password_file_exclude_each_other(tmp_path: Path) -> None:
    message = error_of(tmp_path, MQTT_USER + "    password: a\n    password_file: b\n")
    assert message.startswith("13: outputs.mqtt.password_file: give password or password_file, not both")


# -- resolve ------------------------------------------------------------------------------------

def test_resolve_makes_paths_absolute_and_fills_defaults(tmp_path: Path) -> None:
    text = BASE.replace("gallery: gallery.yaml", "gallery: people/gallery.yaml") + \
        "outputs: {jsonl: out/events.jsonl}\ninference: {models_dir: models}\n"
    config = load_config(write(tmp_path, text), environ={})
    assert config.gallery == Path("people/gallery.yaml")  # validation leaves paths alone
    resolved = resolve(config, environ={"STATE_DIRECTORY": "/var/lib/fw:/var/lib/other"})
    assert resolved.gallery == tmp_path / "people" / "gallery.yaml"
    assert resolved.state_dir == Path("/var/lib/fw")
    assert resolved.snapshots.dir == Path("/var/lib/fw/snapshots")
    assert resolved.inference.models_dir == tmp_path / "models"
    assert resolved.outputs.jsonl is not None
    assert resolved.outputs.jsonl.path == tmp_path / "out" / "events.jsonl"
    assert resolved.cameras[0].url == "rtsp://127.0.0.1:8554/door"
    assert resolved.cameras[1].url == str(tmp_path / "videos" / "yard.mp4")
    assert resolve(resolved) is resolved
    assert not config.is_resolved and resolved.is_resolved


def test_explicit_state_dir_wins(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE + "state_dir: state\n"), environ={})
    resolved = resolve(config, environ={"STATE_DIRECTORY": "/var/lib/fw"})
    assert resolved.state_dir == tmp_path / "state"


def test_resolve_does_not_touch_the_gallery_or_the_network(tmp_path: Path) -> None:
    # Nothing named in the file exists, and the broker name does not resolve: still valid.
    text = BASE + "outputs:\n  mqtt: {host: broker.invalid}\n  jsonl: /nonexistent/dir/e.jsonl\n"
    resolved = load_resolved(write(tmp_path, text))
    assert resolved.is_resolved
    assert not (tmp_path / "gallery.yaml").exists()


# -- `facewatch config check` -------------------------------------------------------------------

def test_config_check_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, BASE, "good.yaml")
    assert main(["config", "check", str(good)]) == 0
    out = capsys.readouterr()
    assert out.out.startswith(f"{good}: valid") and out.err == ""

    bad = write(tmp_path, BASE.replace("name: yard", "name: door"), "bad.yaml")
    assert main(["config", "check", str(bad)]) == EXIT_CONFIG
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == (f"facewatch: error: {bad}:4: cameras[1].name: 'door' is already the name "
                       f"of cameras[0]; names must be unique\n")

    assert main(["config", "check", str(bad), "--json"]) == EXIT_CONFIG
    document = json.loads(capsys.readouterr().out)
    assert document["exit_code"] == EXIT_CONFIG and f"{bad}:4: cameras[1].name" in document["error"]


@pytest.mark.parametrize("text", ["cameras: []\n", "cameras:\n", "version: 1\n",
                                  "cameras:\n  - {name: x, url: /a.mp4}\n"])
def test_no_cameras_and_no_gallery_are_valid(tmp_path: Path, text: str) -> None:
    """A fresh install has neither: the daemon waits for `facewatch cameras add`, and with no
    gallery every face is unknown (the gallery defaults into the state folder)."""
    config = load_resolved(write(tmp_path, text + "state_dir: st\n"))
    assert config.camera_names == (() if "name: x" not in text else ("x",))
    assert config.gallery_path == tmp_path / "st" / "gallery.yaml"


def test_config_check_tells_about_the_gallery(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No gallery yet and nobody in it are information (that is how the daemon starts); a
    broken gallery, which `run` refuses, is a warning."""
    config = write(tmp_path, BASE, "config.yaml")
    gallery = tmp_path / "gallery.yaml"
    assert not gallery.exists()
    assert main(["config", "check", str(config), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["gallery_state"], document["gallery_problem"], document["warnings"]) == \
        ("missing", None, [])
    assert main(["config", "check", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"  gallery: {gallery}  (not there yet: every face is unknown" in out
    assert "warning" not in out
    gallery.write_text("people:\n  - id: ada\n    images: [nobody.jpg]\n")
    assert main(["config", "check", str(config)]) == 0
    warnings = [x for x in capsys.readouterr().out.splitlines() if x.startswith("  warning:")]
    assert len(warnings) == 1 and "gallery:" in warnings[0] and "nobody.jpg" in warnings[0]
    gallery.write_text("people: []\n")
    assert main(["config", "check", str(config), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["gallery_state"], document["gallery_problem"]) == ("empty", None)


def test_config_check_as_a_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = write(tmp_path, BASE + "outputs: {zmq: {bind: 'tcp://0.0.0.0:1'}}\n")
    run = subprocess.run([sys.executable, "-m", "facewatch", "config", "check", str(bad)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == EXIT_CONFIG
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"facewatch: error: {bad}:8: outputs.zmq.bind: ")


def test_secret_file_permissions_are_not_changed(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt.pass"
    secret.write_text("x")
    secret.chmod(0o640)
    load_resolved(write(tmp_path, MQTT_USER + "    password_file: mqtt.pass\n"))
    assert stat.S_IMODE(secret.stat().st_mode) == 0o640
