"""Run `tests.support.rtsp_server` as a subprocess that tests can kill, stop, resume and restart."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self

_REPO = Path(__file__).resolve().parents[2]


class RtspServerProcess:
    """One server on 127.0.0.1; `start()` again after `kill()` serves on the same port."""

    def __init__(self, clip: Path, log_dir: Path, mount: str = "/door") -> None:
        self.clip = clip
        self.mount = mount
        self.port = 0  # 0 until the first start: the server picks a free port and reports it
        self._log = log_dir / "rtsp_server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.mount}"

    def start(self, timeout_s: float = 15.0) -> str:
        """Start the server and wait for its READY line; returns the stream URL."""
        if self._process is not None:
            raise RuntimeError("the RTSP server is already running")
        with self._log.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.support.rtsp_server", "--port", str(self.port),
                 "--file", str(self.clip), "--mount", self.mount],
                cwd=_REPO, stdout=subprocess.PIPE, stderr=log)
        self._process = process
        assert process.stdout is not None
        deadline = time.monotonic() + timeout_s
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([process.stdout], [], [], max(0.0, remaining))
            chunk = os.read(process.stdout.fileno(), 256) if ready else b""
            if not chunk:
                self.kill()
                raise RuntimeError(f"the RTSP server did not start; see {self._log}: {self.log_tail()}")
            line += chunk
        text = line.decode().strip()
        if not text.startswith("READY rtsp://"):
            self.kill()
            raise RuntimeError(f"unexpected line from the RTSP server: {text!r}")
        self.port = int(text.rsplit(":", 1)[1].split("/", 1)[0])
        return self.url

    def kill(self) -> None:
        """SIGKILL, as a crash would; no TEARDOWN reaches the clients."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait(10)
            if process.stdout is not None:
                process.stdout.close()

    def pause(self) -> None:
        """SIGSTOP: sockets stay open and connections are still accepted, but nothing answers."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self) -> None:
        """End the server whatever state it is in."""
        process = self._process
        if process is None:
            return
        process.send_signal(signal.SIGCONT)
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
        self.kill()

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self._log.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""

    def _signal(self, signum: int) -> None:
        if self._process is None:
            raise RuntimeError("the RTSP server is not running")
        self._process.send_signal(signum)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, _type: type[BaseException] | None, _value: BaseException | None,
                 _traceback: TracebackType | None) -> None:
        self.stop()
