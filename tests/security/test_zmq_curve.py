"""ZeroMQ: loopback by default, and CURVE encryption with optional client authorisation.

Real sockets on 127.0.0.1: the daemon's publisher built from a resolved config, SUB sockets as
consumers would open them, and `facewatch tail` / `facewatch zmq keygen` as processes.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from facewatch.config import parse_config, resolve
from facewatch.events import CameraStatus, from_json
from facewatch.publishers import build_publishers
from facewatch.publishers.zmq import ZmqPublisher, load_keypair, load_public_key, write_keypair

REPO = Path(__file__).resolve().parents[2]


def facewatch(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "facewatch", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """server.key(_secret), alice.key(_secret) (authorised), mallory.key(_secret) (not)."""
    folder = tmp_path / "keys"
    for name in ("server", "alice", "mallory"):
        write_keypair(folder, name)
    (folder / "clients").mkdir()
    (folder / "clients" / "alice.key").write_bytes((folder / "alice.key").read_bytes())
    return folder


def publisher_from_config(tmp_path: Path, curve: str) -> ZmqPublisher:
    text = (f"cameras: [{{name: door, url: /a.mp4}}]\ngallery: g.yaml\n"
            f"outputs:\n  zmq:\n    bind: 'tcp://127.0.0.1:*'\n{textwrap.indent(curve, '    ')}")
    config = resolve(parse_config(text, tmp_path / "config.yaml", environ={}), environ={})
    (publisher,) = build_publishers(config)
    assert isinstance(publisher, ZmqPublisher)
    return publisher


class Publishing:
    """Publishes a camera.status event every 50 ms until closed (PUB keeps no history, and a
    CURVE handshake takes a moment: a subscriber that gets in receives the next ones)."""

    def __init__(self, publisher: ZmqPublisher) -> None:
        self.publisher = publisher
        publisher.start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        seq = 1
        while not self._stop.is_set():
            event = CameraStatus(camera="door", ts=time.time(), state="online", reason="ok")
            self.publisher.publish(event.stamped(seq, time.time()))
            seq += 1
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.publisher.stop()


@pytest.fixture
def publishing() -> Iterator[list[Publishing]]:
    running: list[Publishing] = []
    yield running
    for p in running:
        p.close()


def received(endpoint: str, *, server_key: bytes | None = None,
             client: tuple[bytes, bytes] | None = None, wait_s: float = 3.0) -> int:
    """How many events a SUB socket with these keys receives within `wait_s`."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = context.socket(zmq.SUB)
    try:
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        if server_key is not None:
            public, secret = client or zmq.curve_keypair()
            sub.setsockopt(zmq.CURVE_SERVERKEY, server_key)
            sub.setsockopt(zmq.CURVE_PUBLICKEY, public)
            sub.setsockopt(zmq.CURVE_SECRETKEY, secret)
        sub.connect(endpoint)
        count = 0
        deadline = time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0:
            if sub.poll(int(left * 1000)):
                topic, payload = sub.recv_multipart()
                assert topic == b"camera.status/door" and from_json(payload).camera == "door"
                count += 1
        return count
    finally:
        sub.close(0)
        context.term()


def test_the_default_socket_is_bound_to_loopback(tmp_path: Path) -> None:
    config = resolve(parse_config("cameras: [{name: door, url: /a.mp4}]\ngallery: g.yaml\n",
                                  tmp_path / "c.yaml", environ={}), environ={})
    assert config.outputs.zmq is not None and config.outputs.zmq.bind == "tcp://127.0.0.1:5556"
    assert config.outputs.zmq.curve is None


def test_curve_with_authorized_keys_admits_only_those_clients(tmp_path: Path, keys: Path,
                                                              publishing: list[Publishing]) -> None:
    publisher = publisher_from_config(
        tmp_path, f"curve:\n  secret_key_file: {keys / 'server.key_secret'}\n"
                  f"  authorized_keys: {keys / 'clients'}\n")
    publishing.append(Publishing(publisher))
    endpoint = publisher.endpoint
    server = load_public_key(keys / "server.key")
    alice = load_keypair(keys / "alice.key_secret")
    mallory = load_keypair(keys / "mallory.key_secret")
    assert received(endpoint, server_key=server, client=alice) > 0
    assert received(endpoint, server_key=server, client=mallory) == 0  # right server key, not listed
    assert received(endpoint) == 0  # no CURVE at all
    wrong_server = load_public_key(keys / "alice.key")
    assert received(endpoint, server_key=wrong_server, client=alice) == 0
    assert received(endpoint, server_key=server, client=alice) > 0  # still serving


def test_curve_without_authorized_keys_needs_only_the_server_key(tmp_path: Path, keys: Path,
                                                                 publishing: list[Publishing]) -> None:
    publisher = publisher_from_config(tmp_path, f"curve: {{secret_key_file: {keys / 'server.key_secret'}}}\n")
    publishing.append(Publishing(publisher))
    server = load_public_key(keys / "server.key")
    assert received(publisher.endpoint, server_key=server) > 0  # any key pair, the right server key
    assert received(publisher.endpoint) == 0


def test_tail_with_and_without_the_server_key(tmp_path: Path, keys: Path,
                                              publishing: list[Publishing]) -> None:
    publisher = publisher_from_config(
        tmp_path, f"curve:\n  secret_key_file: {keys / 'server.key_secret'}\n"
                  f"  authorized_keys: {keys / 'clients'}\n")
    publishing.append(Publishing(publisher))
    url = publisher.endpoint
    ok = facewatch("tail", "--zmq", url, "--curve-server-key", str(keys / "server.key"),
                   "--curve-client-key", str(keys / "alice.key_secret"), "--count", "2",
                   "--timeout", "30", "--json")
    assert ok.returncode == 0, ok.stderr
    assert [e["camera"] for e in json.loads(ok.stdout)] == ["door", "door"]

    plain = facewatch("tail", "--zmq", url, "--count", "1", "--timeout", "3", "--json")
    assert plain.returncode == 1 and json.loads(plain.stdout) == []
    assert "the daemon may require CURVE (give --curve-server-key)" in plain.stderr, plain.stderr

    stranger = facewatch("tail", "--zmq", url, "--curve-server-key", str(keys / "server.key"),
                         "--count", "1", "--timeout", "3", "--json")
    assert stranger.returncode == 1 and json.loads(stranger.stdout) == []
    assert "refused this client's CURVE key" in stranger.stderr, stranger.stderr


def test_keygen_writes_a_private_pair_and_never_overwrites(tmp_path: Path) -> None:
    folder = tmp_path / "etc" / "zmq"
    result = facewatch("zmq", "keygen", str(folder), "--json")
    assert result.returncode == 0, result.stderr
    files = json.loads(result.stdout)
    secret, public = Path(files["secret_key_file"]), Path(files["public_key_file"])
    assert (secret, public) == (folder / "server.key_secret", folder / "server.key")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    pair = load_keypair(secret)
    assert load_public_key(public) == pair[0] and "secret-key" not in public.read_text()
    assert zmq.curve_public(pair[1]) == pair[0]  # a real pair
    before = secret.read_bytes()
    again = facewatch("zmq", "keygen", str(folder))
    assert again.returncode == 2 and again.stderr.count("\n") == 1
    assert "already exists" in again.stderr and secret.read_bytes() == before
    bad = facewatch("zmq", "keygen", str(folder), "--name", "../x")
    assert bad.returncode == 2 and "--name" in bad.stderr


@pytest.mark.parametrize(("curve", "expected"), [
    ("{secret_key_file: nowhere.key_secret}",
     r"outputs\.zmq\.curve\.secret_key_file: \S*nowhere\.key_secret: no such file"),
    ("{secret_key_file: KEYS/server.key}",
     r"outputs\.zmq\.curve\.secret_key_file: \S*server\.key holds only a public key"),
    ("{secret_key_file: config.yaml}",
     r"outputs\.zmq\.curve\.secret_key_file: \S*config\.yaml: not a ZeroMQ certificate"),
    ("{secret_key_file: KEYS/server.key_secret, authorized_keys: KEYS/empty}",
     r"outputs\.zmq\.curve\.authorized_keys: \S*empty holds no \*\.key file"),
    ("{secret_key_file: KEYS/server.key_secret, authorized_keys: KEYS/missing}",
     r"outputs\.zmq\.curve\.authorized_keys: \S*missing: not a folder"),
    ("{secret_key: abc}", r"outputs\.zmq\.curve\.secret_key: unknown key 'secret_key'"),
], ids=["missing", "public only", "not a certificate", "no clients", "no folder", "inline key"])
def test_unusable_curve_settings_exit_3_with_one_line(tmp_path: Path, keys: Path, curve: str,
                                                      expected: str) -> None:
    import re

    (keys / "empty").mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(f"cameras: [{{name: door, url: /a.mp4}}]\ngallery: g.yaml\n"
                      f"outputs:\n  zmq:\n    curve: {curve.replace('KEYS', str(keys))}\n")
    result = facewatch("config", "check", str(config))
    assert result.returncode == 3, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and re.search(r"config\.yaml:5: " + expected, lines[0]), lines


def test_a_corrupt_key_is_refused(tmp_path: Path, keys: Path) -> None:
    text = (keys / "server.key_secret").read_text().replace('secret-key = "', 'secret-key = "~~')
    (keys / "bad.key_secret").write_text(text)
    os.chmod(keys / "bad.key_secret", 0o600)
    config = tmp_path / "config.yaml"
    config.write_text(f"cameras: [{{name: door, url: /a.mp4}}]\ngallery: g.yaml\n"
                      f"outputs: {{zmq: {{curve: {{secret_key_file: {keys / 'bad.key_secret'}}}}}}}\n")
    result = facewatch("config", "check", str(config))
    assert result.returncode == 3
    assert "its secret-key is not a 40-character Z85 CURVE key" in result.stderr
