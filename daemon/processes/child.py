"""One base for every child process: spawn, naming, signals, logging, heartbeat.

A kind of child is a module-level function `main(ctx, *args)` that loops until
`ctx.stopping()` and calls `ctx.beat()` at least every few seconds, and a `ChildKind` beside it
that tells the supervisor what it needs to know (how long it may be silent, whether it can
end by itself, its share of the stop budget).  The supervisor judges liveness by the
heartbeat, not by `is_alive()`: a process stuck in a C call is alive but useless.
"""

from __future__ import annotations

import ctypes
import faulthandler
import logging
import logging.handlers
import multiprocessing as mp
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any

# Children start from a fresh interpreter: nothing (threads, sockets, ONNX sessions, GStreamer
# state) is inherited by accident, exactly as uvicorn and Frigate do it.
SPAWN: SpawnContext = mp.get_context("spawn")

# A child that never beats again is considered stuck after this long.
HEARTBEAT_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class ChildKind:
    """What the supervisor needs to know about one kind of child, declared by its module."""

    name: str  # "source", "inference", "publisher", ...: process names and metric labels
    # Silence (no heartbeat) after which a running child is restarted.
    heartbeat_timeout_s: float = HEARTBEAT_TIMEOUT_S
    # Silence allowed before it first reports ready (loading models, enrolling a gallery).
    start_grace_s: float = 0.0
    # Exit code 0 means it finished its work (a file that ended), not that it crashed.
    may_finish: bool = False
    # Its share of the stop budget, and its place in the stop order (lower stops first:
    # producers before consumers, so what is queued still goes out).
    stop_timeout_s: float = 1.0
    stop_order: int = 0
    # Modules its processes start with already imported.  Children of a kind with a preload
    # are forked from one server process that imported them once (multiprocessing's
    # forkserver, itself started fresh), so those pages are shared between them instead of
    # each child holding its own copy: for cameras' source processes, numpy, GStreamer and its
    # plugin registry (about 20 MiB of PSS less per camera).  Without, they are spawned.
    # Such a child's kernel parent is the server: it watches the supervisor itself.
    preload: tuple[str, ...] = ()


class SharedFlag:
    """An event flag shared with child processes that takes no lock.

    multiprocessing.Event takes a process-shared lock in `is_set()` and `set()`.  A child that
    exits, is killed, or is signalled while one of its threads holds it leaves it locked for
    good, and the supervisor then hangs in `set()` when it stops that child: seen when SIGTERM
    reached the whole process group at once (`timeout`, systemd's default KillMode).  One byte
    of shared memory needs no lock: it is written whole, and readers poll it."""

    POLL_S = 0.05

    def __init__(self) -> None:
        self._value = SPAWN.RawValue(ctypes.c_bool, False)

    def set(self) -> None:
        self._value.value = True

    def clear(self) -> None:
        self._value.value = False

    def is_set(self) -> bool:
        return bool(self._value.value)

    def wait(self, timeout: float | None = None) -> bool:
        """True once set; False if `timeout` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = self.POLL_S if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, self.POLL_S))
        return True


@dataclass
class ChildContext:
    """What a child receives; everything in it must survive pickling for spawn."""

    role: str  # the instance: "inference", "source:door"
    stop_event: SharedFlag
    heartbeat: Any  # a lock-free shared double (see SharedFlag): time.monotonic() of the last beat
    ready_event: SharedFlag  # set once the child is up
    log_queue: Any  # where LogRecords go: the supervisor's listener (see `LogChannel`)
    log_level: int = logging.INFO

    def beat(self) -> None:
        # CLOCK_MONOTONIC is system-wide on Linux, so the supervisor can compare it with its own
        self.heartbeat.value = time.monotonic()

    def stopping(self) -> bool:
        return bool(self.stop_event.is_set())

    def ready(self) -> None:
        self.beat()
        self.ready_event.set()


def _set_process_name(name: str) -> None:
    """Show `facewatch.<role>` in ps/top (the kernel keeps 15 characters)."""
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(name[:15])
    except OSError:
        pass


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _stop_with_parent(ctx: ChildContext) -> None:
    """Have the kernel send SIGTERM (handled below: a clean stop) when the supervisor dies.

    Without it, the children of a supervisor killed outright (kill -9, the OOM killer) run on
    as orphans, holding the ZeroMQ port, the MQTT client id and the cameras, so the daemon
    cannot be started again.  systemd kills the whole control group anyway; this covers every
    other way of running it.  Linux only; the signal follows the thread that started the
    child, which is the supervisor's main thread."""
    parent = mp.parent_process()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent is None or parent.pid is None or os.getppid() == parent.pid:
        return
    # Forked by the forkserver (a kind with a preload): the kernel's parent is the server,
    # which lives on as long as any of its children does, so the signal would never come.
    # Watch the supervisor itself instead, and stop the same way when it is gone.
    _watch(parent.pid)


def _watch(pid: int) -> None:
    """SIGTERM this process when process `pid` has exited (a pidfd, or polling without)."""
    def wait() -> None:
        try:
            fd = os.pidfd_open(pid)
        except (OSError, AttributeError):
            while _running(pid):
                time.sleep(1.0)
        else:
            select.select([fd], [], [])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait, name="supervisor-watch", daemon=True).start()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def child_entry(ctx: ChildContext, target: Callable[..., None], args: tuple[Any, ...]) -> None:
    """Runs first in every child (spawned), then hands over to the role's main function."""
    _set_process_name(f"fw.{ctx.role}")
    faulthandler.enable()  # a segfault in native code prints a Python traceback
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(ctx.log_queue)]
    root.setLevel(ctx.log_level)
    # The supervisor owns signals: SIGTERM asks this child to finish its current work and
    # return; Ctrl-C in a terminal reaches the whole process group, so children ignore SIGINT
    # and let the supervisor orchestrate the shutdown.
    signal.signal(signal.SIGTERM, lambda *_: ctx.stop_event.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _stop_with_parent(ctx)
    ctx.beat()
    log = logging.getLogger(f"facewatch.{ctx.role}")
    try:
        target(ctx, *args)
    except Exception:
        log.exception("%s crashed", ctx.role)
        sys.exit(1)
    finally:
        logging.shutdown()


@dataclass
class Child:
    """A supervised child: how to start it, and its current process."""

    role: str
    kind: ChildKind
    target: Callable[..., None]
    args: tuple[Any, ...]
    ctx: ChildContext
    # This instance's own silence limit when it differs from its kind's (a camera waiting
    # out its reconnection backoff is silent longer).
    heartbeat_timeout_s: float | None = None
    process: BaseProcess | None = None
    restarts: list[float] = field(default_factory=list)
    next_start: float = 0.0  # monotonic time before which it must not be restarted
    finished: bool = False  # ended by itself with nothing left to do (a file that ended)

    def start(self) -> None:
        self.ctx.stop_event.clear()
        self.ctx.ready_event.clear()
        self.ctx.beat()
        self.process = _context_for(self.kind).Process(
            target=child_entry, args=(self.ctx, self.target, self.args),
            name=f"facewatch.{self.role}", daemon=False)
        self.process.start()

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def heartbeat_age(self) -> float:
        return time.monotonic() - float(self.ctx.heartbeat.value)

    def stop(self, timeout: float) -> None:
        """Ask politely (stop event + SIGTERM), then kill after `timeout`."""
        p = self.process
        if p is None:
            return
        self.ctx.stop_event.set()
        if p.is_alive() and p.pid:
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        p.join(timeout)
        if p.is_alive():
            p.kill()
            p.join(2.0)
        p.close()
        self.process = None


    def silence_limit(self) -> float:
        """How long it may go without a heartbeat now."""
        limit = self.heartbeat_timeout_s or self.kind.heartbeat_timeout_s
        if not self.ctx.ready_event.is_set():
            limit = max(limit, self.kind.start_grace_s)
        return limit


_forkserver_preload: tuple[str, ...] | None = None


def _context_for(kind: ChildKind) -> SpawnContext | ForkServerContext:
    """Spawn, or for a kind with a preload the forkserver that imported it.  One forkserver
    per supervisor: every kind with a preload must name the same modules."""
    global _forkserver_preload
    if not kind.preload:
        return SPAWN
    server: ForkServerContext = mp.get_context("forkserver")
    if _forkserver_preload is None:
        server.set_forkserver_preload(list(kind.preload))
        _forkserver_preload = kind.preload
    elif _forkserver_preload != kind.preload:
        raise ValueError(f"{kind.name}: preload {kind.preload} differs from the forkserver's "
                         f"{_forkserver_preload}")
    return server


def make_context(role: str, log_queue: Any, log_level: int) -> ChildContext:
    return ChildContext(role=role, stop_event=SharedFlag(), heartbeat=SPAWN.RawValue("d", 0.0),
                        ready_event=SharedFlag(), log_queue=log_queue, log_level=log_level)
