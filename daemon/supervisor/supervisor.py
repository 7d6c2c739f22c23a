"""The supervisor: the daemon's main process.

It owns every lifecycle explicitly: it creates the shared memory and queues, starts one
`source:<camera>` process per camera, the `inference` and the `publisher`; restarts a child that
died or stopped beating (immediately the first time, then with growing delays); keeps systemd
informed (READY once models are loaded and every camera has reported, WATCHDOG only while
every child beats, STATUS, STOPPING); reloads on SIGHUP; and on SIGTERM stops the children in
data-flow order so queued events still go out, within 10 s.

Signal handlers only set flags; the loop acts on them (as uvicorn's supervisor does).

A child that exits with `EXIT_CONFIG` before the daemon was ever ready (the publisher cannot
bind its ZeroMQ address, say) cannot be helped by restarting it: the supervisor stops and
returns that code, so systemd does not restart the daemon in a loop either.

Frame rings are named after the state directory and the supervisor's pid
(`facewatch-<digest of state_dir>-<pid>-...`); at start the supervisor removes the rings of an
earlier run with the same state directory whose supervisor is gone (a process group killed
outright leaves them in /dev/shm), and leaves other instances' alone.
"""

from __future__ import annotations

import hashlib
import logging
import logging.handlers
import os
import queue
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facewatch.config.daemon import DaemonConfig
from facewatch.errors import EXIT_CONFIG, FacewatchError
from facewatch.frames.ring import FrameRing
from facewatch.inference.process import InferenceChannels, run_inference
from facewatch.metrics import Metrics, prepare_multiprocess_dir, process_died, serve
from facewatch.processes.child import (
    HEARTBEAT_TIMEOUT_S,
    SPAWN,
    Child,
    make_context,
)
from facewatch.processes.queues import release_stale_reader_lock
from facewatch.publishers.process import run_publisher
from facewatch.streams.process import LosslessCredit, StreamChannels, run_source
from facewatch.streams.urls import SourceKind
from facewatch.supervisor.systemd import SystemdNotifier

log = logging.getLogger(__name__)

RING_SLOTS = 6
# Frames are refused above this size unless the camera sets max_size; 1080p covers most
# cameras, and a 4K camera is better analysed scaled down anyway.
DEFAULT_MAX_FRAME = (1920, 1080)
STOP_BUDGET_S = 10.0
_RESTART_WINDOW_S = 60.0
_MAX_RESTART_DELAY_S = 30.0
# The inference process loads models and enrols the gallery before it beats regularly.
_INFERENCE_START_GRACE_S = 120.0


@dataclass
class _Flags:
    stop: bool = False
    reload: bool = False
    signals: list[int] = field(default_factory=list)


def is_live(camera: Any) -> bool:
    """Live sources drop stale frames; files read as fast as possible must not."""
    return not (camera.kind is SourceKind.FILE and not camera.realtime)


SHM_DIR = Path("/dev/shm")


def ring_prefix(state_dir: Path) -> str:
    """What the names of the frame rings of a daemon with this state directory start with."""
    digest = hashlib.sha256(str(Path(state_dir).absolute()).encode()).hexdigest()[:12]
    return f"facewatch-{digest}-"


def _is_facewatch(pid: int) -> bool:
    try:
        return b"facewatch" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def remove_stale_rings(prefix: str, own_pid: int, shm_dir: Path = SHM_DIR) -> list[str]:
    """Unlink the rings named `<prefix><pid>-...` whose supervisor (pid) is gone; their names."""
    removed: list[str] = []
    try:
        names = sorted(os.listdir(shm_dir))
    except OSError:
        return removed
    for name in names:
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == own_pid or _is_facewatch(int(pid)):
            continue
        try:
            os.unlink(shm_dir / name)
            removed.append(name)
        except OSError as exc:
            log.warning("cannot remove the stale frame ring %s: %s", shm_dir / name,
                        exc.strerror or exc)
    return removed


class Supervisor:
    def __init__(self, config: DaemonConfig, config_path: Path | None = None,
                 notifier: SystemdNotifier | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.notifier = notifier or SystemdNotifier()
        self.flags = _Flags()
        self.children: dict[str, Child] = {}
        self.rings: dict[str, FrameRing] = {}
        self.lossless: dict[str, LosslessCredit] = {}
        self.exit_code = 0
        self._rings_made = 0
        self._ready_sent = False
        self._last_watchdog = 0.0
        self._metrics_server: Any = None
        self._log_listener: logging.handlers.QueueListener | None = None
        self._log_queue: Any = None
        self.metrics: Metrics | None = None

    # Setup --------------------------------------------------------------------------------

    def _setup(self) -> None:
        assert self.config.state_dir is not None
        state = Path(self.config.state_dir)
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        runtime = Path(os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0] or state / "run")
        prepare_multiprocess_dir(runtime / f"metrics-{os.getpid()}")
        self.metrics = Metrics()
        m = self.config.metrics
        if m.enabled:
            try:
                self._metrics_server = serve(m.bind, m.port)
                log.info("metrics on http://%s:%d/metrics", m.bind, m.port)
            except OSError as exc:
                log.error("metrics endpoint %s:%d unavailable (%s); continuing without it",
                          m.bind, m.port, exc.strerror or exc)
        self._log_queue = SPAWN.Queue()
        self._log_listener = logging.handlers.QueueListener(
            self._log_queue, *logging.getLogger().handlers, respect_handler_level=True)
        self._log_listener.start()
        self.frames = SPAWN.Queue(maxsize=64)
        self.events = SPAWN.Queue(maxsize=100_000)
        self.control = SPAWN.Queue()
        self._ring_prefix = f"{ring_prefix(state)}{os.getpid()}-"
        stale = remove_stale_rings(ring_prefix(state), os.getpid())
        if stale:
            log.info("removed %d frame ring(s) left in %s by an earlier run that did not stop "
                     "cleanly", len(stale), SHM_DIR)
        for camera in self.config.enabled_cameras:
            self._make_ring(camera)
        self._add_publisher()
        self._add_inference()
        for camera in self.config.enabled_cameras:
            self._add_source(camera)

    def _make_ring(self, camera: Any) -> None:
        width, height = camera.max_size or DEFAULT_MAX_FRAME
        self._rings_made += 1  # a camera changed by a reload gets a new ring under a new name
        self.rings[camera.name] = FrameRing.create(
            camera.name, slots=RING_SLOTS, max_width=width, max_height=height,
            name=f"{self._ring_prefix}{self._rings_made}-{camera.name}")
        if not is_live(camera):
            self.lossless[camera.name] = LosslessCredit(SPAWN.Value("q", -1, lock=False),
                                                        SPAWN.Semaphore(0))

    def _context(self, role: str, heartbeat_timeout: float) -> Any:
        return make_context(role, self._log_queue, self.config.logging.numeric_level,
                            heartbeat_timeout=heartbeat_timeout)

    def _add_publisher(self) -> None:
        self.children["publisher"] = Child("publisher", run_publisher,
                                           (self.config, self.events),
                                           self._context("publisher", HEARTBEAT_TIMEOUT_S))

    def _inference_channels(self) -> InferenceChannels:
        return InferenceChannels({c: r.name for c, r in self.rings.items()}, self.frames,
                              self.events, self.control, dict(self.lossless))

    def _add_inference(self) -> None:
        self.children["inference"] = Child("inference", run_inference,
                                        (self.config, self._inference_channels()),
                                        self._context("inference", HEARTBEAT_TIMEOUT_S))

    def _add_source(self, camera: Any) -> None:
        settings = camera.stream_settings()
        channels = StreamChannels(self.rings[camera.name].name, self.frames, self.events,
                                  self.lossless.get(camera.name))
        # A source is silent while it waits to reconnect or for a stalled stream to time out.
        timeout = settings.reconnect_max_s + settings.no_frame_timeout_s + 30.0
        role = f"source:{camera.name}"
        self.children[role] = Child(role, run_source, (camera.name, settings, channels),
                                    self._context(role, timeout))

    # Main loop ----------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGHUP:
            self.flags.reload = True
        else:
            self.flags.stop = True

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        try:
            self._setup()
            for child in self.children.values():
                child.start()
            self.notifier.status("starting: loading models and opening cameras")
            while not self.flags.stop:
                if self.flags.reload:
                    self.flags.reload = False
                    self._reload()
                self._check_children()
                self._notify()
                time.sleep(0.2)
        finally:
            self._shutdown()
        return self.exit_code

    def _check_children(self) -> None:
        now = time.monotonic()
        for child in list(self.children.values()):
            if child.finished:
                continue
            if child.process is None:
                if now >= child.next_start:
                    self._start_again(child)
                continue
            timeout = float(child.ctx.extra.get("heartbeat_timeout", HEARTBEAT_TIMEOUT_S))
            if child.role == "inference" and not child.ctx.ready_event.is_set():
                timeout = max(timeout, _INFERENCE_START_GRACE_S)
            if not child.alive():
                code = child.process.exitcode
                if code == 0 and child.role.startswith("source:"):
                    # a file that does not loop has ended: its status said so (offline, eof)
                    log.info("%s finished", child.role)
                    child.stop(timeout=0.5)
                    child.finished = True
                    continue
                if code == EXIT_CONFIG and not self._ready_sent:
                    log.error("%s cannot start with this config (its error is above); "
                              "stopping", child.role)
                    child.stop(timeout=0.5)
                    child.finished = True
                    self.exit_code = EXIT_CONFIG
                    self.flags.stop = True
                    return
                log.error("%s exited (code %s); restarting", child.role, code)
                self._retire(child)
            elif child.heartbeat_age() > timeout:
                log.error("%s stopped responding (no heartbeat for %.0f s); restarting",
                          child.role, child.heartbeat_age())
                self._retire(child)

    def _retire(self, child: Child) -> None:
        pid = child.process.pid if child.process else None
        child.stop(timeout=2.0)
        if pid:
            process_died(pid)
        now = time.monotonic()
        child.restarts = [t for t in child.restarts if now - t < _RESTART_WINDOW_S]
        # first restart at once; then 1, 2, 4 ... s, while restarts keep coming within a minute
        delay = 0.0 if not child.restarts else min(2.0 ** (len(child.restarts) - 1),
                                                   _MAX_RESTART_DELAY_S)
        child.restarts.append(now)
        child.next_start = now + delay
        if self.metrics:
            self.metrics.restarts.labels(child.role.split(":")[0]).inc()

    def _start_again(self, child: Child) -> None:
        # the role's predecessor is gone: no one else reads these queues
        if child.role == "inference":
            release_stale_reader_lock(self.frames, "frames")
            release_stale_reader_lock(self.control, "control")
            self._discard_queued_frames()
        elif child.role == "publisher":
            release_stale_reader_lock(self.events, "events")
        child.start()

    def _discard_queued_frames(self) -> None:
        """References queued for a dead inference process: live frames are stale by now, and a lossless
        camera's frames are read back from its ring by the new inference process (see
        facewatch.inference.process), so nothing of those is lost."""
        while True:
            try:
                self.frames.get_nowait()
            except queue.Empty:
                break

    def _notify(self) -> None:
        children = [c for c in self.children.values() if not c.finished]
        if not self._ready_sent and all(c.ctx.ready_event.is_set() for c in children):
            self._ready_sent = True
            self.notifier.ready(self._status_line())
            log.info("ready: %s", self._status_line())
        now = time.monotonic()
        healthy = all(c.alive() and c.heartbeat_age() <= float(
            c.ctx.extra.get("heartbeat_timeout", HEARTBEAT_TIMEOUT_S)) for c in children)
        if healthy and self.notifier.watchdog_s and now - self._last_watchdog >= \
                self.notifier.watchdog_s / 2:
            self._last_watchdog = now
            self.notifier.watchdog()
            self.notifier.status(self._status_line())

    def _status_line(self) -> str:
        sources = [c for role, c in self.children.items() if role.startswith("source:")]
        up = sum(1 for c in sources if c.alive() or c.finished)
        inference = self.children.get("inference")
        state = "running" if inference is not None and inference.alive() else "inference restarting"
        return f"{state}; {up}/{len(sources)} camera processes up"

    # Reload and shutdown ------------------------------------------------------------------

    def _reload(self) -> None:
        if self.config_path is None:
            self.control.put("reload-gallery")
            return
        from facewatch.config import load_resolved

        try:
            new = load_resolved(self.config_path)
        except FacewatchError as exc:
            log.error("config not reloaded, the running one stays: %s", exc)
            self.notifier.status(f"config reload failed: {exc}")
            if self.metrics:
                self.metrics.config_reloads.labels("error").inc()
            return
        old = self.config
        self.config = new
        old_cams = {c.name: c for c in old.enabled_cameras}
        new_cams = {c.name: c for c in new.enabled_cameras}
        cameras_changed = old_cams != new_cams
        for name in old_cams.keys() - new_cams.keys() | {n for n in old_cams.keys() & new_cams.keys()
                                                          if old_cams[n] != new_cams[n]}:
            child = self.children.pop(f"source:{name}")
            child.stop(timeout=2.0)
            self.rings.pop(name).close()
            self.lossless.pop(name, None)
        for name in new_cams.keys() - {r.split(":", 1)[1] for r in self.children
                                       if r.startswith("source:")}:
            self._make_ring(new_cams[name])
            self._add_source(new_cams[name])
            self.children[f"source:{name}"].start()
        inference_inputs = ("gallery", "inference", "tracking", "recognition", "snapshots", "state_dir")
        if cameras_changed or any(getattr(old, k) != getattr(new, k) for k in inference_inputs):
            self.children["inference"].stop(timeout=3.0)
            self._add_inference()
            self._start_again(self.children["inference"])
        else:
            self.control.put("reload-gallery")
        if (old.outputs != new.outputs or old.outbox != new.outbox
                or old.state_dir != new.state_dir or old.camera_names != new.camera_names):
            self.children["publisher"].stop(timeout=3.0)
            self._add_publisher()
            self._start_again(self.children["publisher"])
        if self.metrics:
            self.metrics.config_reloads.labels("ok").inc()
        log.info("reloaded %s", self.config_path)

    def _shutdown(self) -> None:
        self.notifier.stopping()
        log.info("stopping")
        deadline = time.monotonic() + STOP_BUDGET_S - 1.0
        # data-flow order: stop producing frames, let the inference process end its tracks, then let the
        # publisher drain everything queued
        order = [r for r in self.children if r.startswith("source:")] + ["inference", "publisher"]
        for role in order:
            child = self.children.get(role)
            if child is None:
                continue
            share = {"inference": 3.0, "publisher": 4.0}.get(role, 1.0)
            child.stop(timeout=max(0.5, min(share, deadline - time.monotonic())))
        for ring in self.rings.values():
            ring.close()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        if self._log_listener is not None:
            self._log_listener.stop()
        self.notifier.close()
        log.info("stopped")
