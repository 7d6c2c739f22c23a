"""The supervisor's own loop, in process: child checks, restarts, stop order and reloads.

The children are real spawned processes running the small functions below, so what is
tested is the supervisor's handling of real exits, real silence and real signals; the
daemon's end-to-end tests (tests/daemon) run it with the real children.
"""

from __future__ import annotations

import os
import queue
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from facewatch.config import load_resolved
from facewatch.errors import EXIT_CONFIG
from facewatch.processes.channels import Channel, ControlCommand, LogRecordCodec
from facewatch.processes.child import ChildContext, ChildKind
from facewatch.supervisor.supervisor import Supervisor, remove_stale_metrics_dirs

# -- children -----------------------------------------------------------------------------------


def _finishes(ctx: ChildContext) -> None:
    ctx.ready()


def _crashes(ctx: ChildContext) -> None:
    ctx.ready()
    raise RuntimeError("a bug")


def _goes_silent(ctx: ChildContext) -> None:
    ctx.ready()
    time.sleep(60)  # stuck in a C call, say: alive, but no heartbeat


def _loads_slowly(ctx: ChildContext) -> None:
    time.sleep(1.5)  # no beat while "loading models"
    ctx.ready()
    while not ctx.stopping():
        ctx.beat()
        time.sleep(0.05)


def _cannot_start(ctx: ChildContext) -> None:
    sys.exit(EXIT_CONFIG)


def _beats_then_notes_its_stop(ctx: ChildContext, record: str) -> None:
    ctx.ready()
    while not ctx.stopping():
        ctx.beat()
        time.sleep(0.02)
    with open(record, "a") as f:
        f.write(f"{ctx.role} {time.monotonic()}\n")


QUICK = ChildKind("quick", heartbeat_timeout_s=0.5)
FINISHING = ChildKind("finishing", may_finish=True)


# -- a supervisor without its real children -----------------------------------------------------


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "cameras": [{"name": "door", "url": str(tmp_path / "clip.mp4")}],
        "gallery": "gallery.yaml", "state_dir": "state",
        "outputs": {"zmq": {"bind": "tcp://127.0.0.1:*"}}, "metrics": {"enabled": False}}))
    return path


@pytest.fixture
def supervisor(config_file: Path) -> Iterator[Supervisor]:
    sup = Supervisor(load_resolved(config_file), config_file)
    sup._log_channel = Channel("logs", LogRecordCodec())
    yield sup
    for child in sup.children.values():
        child.stop(timeout=2.0)
    for channel in (sup.frames, sup.events, sup.control, sup._log_channel):
        channel.close()


def _add(sup: Supervisor, role: str, kind: ChildKind, target: Callable[..., None],
         *args: Any) -> Any:
    child = sup._child(role, kind, target, args)
    child.start()
    return child


def _until(condition: Callable[[], bool], timeout: float, sup: Supervisor) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        sup._check_children()
        time.sleep(0.05)


def test_a_child_that_may_finish_is_left_alone_others_are_restarted(supervisor: Supervisor
                                                                    ) -> None:
    done = _add(supervisor, "source:door", FINISHING, _finishes)
    crashed = _add(supervisor, "other", QUICK, _finishes)  # exit 0, but it may not finish
    _until(lambda: done.finished, 20, supervisor)
    first = crashed.process.pid if crashed.process else None
    _until(lambda: crashed.process is not None and crashed.process.pid != first, 20, supervisor)
    assert done.process is None and crashed.restarts


def test_restarts_back_off_while_they_keep_coming(supervisor: Supervisor) -> None:
    child = _add(supervisor, "crashy", QUICK, _crashes)
    delays = []
    for _ in range(4):
        _until(lambda: child.process is None, 20, supervisor)
        delays.append(child.next_start - time.monotonic())
        child.next_start = 0.0  # no need to wait it out here
        _until(lambda: child.process is not None, 20, supervisor)
    # at once the first time, then 1, 2, 4 s (less the moments spent in between)
    assert delays[0] <= 0.0
    assert [round(d) for d in delays[1:]] == [1, 2, 4]


def test_a_silent_child_is_restarted_but_not_while_it_starts(supervisor: Supervisor) -> None:
    silent = _add(supervisor, "silent", QUICK, _goes_silent)
    slow = _add(supervisor, "slow", ChildKind("slow", heartbeat_timeout_s=0.5,
                                               start_grace_s=10.0), _loads_slowly)
    first = silent.process.pid if silent.process else None
    _until(lambda: silent.restarts != [], 20, supervisor)
    assert silent.process is None or silent.process.pid != first
    _until(lambda: slow.ctx.ready_event.is_set(), 20, supervisor)
    assert slow.restarts == [], "restarted while it was still loading"


def test_a_child_that_cannot_start_with_this_config_stops_the_daemon(supervisor: Supervisor
                                                                     ) -> None:
    _add(supervisor, "publisher", ChildKind("publisher", start_grace_s=20.0), _cannot_start)
    _until(lambda: supervisor.flags.stop, 20, supervisor)
    assert supervisor.exit_code == EXIT_CONFIG


def test_children_stop_in_their_kinds_order(supervisor: Supervisor, tmp_path: Path) -> None:
    record = tmp_path / "stops"
    kinds = {"publisher": ChildKind("publisher", stop_order=3),
             "inference": ChildKind("inference", stop_order=1),
             "source:door": ChildKind("source", stop_order=0)}
    for role, kind in kinds.items():
        _add(supervisor, role, kind, _beats_then_notes_its_stop, str(record))
    _until(lambda: all(c.ctx.ready_event.is_set() for c in supervisor.children.values()), 20,
           supervisor)
    supervisor._shutdown()
    order = [line.split()[0] for line in record.read_text().splitlines()]
    assert order == ["source:door", "inference", "publisher"]


def test_sighup_with_an_unchanged_config_reloads_the_gallery(supervisor: Supervisor) -> None:
    supervisor._reload()
    assert supervisor.control.get(timeout=2) is ControlCommand.RELOAD_GALLERY


def test_sighup_with_a_busy_zeromq_address_keeps_the_running_config(
        supervisor: Supervisor, config_file: Path) -> None:
    import zmq

    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    squatter = context.socket(zmq.PUB)
    port = squatter.bind_to_random_port("tcp://127.0.0.1")
    try:
        data = yaml.safe_load(config_file.read_text())
        data["outputs"]["zmq"]["bind"] = f"tcp://127.0.0.1:{port}"
        config_file.write_text(yaml.safe_dump(data))
        running = supervisor.config
        supervisor._reload()
        assert supervisor.config is running
        with pytest.raises(queue.Empty):
            supervisor.control.get(timeout=0.2)
    finally:
        squatter.close(0)
        context.term()


def test_metrics_folders_of_earlier_runs_are_removed(tmp_path: Path) -> None:
    gone = tmp_path / "metrics-999999999"  # no such process
    mine = tmp_path / f"metrics-{os.getpid()}"
    other = tmp_path / "metrics-notes"  # not one of ours
    for folder in (gone, mine, other):
        folder.mkdir()
    assert remove_stale_metrics_dirs(tmp_path, os.getpid()) == [gone]
    assert mine.exists() and other.exists()
