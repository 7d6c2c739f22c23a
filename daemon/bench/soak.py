"""`facewatch bench soak`: the real daemon for minutes on N looping streams, with faults.

    facewatch bench soak --source clip.mp4 --gallery people.yaml --streams 4 --minutes 10 --faults

Like `bench pipeline`, the daemon runs as a subprocess exactly as `facewatch run` starts it,
on N file cameras playing one video in real time and in a loop.  Its events go to a mosquitto
broker the bench starts itself (with persistence, so that a restart loses no session) and to
a JSON-lines file.  Meanwhile the bench samples the resident memory and the open file
descriptors of the daemon's whole process tree, and with `--faults` it provokes, in turn
every `--fault-every` seconds: SIGKILL of the inference process, SIGKILL of one stream process, and the
broker stopped for `--outage` seconds.

At the end (broker up, faults over) it waits for the outbox to empty, stops the daemon, and
compares what the daemon numbered (the JSON-lines file, its own record) with what an MQTT
subscriber with a persistent session received: expected, received, lost (must be 0),
duplicates, out of order; plus RSS and fd at start, end and maximum, and restarts per role.
Exit code 1 if any event was lost.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facewatch.bench.pipeline import scrape_metrics
from facewatch.cli.output import emit
from facewatch.errors import BadInputError, FacewatchError

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
_READY_S = 300.0
_SETTLE_S = 120.0


def register(bsub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = bsub.add_parser("soak", parents=[common],
                        help="the daemon for minutes on N streams, with faults: memory, fds, "
                             "events lost")
    p.add_argument("--streams", type=int, default=4, help="simultaneous streams (default: 4)")
    p.add_argument("--minutes", type=float, default=10.0, help="how long to run (default: 10)")
    p.add_argument("--source", type=Path, required=True, metavar="FILE",
                   help="video every stream plays (in a loop, at its native rate)")
    p.add_argument("--fps", type=float, default=10.0, help="analysis rate per stream (default: 10)")
    p.add_argument("--gallery", type=Path, metavar="G",
                   help="gallery to recognise against (default: an empty one)")
    p.add_argument("--faults", action="store_true",
                   help="kill the inference process, kill a stream process, stop the broker, in turn")
    p.add_argument("--fault-every", type=float, default=30.0, metavar="S",
                   help="seconds between faults (default: 30)")
    p.add_argument("--outage", type=float, default=20.0, metavar="S",
                   help="how long the broker stays stopped (default: 20)")
    p.add_argument("--sample-every", type=float, default=5.0, metavar="S",
                   help="seconds between memory/fd samples (default: 5)")
    p.add_argument("--warmup", type=float, default=20.0, metavar="S",
                   help="the 'start' figures are the first sample after this many seconds: "
                        "ONNX Runtime's arenas grow over the first batches (default: 20)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, events)")
    p.set_defaults(handler=_soak)


# -- the process tree ------------------------------------------------------------------------


def _processes() -> dict[int, tuple[int, str]]:
    """pid → (ppid, comm) of every process."""
    out: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            out[int(entry)] = (int(fields[1]), comm)
    return out


def _tree(root: int) -> dict[int, str]:
    """`root` and its descendants: pid → comm."""
    procs = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in procs:
            out[pid] = procs[pid][1]
            todo += children.get(pid, [])
    return out


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


@dataclass
class Sample:
    t: float  # seconds since the daemon was ready
    rss_mib: float
    fds: int
    processes: int


def sample(root: int, t: float) -> Sample:
    tree = _tree(root)
    return Sample(t, sum(_rss_kib(p) for p in tree) / 1024, sum(_fds(p) for p in tree), len(tree))


# -- the broker and the subscriber -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A mosquitto on 127.0.0.1 owned by the bench; persistent, so that the subscriber's
    session (and what is queued for it) outlives a stop and start."""

    def __init__(self, workdir: Path) -> None:
        if not os.access(MOSQUITTO, os.X_OK):
            raise BadInputError("bench soak needs mosquitto (apt-get install mosquitto)")
        self.port = _free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.conf = workdir / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true",
                 "set_tcp_nodelay true", "persistence true",
                 f"persistence_location {workdir}/", "autosave_interval 1",
                 "max_queued_messages 1000000", "log_dest stderr", "log_type error",
                 "log_type warning"]
        if os.geteuid() == 0:
            lines.append("user root")
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        with open(self.workdir / "mosquitto.log", "ab") as log:
            self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise FacewatchError(f"mosquitto did not start; see {self.workdir / 'mosquitto.log'}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


class Subscriber:
    """A persistent-session QoS 1 subscriber to `<prefix>/events`: (event_id, seq) in
    arrival order."""

    def __init__(self, port: int, topic: str = "facewatch/events") -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.received: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="facewatch-soak",
                             clean_session=False)
        client.reconnect_delay_set(min_delay=1, max_delay=1)
        client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        client.on_subscribe = lambda *_: subscribed.set()
        client.on_message = self._on_message
        client.connect("127.0.0.1", port)
        client.loop_start()
        if not subscribed.wait(10):
            raise FacewatchError("the MQTT subscriber got no SUBACK")
        self.client = client

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        event = json.loads(message.payload)
        with self._lock:
            self.received.append((event["event_id"], int(event["seq"])))

    def snapshot(self) -> list[tuple[str, int]]:
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- the run -------------------------------------------------------------------------------------


def _metric(metrics: dict[str, float], name: str, label: str = "") -> float:
    return sum(v for k, v in metrics.items()
               if k.split("{", 1)[0] == name and label in k)


@dataclass
class Faults:
    """The faults done so far, in order: (seconds since ready, what)."""

    done: list[tuple[float, str]] = field(default_factory=list)
    _next: int = 0

    def next_kind(self) -> str:
        kind = ("inference", "stream", "broker")[self._next % 3]
        self._next += 1
        return kind


def _child(daemon: int, role: str) -> int | None:
    comm = f"fw.{role}"[:15]
    for pid, name in _tree(daemon).items():
        if name == comm:
            return pid
    return None


def _soak(args: argparse.Namespace) -> int:
    if not args.source.is_file():
        raise BadInputError(f"{args.source}: no such file")
    if not 1 <= args.streams <= 64:
        raise BadInputError("--streams must be between 1 and 64")
    if args.minutes <= 0:
        raise BadInputError("--minutes must be positive")
    work = Path(tempfile.mkdtemp(prefix="facewatch-soak-"))
    try:
        doc = _run(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    doc["work_dir"] = str(work) if args.keep else None
    s = doc["samples"]
    faults = f" ({', '.join(k for _, k in doc['faults'])})" if doc["faults"] else ""
    lines = [
        (f"{args.streams} stream(s) of {args.source.name} at {args.fps:g} fps for "
         f"{doc['seconds'] / 60:.1f} min, faults: {len(doc['faults'])}{faults}"),
        (f"events: {doc['events_expected']} numbered by the daemon, {doc['events_received']} "
         f"received over MQTT, lost {doc['events_lost']}, duplicates {doc['duplicates']}, "
         f"out of order {doc['out_of_order']}, seq gaps in the daemon's record "
         f"{doc['seq_gaps']}, dropped by the outbox {doc['outbox_dropped']:.0f}"),
        (f"RSS of the process tree: {s['rss_mib_at_ready']:.0f} MiB at the first analysed "
         f"frame; after {s['warmup_s']:g} s warm-up {s['rss_mib_start']:.0f} MiB, end "
         f"{s['rss_mib_end']:.0f} MiB, max {s['rss_mib_max']:.0f} MiB"),
        (f"open fds of the process tree: start {s['fds_start']}, end {s['fds_end']}, "
         f"max {s['fds_max']}"),
        "restarts: " + (", ".join(f"{k} {v:.0f}" for k, v in doc["restarts"].items()) or "none"),
    ]
    emit(args.json, doc, lines)
    return 0 if doc["events_lost"] == 0 else 1


def _run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    gallery = args.gallery
    if gallery is None:
        gallery = work / "gallery.yaml"
        gallery.write_text("people: []\n")
    broker = Broker(work)
    broker.start()
    subscriber: Subscriber | None = None
    proc: subprocess.Popen[bytes] | None = None
    metrics_port = _free_port()
    try:
        subscriber = Subscriber(broker.port)
        config = {
            "cameras": [{"name": f"s{i}", "url": str(args.source.resolve()), "fps": args.fps,
                         "realtime": True, "loop": True} for i in range(args.streams)],
            "gallery": str(gallery.resolve()),
            "outputs": {"zmq": False, "jsonl": str(work / "events.jsonl"),
                        "mqtt": {"host": "127.0.0.1", "port": broker.port}},
            "state_dir": str(work / "state"),
            "inference": {"threads": args.threads,
                          **({"models_dir": str(args.models)} if args.models else {})},
            "snapshots": {"max_files": 200},
            "metrics": {"port": metrics_port},
        }
        config_path = work / "config.yaml"
        config_path.write_text(json.dumps(config))  # JSON is YAML
        with open(work / "daemon.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "facewatch", "run", "--config",
                                     str(config_path)], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=log)
        _wait_ready(proc, metrics_port, work)
        samples, faults, seconds = _loop(args, proc, broker, work)
        if broker.process is None:
            broker.start()
        metrics = _settle(proc, metrics_port, work)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        written = _read_jsonl(work / "events.jsonl")
        _wait_received(subscriber, {e for e, _ in written})
        received = subscriber.snapshot()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if subscriber is not None:
            subscriber.close()
        broker.stop()
    return _report(args, samples, faults, seconds, metrics, written, received, code)


def _wait_ready(proc: subprocess.Popen[bytes], port: int, work: Path) -> None:
    deadline = time.monotonic() + _READY_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise FacewatchError(f"the daemon exited with code {proc.returncode}; see "
                                 f"{work / 'daemon.log'} (--keep keeps it)")
        try:
            if _metric(scrape_metrics(port), "facewatch_frames_analysed_total") > 0:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise FacewatchError(f"the daemon analysed nothing within {_READY_S:.0f} s")


def _loop(args: argparse.Namespace, proc: subprocess.Popen[bytes], broker: Broker,
          work: Path) -> tuple[list[Sample], Faults, float]:
    start = time.monotonic()
    end = start + args.minutes * 60
    samples = [sample(proc.pid, 0.0)]
    faults = Faults()
    next_sample = start + args.sample_every
    next_fault = start + args.fault_every
    broker_back_at: float | None = None
    stream = 0
    while (now := time.monotonic()) < end:
        if proc.poll() is not None:
            raise FacewatchError(f"the daemon exited with code {proc.returncode} during the "
                                 f"soak; see {work / 'daemon.log'} (--keep keeps it)")
        if broker_back_at is not None and now >= broker_back_at:
            broker.start()
            broker_back_at = None
            faults.done.append((now - start, "broker started"))
        if args.faults and now >= next_fault and broker_back_at is None:
            kind = faults.next_kind()
            if kind == "inference":
                _kill(proc.pid, "inference")
            elif kind == "stream":
                _kill(proc.pid, f"source:s{stream % args.streams}")
                stream += 1
            else:
                broker.stop()
                broker_back_at = now + args.outage
            faults.done.append((now - start, {"inference": "inference killed",
                                              "stream": "stream process killed",
                                              "broker": "broker stopped"}[kind]))
            next_fault = now + args.fault_every
        if now >= next_sample:
            samples.append(sample(proc.pid, now - start))
            next_sample = now + args.sample_every
        time.sleep(0.2)
    samples.append(sample(proc.pid, time.monotonic() - start))
    return samples, faults, time.monotonic() - start


def _kill(daemon: int, role: str) -> None:
    pid = _child(daemon, role)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)


def _settle(proc: subprocess.Popen[bytes], port: int, work: Path) -> dict[str, float]:
    """Wait for the outbox to empty (the broker is up); the metrics at that point."""
    deadline = time.monotonic() + _SETTLE_S
    metrics: dict[str, float] = {}
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            metrics = scrape_metrics(port)
        except OSError:
            time.sleep(0.5)
            continue
        if _metric(metrics, "facewatch_outbox_pending") == 0:
            break
        time.sleep(0.5)
    return metrics


def _read_jsonl(path: Path) -> list[tuple[str, int]]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [(e["event_id"], int(e["seq"])) for e in map(json.loads, lines)]


def _wait_received(subscriber: Subscriber, wanted: set[str], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if wanted <= {e for e, _ in subscriber.snapshot()}:
            return
        time.sleep(0.2)


def _report(args: argparse.Namespace, samples: list[Sample], faults: Faults, seconds: float,
            metrics: dict[str, float], written: list[tuple[str, int]],
            received: list[tuple[str, int]], exit_code: int) -> dict[str, Any]:
    expected = {e for e, _ in written}
    seen: set[str] = set()
    firsts: list[int] = []
    for event_id, seq in received:
        if event_id not in seen:
            seen.add(event_id)
            firsts.append(seq)
    seqs = [s for _, s in written]
    restarts = {k.split('role="', 1)[1].split('"', 1)[0]: v for k, v in metrics.items()
                if k.startswith("facewatch_process_restarts_total{")}
    warm = [s for s in samples if s.t >= args.warmup] or samples[-1:]
    rss = [s.rss_mib for s in warm]
    fds = [s.fds for s in warm]
    return {
        "streams": args.streams, "source": str(args.source), "fps": args.fps,
        "minutes": args.minutes, "seconds": seconds, "faults_enabled": args.faults,
        "faults": [(round(t, 1), what) for t, what in faults.done],
        "events_expected": len(expected),
        "events_received": len(seen & expected),
        "events_lost": len(expected - seen),
        "duplicates": len(received) - len(seen),
        "out_of_order": sum(1 for a, b in itertools.pairwise(firsts) if b < a),
        "seq_gaps": sum(1 for a, b in itertools.pairwise(seqs) if b != a + 1),
        "outbox_dropped": _metric(metrics, "facewatch_outbox_dropped_total"),
        "restarts": restarts,
        "daemon_exit_code": exit_code,
        "samples": {
            "warmup_s": args.warmup, "rss_mib_at_ready": samples[0].rss_mib,
            "rss_mib_start": rss[0], "rss_mib_end": rss[-1], "rss_mib_max": max(rss),
            "fds_start": fds[0], "fds_end": fds[-1], "fds_max": max(fds),
            "every": [{"t": round(s.t, 1), "rss_mib": round(s.rss_mib, 1), "fds": s.fds,
                       "processes": s.processes} for s in samples],
        },
    }
