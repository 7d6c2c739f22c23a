"""Prometheus metrics shared by every process of the daemon.

prometheus-client's multiprocess mode: each process writes its samples to memory-mapped files
in one directory, and the supervisor's HTTP endpoint merges them.  The directory must be set in
the environment before any child starts (children are spawned and inherit it), which is why
nothing here touches prometheus_client at import time.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 32, 64)


def prepare_multiprocess_dir(directory: Path) -> None:
    """Start with an empty samples directory and point this process (and its children) at it."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(directory)


class Metrics:
    """The daemon's metrics.  Each process makes its own instance (a private registry: no
    global state); in multiprocess mode the values land in the shared directory anyway."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        r = self.registry = CollectorRegistry(auto_describe=True)
        self.frames_decoded = Counter(
            "facewatch_frames_decoded_total", "Frames decoded, per camera", ["camera"], registry=r)
        self.frames_analysed = Counter(
            "facewatch_frames_analysed_total", "Frames run through detection, per camera",
            ["camera"], registry=r)
        self.frames_dropped = Counter(
            "facewatch_frames_dropped_total",
            "Frames dropped before analysis, per camera and where (queue full, superseded by a "
            "newer frame, overwritten in the ring)", ["camera", "where"], registry=r)
        self.detector_work = Counter(
            "facewatch_detector_frames_total",
            "Analysed frames per camera by what the detector ran on them: full (the whole "
            "frame), regions (where the picture changed, and tracked faces), refresh (tracked "
            "faces only), none (nothing changed, no face)", ["camera", "work"], registry=r)
        self.reconnects = Counter(
            "facewatch_stream_reconnects_total", "Reconnection attempts, per camera", ["camera"],
            registry=r)
        self.batch_size = Histogram(
            "facewatch_inference_batch_size", "Frames per inference batch", buckets=_BATCH_BUCKETS,
            registry=r)
        self.inference_seconds = Histogram(
            "facewatch_inference_seconds", "Time per batch, per stage (detect, embed)", ["stage"],
            buckets=_LATENCY_BUCKETS, registry=r)
        self.frame_latency = Histogram(
            "facewatch_frame_latency_seconds", "Frame capture to end of its analysis",
            buckets=_LATENCY_BUCKETS, registry=r)
        self.publish_latency = Histogram(
            "facewatch_event_latency_seconds", "Frame capture to publication of its event",
            ["type"], buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_bytes = Gauge(
            "facewatch_queue_bytes", "Bytes of messages waiting in a channel between processes "
            "(frames: frame references; events: events for the publisher)", ["queue"],
            multiprocess_mode="livemax", registry=r)
        self.events_dropped = Counter(
            "facewatch_events_dropped_total", "Events dropped before the publisher took them "
            "(its channel and the sender's buffer of 100,000 were full)", registry=r)
        self.events = Counter(
            "facewatch_events_total", "Events published, per type", ["type"], registry=r)
        self.publish_failures = Counter(
            "facewatch_publish_failures_total", "Failed hand-overs to a transport",
            ["publisher"], registry=r)
        self.gallery_reloads = Counter(
            "facewatch_gallery_reloads_total", "Gallery reloads, by result (ok, error)",
            ["result"], registry=r)
        self.outbox_pending = Gauge(
            "facewatch_outbox_pending", "Events stored in the outbox, waiting for the MQTT "
            "broker's acknowledgement", multiprocess_mode="livemax", registry=r)
        self.outbox_dropped = Counter(
            "facewatch_outbox_dropped_total", "Undelivered events dropped from the outbox over "
            "its bounds (outbox.max_events, outbox.max_age_h)", registry=r)
        self.config_reloads = Counter(
            "facewatch_config_reloads_total", "Config reloads on SIGHUP, by result (ok, error)",
            ["result"], registry=r)
        self.library_stored = Counter(
            "facewatch_library_faces_stored_total", "Track records stored in the face library",
            registry=r)
        self.library_dropped = Counter(
            "facewatch_library_records_dropped_total", "Track records the face library could "
            "not store, by reason (storage, invalid, duplicate, unavailable, error)", ["reason"],
            registry=r)
        self.library_deleted = Counter(
            "facewatch_library_faces_deleted_total", "Faces deleted by the library's retention "
            "(library.max_age_days, library.max_faces)", ["reason"], registry=r)
        self.restarts = Counter(
            "facewatch_process_restarts_total", "Child processes restarted, per role", ["role"],
            registry=r)


def serve(bind: str, port: int) -> Any:
    """Serve the merged metrics of every process; returns the server (call .shutdown())."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    class Collector(MultiProcessCollector):
        """Children come and go while a scrape reads their files: one that dies has its live
        gauges' files removed (`process_died`) after the scrape listed them, one that starts
        has a file not yet filled in.  Either failed the scrape with HTTP 500; such a scrape is
        simply made again."""

        def collect(self) -> Any:
            for attempt in range(5):
                try:
                    return list(super().collect())  # type: ignore[no-untyped-call]
                except (OSError, ValueError, struct.error) as exc:
                    if attempt == 4:
                        raise
                    log.debug("metrics scrape retried: %s", exc)
                    time.sleep(0.02)
            return []

    registry = CollectorRegistry()
    Collector(registry)  # type: ignore[no-untyped-call]
    server, _thread = start_http_server(port, addr=bind, registry=registry)
    return server


def process_died(pid: int) -> None:
    """Drop a dead process's live gauges from the merged view."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
