"""A real mosquitto broker on 127.0.0.1 for tests, that a test can stop, kill and restart.

    broker = Mosquitto(tmp_path)          # picks a free port now, keeps it for restarts
    broker.start()
    ...                                   # MQTT on broker.host:broker.port
    broker.kill()                         # as a crash would: no clean close for clients
    broker.start()                        # the same port again
    broker.stop()

The generated config listens on 127.0.0.1 only, allows anonymous clients unless `users` is
given, keeps no persistence (a restart forgets retained messages, like a broker whose disk
was lost) unless `persistence=True` (then the sessions, subscriptions and queued messages of
clients with clean_session=False outlive a `stop()` and `start()`, as on a production broker),
and sets TCP_NODELAY: without it every MQTT round trip waits ~40 ms for Nagle.

With `tls=BrokerTls(ca, cert, key)` the listener speaks TLS only (1.2 or later), with that
server certificate, and with `require_certificate` (the default) refuses clients without a
certificate signed by `ca`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def mosquitto_available() -> bool:
    return os.access(MOSQUITTO, os.X_OK)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class BrokerTls:
    """PEM files for a TLS listener: the CA that signs client certificates, and the server's."""

    ca: Path
    cert: Path
    key: Path
    require_certificate: bool = True


class Mosquitto:
    host = "127.0.0.1"

    def __init__(self, workdir: Path, port: int | None = None,
                 users: dict[str, str] | None = None, tls: BrokerTls | None = None,
                 persistence: bool = False) -> None:
        self.workdir = workdir
        self.port = port if port is not None else free_port()
        self.users = dict(users or {})
        self.persistence = persistence
        self.tls = tls
        self._process: subprocess.Popen[bytes] | None = None
        self._log = workdir / f"mosquitto-{self.port}.log"
        self._conf = workdir / f"mosquitto-{self.port}.conf"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections on `port`."""
        if self._process is not None:
            raise RuntimeError("mosquitto is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._conf.write_text(self._config())
        with self._log.open("ab") as log:
            self._process = subprocess.Popen([MOSQUITTO, "-c", str(self._conf)],
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"mosquitto exited at start: {self.log_tail()}")
            if self._listening():
                return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout_s} s: "
                           f"{self.log_tail()}")

    def _listening(self) -> bool:
        """Whether the port accepts connections.  With TLS, from the kernel's socket table: a
        TCP connect without a handshake would leave an error in the broker's log."""
        if self.tls is not None:
            wanted = f"0100007F:{self.port:04X}"
            with contextlib.suppress(OSError):
                for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
                    fields = line.split()
                    if fields[1] == wanted and fields[3] == "0A":  # LISTEN
                        return True
            return False
        with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 0.2):
            return True
        return False

    def log_text(self) -> str:
        try:
            return self._log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM, as `systemctl stop` would: clients see their connection closed."""
        process = self._process
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        self._process = None

    def kill(self) -> None:
        """SIGKILL, as a crash or power loss of the broker host would."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait(5)

    def pause(self) -> None:
        """SIGSTOP: connections stay open but nothing answers (a hung broker)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self._log.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""

    def _config(self) -> str:
        lines = [f"listener {self.port} {self.host}", "set_tcp_nodelay true",
                 "log_dest stderr", "log_type error", "log_type warning", "log_type notice"]
        if self.persistence:
            # saved at a clean stop (SIGTERM) and every second; kill() may lose the last second
            lines += ["persistence true", f"persistence_location {self.workdir}/",
                      f"persistence_file mosquitto-{self.port}.db", "autosave_interval 1"]
        else:
            lines.append("persistence false")
        if os.geteuid() == 0:
            lines.append("user root")  # keep root: the dropped-to user cannot read the tmp dir
        if self.users:
            passwords = self.workdir / f"mosquitto-{self.port}.passwd"
            passwords.write_text("")
            passwords.chmod(0o600)
            for user, password in self.users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwords), user, password],
                               check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls is not None:
            lines += [f"cafile {self.tls.ca}", f"certfile {self.tls.cert}",
                      f"keyfile {self.tls.key}",
                      f"require_certificate {'true' if self.tls.require_certificate else 'false'}"]
        return "\n".join(lines) + "\n"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, _type: type[BaseException] | None, _value: BaseException | None,
                 _traceback: TracebackType | None) -> None:
        self.resume()
        self.stop()
