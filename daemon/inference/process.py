"""The `inference` process: batched detection and embedding for every camera, then tracks,
identities and events.

Per batch: read each frame from its camera's ring (a frame overwritten meanwhile is dropped
and counted), detect and align every face of every frame in one pipeline call, let each
camera's tracker choose the faces worth embedding, embed those of all cameras in one call,
and turn the identity decisions into events for the publisher.

Lossless cameras (files read as fast as possible) lose no frame when the inference process
restarts: a frame counts as analysed (`LosslessCredit.analysed`) only once its events are queued, so
its ring slot is not reused before, and a new inference process starts by reading back from
the ring every frame after the last one analysed, whether or not its reference is still queued.
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from facewatch.config import stages
from facewatch.config.daemon import DaemonConfig
from facewatch.config.resolve import gallery_cache_dir
from facewatch.engines.store import ModelStore
from facewatch.errors import FacewatchError
from facewatch.events.schema import Event
from facewatch.events.snapshots import SnapshotStore
from facewatch.frames.ring import FrameRing
from facewatch.gallery import last_good
from facewatch.gallery.gallery import Gallery
from facewatch.gallery.watch import GalleryWatcher
from facewatch.identity import GalleryMatcher, IdentitySettings
from facewatch.inference import entry
from facewatch.inference.batcher import FrameBatcher
from facewatch.inference.camera_analysis import AnalysisSettings, CameraAnalysis, new_track_ids
from facewatch.metrics import Metrics
from facewatch.pipeline import FacePipeline
from facewatch.processes.channels import (
    BufferedSender,
    ChannelError,
    ControlCommand,
    InferenceChannels,
)
from facewatch.processes.child import ChildContext

log = logging.getLogger(__name__)

# Check for cameras that went quiet (to end their tracks) this often.
_IDLE_CHECK_S = 0.5

KIND = entry.KIND  # the supervisor starts it through facewatch.inference.entry


def analysis_settings(config: DaemonConfig) -> AnalysisSettings:
    r = config.recognition
    return AnalysisSettings(
        tracker=stages.tracker_settings(config.tracking),
        policy=stages.embed_policy_settings(config.tracking),
        identity=IdentitySettings(min_evidence=r.min_evidence, exit_margin=r.exit_margin))


def gallery_state_dir(config: DaemonConfig) -> Path:
    assert config.state_dir is not None
    return gallery_cache_dir(Path(config.state_dir))


def _metadata(gallery: Gallery) -> Any:
    people = {p.id: dict(p.metadata) for p in gallery.people}
    return lambda person_id: people.get(person_id, {})


class InferenceLoop:
    """The inference process's loop, separate from process plumbing so a test can drive it."""

    def __init__(self, config: DaemonConfig, channels: InferenceChannels, metrics: Metrics) -> None:
        self.config = config
        self.channels = channels
        self.metrics = metrics
        self.events: BufferedSender[Event] = BufferedSender(channels.events)
        inference = config.inference
        store = ModelStore(Path(inference.models_dir)) if inference.models_dir else ModelStore()
        from facewatch.engines.backends.tensorrt.profiles import camera_frame_sizes

        self.pipeline = FacePipeline.load(replace(
            inference.pipeline_settings(), frame_sizes=tuple(camera_frame_sizes(config))), store)
        self.gallery = self._open_gallery()
        for issue in self.gallery.report.issues:
            log.error("gallery: not enrolled: %s", issue)
        log.info("gallery: %s", self.gallery.operating_point.describe())
        recognition = config.recognition
        self.watcher = GalleryWatcher(config.gallery_path, self.pipeline, gallery_state_dir(config),
                                      threshold=recognition.threshold,
                                      max_false_rate=recognition.max_false_rate)
        self.watcher.loaded(self.gallery)
        snapshots = None
        if config.snapshots.enabled and config.snapshots.dir is not None:
            snapshots = SnapshotStore(Path(config.snapshots.dir), config.snapshots.max_files,
                                      config.snapshots.jpeg_quality)
        settings = analysis_settings(config)
        matcher = GalleryMatcher(self.gallery)
        track_ids = new_track_ids()  # one counter: track ids unique across cameras
        library_views = config.library.embeddings_per_track \
            if channels.library is not None and config.library.enabled else 0
        embedder_sha = self.pipeline.embedder.manifest.sha256 if self.pipeline.embedder else ""
        cams = config.enabled_cameras
        # periodic full-frame passes spread over the cameras (phase), not all in one batch
        self.cameras = {c.name: CameraAnalysis(c.name, settings, matcher, snapshots,
                                               _metadata(self.gallery), track_ids,
                                               library_views, embedder_sha,
                                               c.detection_settings(inference, i / len(cams)))
                        for i, c in enumerate(cams)}
        self._records_dropped = 0
        self.rings = {cam: FrameRing.attach(name) for cam, name in channels.rings.items()}
        live = frozenset(c.name for c in config.enabled_cameras if c.name not in channels.lossless)
        self.batcher = FrameBatcher(
            channels.frames, stages.batch_settings(inference),
            live_cameras=live, active_cameras=len(self.cameras))
        self._resume_lossless()
        self._last_frame_at: dict[str, float] = {}
        self._last_ts: dict[str, float] = {}
        self._last_idle_check = 0.0
        self._dropped_seen: dict[str, int] = {}

    def _open_gallery(self) -> Gallery:
        """The gallery file's people; if the file is broken now (the daemon checked it at start,
        so it broke since), the last gallery that loaded, so nobody is forgotten."""
        source, state = self.config.gallery_path, gallery_state_dir(self.config)
        # a fixed threshold, or the target the gallery's operating point is chosen for
        fixed, target = self.config.recognition.threshold, self.config.recognition.max_false_rate
        try:
            # no gallery file yet is normal: nobody is named until someone is enrolled
            gallery = Gallery.open(source, self.pipeline, state_dir=state, skip_bad=True,
                                   missing_ok=True, threshold=fixed, max_false_rate=target)
        except FacewatchError as exc:
            self.metrics.gallery_reloads.labels("error").inc()
            spec = last_good.recall(state)
            if spec is None:
                raise
            log.error("gallery not loaded, the last one that loaded is used until it is "
                      "fixed: %s", exc)
            return Gallery.build(spec, self.pipeline, state, skip_bad=True, threshold=fixed,
                                 max_false_rate=target)
        last_good.remember(gallery.spec, state)
        return gallery

    def _resume_lossless(self) -> None:
        """Frames of lossless cameras written but not analysed (a previous inference process died
        with them, or their references are still queued): analysed first, in order."""
        for cam, credit in self.channels.lossless.items():
            ring = self.rings[cam]
            first, end = int(credit.analysed.value) + 1, ring.next_seq
            refs = [r for r in (ring.ref_at(seq) for seq in range(first, end)) if r is not None]
            if refs:
                log.info("%s: resuming at frame %d (%d frame(s) not yet analysed)", cam,
                         refs[0].seq, len(refs))
            self.batcher.resume(refs)

    def finish(self) -> None:
        """End every live track (so each gets its track.ended) and detach from the rings."""
        for cam, analysis in self.cameras.items():
            if cam in self._last_ts:
                for event in analysis.end(self._last_ts[cam]):
                    self.events.send(event)
        self._send_records()
        # what the publisher has not taken yet: give it a moment (the stop budget bounds it)
        if self.events.flush(timeout=1.0):
            log.warning("%d event(s) could not be handed to the publisher before stopping",
                        self.events.waiting)
        for ring in self.rings.values():
            ring.close()

    def step(self, timeout: float = 0.5) -> int:
        """One batch; returns how many frames were analysed."""
        self._control()
        self._swap_gallery()
        self.watcher.poll()
        self._end_idle_tracks()
        self.events.flush()
        refs = self.batcher.next_batch(timeout)
        self._count_superseded()
        self.metrics.queue_bytes.labels("frames").set(self.channels.frames.pending_bytes())
        if not refs:
            return 0
        frames, metas = [], []
        for ref in refs:
            image = self.rings[ref.camera].read(ref)
            if image is None:
                self.metrics.frames_dropped.labels(ref.camera, "overwritten").inc()
                self._analysed([ref])
                continue
            frames.append(image)
            metas.append(ref)
        if not frames:
            return 0
        self.metrics.batch_size.observe(len(frames))
        t0 = time.perf_counter()
        requests = [self.cameras[ref.camera].plan(frame, ref.capture_ts)
                    for ref, frame in zip(metas, frames)]
        analysed = self.pipeline.analyze(frames, embed=False, requests=requests)
        t1 = time.perf_counter()
        for ref, work in zip(metas, self.pipeline.detector.last_kinds):
            self.metrics.detector_work.labels(ref.camera, work).inc()
        self.metrics.inference_seconds.labels("detect").observe(t1 - t0)
        events: list[Event] = []
        crops, sizes = [], []
        for ref, frame, faces in zip(metas, frames, analysed):
            c, started = self.cameras[ref.camera].select(frame, faces, ref.capture_ts)
            crops.append(c)
            sizes.append(c.shape[0])
            events += started
        embeddings = self._embed(crops)
        t2 = time.perf_counter()
        if sum(sizes):
            self.metrics.inference_seconds.labels("embed").observe(t2 - t1)
        for ref, emb in zip(metas, np.split(embeddings, np.cumsum(sizes)[:-1])):
            events += self.cameras[ref.camera].apply(emb)
            self._last_frame_at[ref.camera] = time.monotonic()
            self._last_ts[ref.camera] = ref.capture_ts
            self.metrics.frames_analysed.labels(ref.camera).inc()
        now = time.time()
        for ref in metas:
            self.metrics.frame_latency.observe(max(0.0, now - ref.capture_ts))
        for event in events:
            self.events.send(event)
        self._send_records()
        self._analysed(metas)
        return len(frames)

    def _send_records(self) -> None:
        """Ended segments to the library process; what it cannot take now is dropped and
        counted (the library is a record, not the pipeline: recognition never waits for it)."""
        channel = self.channels.library
        for analysis in self.cameras.values():
            for record in analysis.take_records():
                if channel is None:
                    continue
                try:
                    channel.put_nowait(record)
                except (queue.Full, ChannelError) as exc:
                    self._records_dropped += 1
                    self.metrics.library_dropped.labels(
                        "queue_full" if isinstance(exc, queue.Full) else "too_large").inc()
                    if self._records_dropped in (1, 10, 100) or self._records_dropped % 1000 == 0:
                        log.warning("face library: %d track record(s) dropped so far (the "
                                    "library process is not keeping up, or is restarting)",
                                    self._records_dropped)

    def _analysed(self, refs: list[Any]) -> None:
        """Tell lossless sources these frames are done (their events are queued)."""
        for ref in refs:
            credit = self.channels.lossless.get(ref.camera)
            if credit is not None:
                credit.analysed.value = ref.seq
                credit.ring()

    def _embed(self, crops: list[np.ndarray]) -> np.ndarray:
        assert self.pipeline.embedder is not None
        flat = np.concatenate(crops) if crops else np.zeros((0, 112, 112, 3), np.uint8)
        return self.pipeline.embedder.embed(flat)

    def _control(self) -> None:
        while True:
            try:
                command = self.channels.control.get_nowait()
            except queue.Empty:
                return
            if command is ControlCommand.RELOAD_GALLERY:
                log.info("reloading the gallery (asked by the supervisor)")
                self.watcher.poll(force=True)

    def _swap_gallery(self) -> None:
        result = self.watcher.take_result()
        if result is None:
            return
        if result.gallery is None:
            self.metrics.gallery_reloads.labels("error").inc()
            return
        self.gallery = result.gallery
        matcher = GalleryMatcher(self.gallery)
        for cam in self.cameras.values():
            cam.set_matcher(matcher, _metadata(self.gallery))
        self.metrics.gallery_reloads.labels("ok").inc()

    def _end_idle_tracks(self) -> None:
        """A camera that stopped sending frames (offline, end of file) ends its tracks once
        they would have timed out anyway."""
        now = time.monotonic()
        if now - self._last_idle_check < _IDLE_CHECK_S:
            return
        self._last_idle_check = now
        limit = self.config.tracking.max_lost_s + 0.5
        for cam, at in list(self._last_frame_at.items()):
            if now - at > limit:
                events = self.cameras[cam].end(self._last_ts[cam] + self.config.tracking.max_lost_s)
                for event in events:
                    self.events.send(event)
                self._send_records()
                del self._last_frame_at[cam]

    def _count_superseded(self) -> None:
        for cam, n in self.batcher.dropped.items():
            new = n - self._dropped_seen.get(cam, 0)
            if new:
                self.metrics.frames_dropped.labels(cam, "superseded").inc(new)
                self._dropped_seen[cam] = n


def run_inference(ctx: ChildContext, config: DaemonConfig, channels: InferenceChannels) -> None:
    metrics = Metrics()
    loop = InferenceLoop(config, channels, metrics)
    log.info("inference process ready: %s on %s, %d people in the gallery, cameras %s",
             config.inference.embedder, config.inference.backend, len(loop.gallery.people),
             ", ".join(loop.cameras))
    ctx.ready()
    try:
        while not ctx.stopping():
            loop.step()
            ctx.beat()
    finally:
        loop.finish()
