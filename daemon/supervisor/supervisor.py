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
import json
import logging
import logging.handlers
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facewatch.config.daemon import DaemonConfig
from facewatch.errors import EXIT_CONFIG, FacewatchError
from facewatch.events.schema import Event
from facewatch.frames.ring import FrameRef, FrameRing
from facewatch.inference import entry as inference_process
from facewatch.metrics import Metrics, prepare_multiprocess_dir, process_died, serve
from facewatch.processes.channels import (
    Channel,
    ControlCodec,
    ControlCommand,
    EventCodec,
    FrameRefCodec,
    InferenceChannels,
    LogRecordCodec,
    LosslessCredit,
    StreamChannels,
    lossless_credit,
)
from facewatch.processes.child import SPAWN, Child, ChildKind, make_context
from facewatch.publishers import process as publisher_process
from facewatch.streams import process as source_process
from facewatch.streams.urls import SourceKind
from facewatch.supervisor.pidfile import remove_pid_file, write_pid_file
from facewatch.supervisor.preflight import check_zmq_bind
from facewatch.supervisor.systemd import SystemdNotifier

log = logging.getLogger(__name__)

RING_SLOTS = 6
# Channel capacities: frame references are ~60 bytes (a few batches' worth is plenty: live
# cameras drop stale frames anyway); events wait here while the publisher restarts.
FRAMES_CHANNEL_BYTES = 16 * 1024
EVENTS_CHANNEL_BYTES = 4 * 1024 * 1024
LOG_CHANNEL_BYTES = 1024 * 1024
# Frames are refused above this size unless the camera sets max_size; 1080p covers most
# cameras, and a 4K camera is better analysed scaled down anyway.
DEFAULT_MAX_FRAME = (1920, 1080)
STOP_BUDGET_S = 10.0
_RESTART_WINDOW_S = 60.0
_MAX_RESTART_DELAY_S = 30.0


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
        # The channels between the processes: made here, held for the daemon's whole life
        # (so what is queued survives the death of any reader or writer), closed at the end.
        self.frames: Channel[FrameRef] = Channel("frames", FrameRefCodec(), FRAMES_CHANNEL_BYTES)
        self.events: Channel[Event] = Channel("events", EventCodec(), EVENTS_CHANNEL_BYTES)
        self.control: Channel[ControlCommand] = Channel("control", ControlCodec())
        # Every published event again, for the api process (made only when it runs).
        self.api_events: Channel[Event] | None = None
        # Ended track segments for the face library's process (made only when it runs).
        self.library: Channel[Any] | None = None
        self._status_path: Path | None = None
        self._runtime_dir: Path | None = None
        self._status_at = 0.0
        self._metrics_dir: Path | None = None
        self.exit_code = 0
        self._rings_made = 0
        self._ready_sent = False
        self._last_watchdog = 0.0
        self._metrics_server: Any = None
        self._log_listener: logging.handlers.QueueListener | None = None
        self._log_channel: Channel[logging.LogRecord | None] | None = None
        self.metrics: Metrics | None = None
        self._pid_file: Path | None = None

    # Setup --------------------------------------------------------------------------------

    def _setup(self) -> None:
        assert self.config.state_dir is not None
        state = Path(self.config.state_dir)
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        # so that `facewatch cameras add` can reload this daemon after editing its config
        self._pid_file = write_pid_file(state, self.config_path)
        runtime = Path(os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0] or state / "run")
        # Outside systemd (which empties RUNTIME_DIRECTORY itself) the folders of earlier runs
        # would pile up under the state directory: remove those whose daemon is gone.
        remove_stale_metrics_dirs(runtime, os.getpid())
        self._metrics_dir = runtime / f"metrics-{os.getpid()}"
        prepare_multiprocess_dir(self._metrics_dir)
        self._status_path = runtime / "status.json"
        self._runtime_dir = runtime
        self.metrics = Metrics()
        m = self.config.metrics
        if m.enabled:
            try:
                self._metrics_server = serve(m.bind, m.port)
                log.info("metrics on http://%s:%d/metrics", m.bind, m.port)
            except OSError as exc:
                log.error("metrics endpoint %s:%d unavailable (%s); continuing without it",
                          m.bind, m.port, exc.strerror or exc)
        self._log_channel = Channel("logs", LogRecordCodec(), LOG_CHANNEL_BYTES)
        self._log_listener = logging.handlers.QueueListener(
            self._log_channel, *logging.getLogger().handlers, respect_handler_level=True)
        self._log_listener.start()
        self._ring_prefix = f"{ring_prefix(state)}{os.getpid()}-"
        stale = remove_stale_rings(ring_prefix(state), os.getpid())
        if stale:
            log.info("removed %d frame ring(s) left in %s by an earlier run that did not stop "
                     "cleanly", len(stale), SHM_DIR)
        for camera in self.config.enabled_cameras:
            self._make_ring(camera)
        if self.config.api.enabled:
            self.api_events = Channel("api-events", EventCodec(), EVENTS_CHANNEL_BYTES)
            self._add_api()
        if self.config.library.enabled:
            from facewatch.library import writer
            from facewatch.library.records import TrackRecordCodec

            self.library = Channel("library", TrackRecordCodec(), writer.CHANNEL_BYTES)
            self._add_library()
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
            self.lossless[camera.name] = lossless_credit(SPAWN)

    def _child(self, role: str, kind: ChildKind, target: Any, args: tuple[Any, ...],
               heartbeat_timeout_s: float | None = None) -> Child:
        ctx = make_context(role, self._log_channel, self.config.logging.numeric_level)
        child = Child(role, kind, target, args, ctx, heartbeat_timeout_s=heartbeat_timeout_s)
        self.children[role] = child
        return child

    def _add_publisher(self) -> Child:
        return self._child("publisher", publisher_process.KIND, publisher_process.run_publisher,
                           (self.config, self.events, self.api_events, self._runtime_dir))

    def _add_library(self) -> Child:
        from facewatch.library import writer

        return self._child("library", writer.KIND, writer.run_library, (self.config, self.library))

    def _add_api(self) -> Child:
        from facewatch.api import process as api_process

        assert self._status_path is not None
        channels = api_process.ApiChannels(self.api_events, self.control, self._status_path)
        # its camera states start from what the publisher wrote beside status.json
        return self._child("api", api_process.KIND, api_process.run_api, (self.config, channels))

    def _add_inference(self) -> Child:
        channels = InferenceChannels({c: r.name for c, r in self.rings.items()}, self.frames,
                                     self.events, self.control, dict(self.lossless),
                                     self.library)
        return self._child("inference", inference_process.KIND, inference_process.run_inference,
                           (self.config, channels))

    def _add_source(self, camera: Any) -> Child:
        settings = camera.stream_settings()
        channels = StreamChannels(self.rings[camera.name].name, self.frames, self.events,
                                  self.lossless.get(camera.name))
        # A source is silent while it waits to reconnect or for a stalled stream to time out.
        timeout = settings.reconnect_max_s + settings.no_frame_timeout_s + 30.0
        return self._child(f"source:{camera.name}", source_process.KIND, source_process.run_source,
                           (camera.name, settings, channels), heartbeat_timeout_s=timeout)

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
                self._write_status()
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
                    child.start()
                continue
            if not child.alive():
                code = child.process.exitcode
                if code == 0 and child.kind.may_finish:
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
            elif child.heartbeat_age() > child.silence_limit():
                log.error("%s stopped responding (no heartbeat for %.0f s); restarting",
                          child.role, child.heartbeat_age())
                self._retire(child)

    def _retire(self, child: Child) -> None:
        pid = child.process.pid if child.process else None
        child.stop(timeout=2.0)
        if pid and self.metrics is not None:  # its live gauges leave the merged view
            process_died(pid)
        now = time.monotonic()
        child.restarts = [t for t in child.restarts if now - t < _RESTART_WINDOW_S]
        # first restart at once; then 1, 2, 4 ... s, while restarts keep coming within a minute
        delay = 0.0 if not child.restarts else min(2.0 ** (len(child.restarts) - 1),
                                                   _MAX_RESTART_DELAY_S)
        child.restarts.append(now)
        child.next_start = now + delay
        if self.metrics:
            self.metrics.restarts.labels(child.kind.name).inc()

    def _notify(self) -> None:
        children = [c for c in self.children.values() if not c.finished]
        if not self._ready_sent and all(c.ctx.ready_event.is_set() for c in children):
            self._ready_sent = True
            self.notifier.ready(self._status_line())
            log.info("ready: %s", self._status_line())
        now = time.monotonic()
        healthy = all(c.alive() and c.heartbeat_age() <= c.silence_limit() for c in children)
        if healthy and self.notifier.watchdog_s and now - self._last_watchdog >= \
                self.notifier.watchdog_s / 2:
            self._last_watchdog = now
            self.notifier.watchdog()
            self.notifier.status(self._status_line())

    def _write_status(self) -> None:
        """`<runtime>/status.json`: the children as the supervisor sees them, for the API's
        health and anyone else who asks (every 2 s; written whole, then renamed)."""
        now = time.monotonic()
        if self._status_path is None or now - self._status_at < 2.0:
            return
        self._status_at = now
        children = [{"role": c.role, "kind": c.kind.name, "alive": c.alive() or c.finished,
                     "ready": c.ctx.ready_event.is_set(), "finished": c.finished,
                     "restarts": len([t for t in c.restarts if now - t < _RESTART_WINDOW_S]),
                     "pid": c.process.pid if c.process is not None else None}
                    for c in self.children.values()]
        data = {"pid": os.getpid(), "ready": self._ready_sent, "written": time.time(),
                "children": children}
        tmp = self._status_path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(data))
            tmp.replace(self._status_path)
        except OSError as exc:
            log.debug("cannot write %s: %s", self._status_path, exc)

    def _status_line(self) -> str:
        sources = [c for c in self.children.values() if c.kind is source_process.KIND]
        up = sum(1 for c in sources if c.alive() or c.finished)
        inference = self.children.get("inference")
        state = "running" if inference is not None and inference.alive() else "inference restarting"
        return f"{state}; {up}/{len(sources)} camera processes up"

    # Reload and shutdown ------------------------------------------------------------------

    def _reload(self) -> None:
        if self.config_path is None:
            self.control.put(ControlCommand.RELOAD_GALLERY)
            return
        from facewatch.config import check_state_dir, load_resolved

        old = self.config
        try:
            new = load_resolved(self.config_path)
            if new.state_dir != old.state_dir:
                check_state_dir(new)  # else the outbox and snapshots would fail, not the reload
            if _zmq_bind(new) != _zmq_bind(old):
                # The running publisher holds the old address; a new one in use would make
                # the restarted publisher fail for ever (nothing would reach any output).
                check_zmq_bind(new)
        except FacewatchError as exc:
            log.error("config not reloaded, the running one stays: %s", exc)
            self.notifier.status(f"config reload failed: {exc}")
            if self.metrics:
                self.metrics.config_reloads.labels("error").inc()
            return
        self.config = new
        old_cams = {c.name: c for c in old.enabled_cameras}
        new_cams = {c.name: c for c in new.enabled_cameras}
        cameras_changed = old_cams != new_cams
        changed = {n for n in old_cams.keys() & new_cams.keys() if old_cams[n] != new_cams[n]}
        for name in (old_cams.keys() - new_cams.keys()) | changed:
            self.children.pop(f"source:{name}").stop(timeout=2.0)
            self.rings.pop(name).close()
            self.lossless.pop(name, None)
        for name in (new_cams.keys() - old_cams.keys()) | changed:
            self._make_ring(new_cams[name])
            self._add_source(new_cams[name]).start()
        inference_inputs = ("gallery", "inference", "tracking", "recognition", "snapshots",
                            "state_dir")
        if cameras_changed or any(getattr(old, k) != getattr(new, k) for k in inference_inputs):
            self.children["inference"].stop(timeout=3.0)
            self._add_inference().start()
        else:
            self.control.put(ControlCommand.RELOAD_GALLERY)
        if (old.outputs != new.outputs or old.outbox != new.outbox
                or old.state_dir != new.state_dir or old.camera_names != new.camera_names):
            self.children["publisher"].stop(timeout=3.0)
            self._add_publisher().start()
        if old.api != new.api and "api" in self.children and self.api_events is not None:
            self.children["api"].stop(timeout=2.0)
            self._add_api().start()
        if (old.library != new.library or old.state_dir != new.state_dir) \
                and "library" in self.children and self.library is not None:
            self.children["library"].stop(timeout=3.0)
            self._add_library().start()
        if old.api.enabled != new.api.enabled or old.library.enabled != new.library.enabled:
            log.warning("api.enabled and library.enabled take effect at the next start")
        if self.metrics:
            self.metrics.config_reloads.labels("ok").inc()
        log.info("reloaded %s", self.config_path)

    def _shutdown(self) -> None:
        self.notifier.stopping()
        log.info("stopping")
        deadline = time.monotonic() + STOP_BUDGET_S - 1.0
        # data-flow order (each kind's stop_order): stop producing frames, let the inference
        # process end its tracks, then let the publisher drain everything queued
        for child in sorted(self.children.values(), key=lambda c: c.kind.stop_order):
            share = child.kind.stop_timeout_s
            child.stop(timeout=max(0.5, min(share, deadline - time.monotonic())))
        for ring in self.rings.values():
            ring.close()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        if self._log_listener is not None:
            self._log_listener.stop()
        for channel in (self.frames, self.events, self.control, self.api_events, self.library,
                        self._log_channel):
            if channel is not None:
                channel.close()
        if self._metrics_dir is not None:
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
        if self._status_path is not None:
            self._status_path.unlink(missing_ok=True)
        self.notifier.close()
        remove_pid_file(self._pid_file)
        log.info("stopped")


def _zmq_bind(config: DaemonConfig) -> str | None:
    return config.outputs.zmq.bind if config.outputs.zmq is not None else None


def remove_stale_metrics_dirs(runtime: Path, own_pid: int) -> list[Path]:
    """Remove `metrics-<pid>` folders under `runtime` whose daemon (pid) is gone."""
    removed: list[Path] = []
    try:
        folders = sorted(runtime.glob("metrics-*"))
    except OSError:
        return removed
    for folder in folders:
        pid = folder.name.removeprefix("metrics-")
        if not pid.isdigit() or int(pid) == own_pid or _is_facewatch(int(pid)):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed
