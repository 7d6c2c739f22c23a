"""The face tracker and the embedding policy on hand-made boxes: association, states, timeouts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from facewatch.detection.detections import Detections
from facewatch.errors import ConfigError
from facewatch.tracking import (
    EmbedPolicy,
    EmbedPolicySettings,
    FaceTracker,
    TrackerSettings,
    TrackState,
    TrackUpdate,
)
from facewatch.tracking.association import iou_matrix, match
from facewatch.tracking.kalman import BoxKalman

FPS = 10.0


def dets(*faces: tuple[float, float, float, float, float]) -> Detections:
    """Detections from (x, y, w, h, score) tuples."""
    if not faces:
        return Detections.empty()
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h, _ in faces], np.float32)
    scores = np.array([s for *_, s in faces], np.float32)
    return Detections(boxes, scores, np.zeros((len(faces), 5, 2), np.float32))


def run(tracker: FaceTracker, frames: Sequence[Detections], start: float = 0.0,
        fps: float = FPS) -> list[TrackUpdate]:
    return [tracker.update(d, start + i / fps) for i, d in enumerate(frames)]


def moving(x0: float, vx: float, n: int, y: float = 100.0, w: float = 60.0, h: float = 80.0,
           score: float = 0.99, fps: float = FPS) -> list[tuple[float, float, float, float, float]]:
    """One face moving horizontally at vx pixels per second, one box per frame."""
    return [(x0 + vx * i / fps, y, w, h, score) for i in range(n)]


# --- association ------------------------------------------------------------------------


def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    iou = iou_matrix(a, b)
    assert iou.shape == (2, 3)
    assert iou[0, 0] == pytest.approx(1.0)
    assert iou[0, 1] == pytest.approx(50 / 150)
    assert iou[0, 2] == 0.0
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)


def test_match_is_optimal_where_greedy_is_not() -> None:
    # Greedy would pair (0, 0) at 0.9 and leave track 1 with nothing above the threshold;
    # the optimum pairs both.
    iou = np.array([[0.9, 0.8], [0.7, 0.2]])
    assert sorted(match(iou, 0.3)) == [(0, 1), (1, 0)]


def test_match_never_pairs_below_threshold() -> None:
    assert match(np.array([[0.29, 0.1]]), 0.3) == []
    assert match(np.zeros((0, 3)), 0.3) == []
    assert match(np.array([[0.5], [0.6]]), 0.3) == [(1, 0)]


# --- lifecycle ---------------------------------------------------------------------------


def test_track_is_confirmed_after_min_hits_and_keeps_its_id() -> None:
    tracker = FaceTracker()
    updates = run(tracker, [dets(f) for f in moving(100, 50, 6)])
    first, second = updates[0], updates[1]
    assert first.detection_tracks == (None,)  # tentative: not reported yet
    assert [t.state for t in first.tracks] == [TrackState.TENTATIVE]
    assert second.started == (1,)
    assert second.detection_tracks == (1,)
    assert all(u.detection_tracks == (1,) for u in updates[1:])
    assert all(u.started == () for u in updates[2:])
    info = updates[-1].tracks[0]
    assert info.state is TrackState.CONFIRMED and info.hits == 6 and info.detection == 0
    assert info.first_ts == 0.0 and info.last_ts == pytest.approx(0.5)


def test_min_hits_one_confirms_at_once() -> None:
    u = FaceTracker(TrackerSettings(min_hits=1)).update(dets((10, 10, 50, 60, 0.95)), 0.0)
    assert u.started == (1,) and u.detection_tracks == (1,)


def test_unmatched_tentative_track_is_dropped_silently() -> None:
    tracker = FaceTracker()
    updates = run(tracker, [dets((10, 10, 50, 60, 0.95)), dets(), dets()])
    assert updates[1].tracks == () and all(u.ended == () for u in updates)


def test_lost_track_is_kept_for_max_lost_s_of_capture_time() -> None:
    tracker = FaceTracker(TrackerSettings(max_lost_s=1.5))
    face = (100, 100, 60, 80, 0.99)
    run(tracker, [dets(face)] * 3)  # t = 0.0, 0.1, 0.2; last seen 0.2
    lost = tracker.update(dets(), 0.3)
    assert lost.tracks[0].state is TrackState.LOST and lost.detection_tracks == ()
    # 1.4 s after it was last seen, at 10 fps: still there, and it comes back
    for i in range(4, 16):
        assert tracker.update(dets(), i / 10).ended == ()
    back = tracker.update(dets(face), 1.6)
    assert back.detection_tracks == (1,) and back.reacquired == (1,)
    assert back.tracks[0].state is TrackState.CONFIRMED


def test_lost_track_ends_after_max_lost_s_whatever_the_frame_count() -> None:
    face = (100, 100, 60, 80, 0.99)
    # many frames within the window: kept
    a = FaceTracker(TrackerSettings(max_lost_s=1.5))
    run(a, [dets(face)] * 2)
    for i in range(2, 16):  # up to t = 1.5: 1.4 s after last seen at 0.1
        assert a.update(dets(), i / 10).ended == ()
    # one frame after a 1.6 s gap (dropped frames): ended, and the face starts a new track
    b = FaceTracker(TrackerSettings(max_lost_s=1.5))
    run(b, [dets(face)] * 2)
    u = b.update(dets(face), 1.7)
    assert [(e.track_id, e.reason) for e in u.ended] == [(1, "timeout")]
    assert u.ended[0].last_ts == pytest.approx(0.1) and u.ended[0].hits == 2
    assert u.detection_tracks == (None,) and [t.track_id for t in u.tracks] == [2]


def test_end_all_ends_confirmed_and_lost_tracks_only() -> None:
    tracker = FaceTracker()
    run(tracker, [dets((0, 0, 50, 60, 0.99), (300, 0, 50, 60, 0.99))] * 2)
    tracker.update(dets((0, 0, 50, 60, 0.99), (150, 150, 50, 60, 0.99)), 0.2)  # 2 lost, 3 new
    u = tracker.end_all()
    assert sorted((e.track_id, e.reason) for e in u.ended) == [(1, "stopped"), (2, "stopped")]
    assert u.capture_ts == pytest.approx(0.2)
    assert tracker.update(dets(), 0.3).tracks == ()


def test_timestamps_must_not_go_backwards() -> None:
    tracker = FaceTracker()
    tracker.update(dets(), 1.0)
    tracker.update(dets(), 1.0)  # a repeated timestamp is fine
    with pytest.raises(ValueError, match="backwards"):
        tracker.update(dets(), 0.9)
    with pytest.raises(ValueError, match="finite"):
        tracker.update(dets(), float("nan"))


# --- two stages --------------------------------------------------------------------------


def test_low_score_detection_extends_a_confirmed_track() -> None:
    tracker = FaceTracker()
    run(tracker, [dets((100, 100, 60, 80, 0.99))] * 2)
    u = tracker.update(dets((102, 100, 60, 80, 0.8)), 0.2)
    assert u.detection_tracks == (1,)
    assert u.tracks[0].state is TrackState.CONFIRMED and u.tracks[0].score == pytest.approx(0.8)


def test_low_score_detection_never_starts_confirms_or_revives_a_track() -> None:
    low = (100, 100, 60, 80, 0.8)
    assert all(u.tracks == () for u in run(FaceTracker(), [dets(low)] * 5))
    # a tentative track is not confirmed by a low-score detection (it is dropped)
    u = run(FaceTracker(), [dets((100, 100, 60, 80, 0.95)), dets(low)])
    assert u[1].started == () and u[1].tracks == ()
    # a lost track is not revived by one
    tracker = FaceTracker()
    run(tracker, [dets((100, 100, 60, 80, 0.99))] * 2)
    tracker.update(dets(), 0.2)
    u2 = tracker.update(dets(low), 0.3)
    assert u2.detection_tracks == (None,) and u2.tracks[0].state is TrackState.LOST


def test_an_established_track_is_matched_before_a_tentative_one() -> None:
    tracker = FaceTracker()
    run(tracker, [dets((100, 100, 60, 80, 0.99))] * 2)
    tracker.update(dets((100, 100, 60, 80, 0.99), (130, 100, 60, 80, 0.95)), 0.2)  # 2: tentative
    # one box between them, nearer the tentative one (IoU 0.85 against 0.41)
    u = tracker.update(dets((125, 100, 60, 80, 0.99)), 0.3)
    assert u.detection_tracks == (1,)
    assert [(t.track_id, t.state) for t in u.tracks] == [(1, TrackState.CONFIRMED)]


def test_below_low_score_is_ignored() -> None:
    tracker = FaceTracker()
    run(tracker, [dets((100, 100, 60, 80, 0.99))] * 2)
    u = tracker.update(dets((100, 100, 60, 80, 0.5)), 0.2)
    assert u.detection_tracks == (None,) and u.tracks[0].state is TrackState.LOST


def test_high_score_detections_are_matched_first() -> None:
    # Two detections over one track: the high-score one takes it even though the low-score
    # one overlaps more; the low-score one is left unmatched (and starts nothing).
    tracker = FaceTracker()
    run(tracker, [dets((100, 100, 60, 80, 0.99))] * 2)
    u = tracker.update(dets((100, 100, 60, 80, 0.8), (115, 100, 60, 80, 0.95)), 0.2)
    assert u.detection_tracks == (None, 1)
    assert len(u.tracks) == 1


# --- motion ------------------------------------------------------------------------------


def test_motion_model_follows_a_fast_face_where_box_overlap_alone_would_not() -> None:
    # 400 px/s at 10 fps: consecutive 60 px boxes overlap at IoU 0.2, below match_iou 0.3.
    faces = moving(0, 400, 12)
    updates = run(FaceTracker(), [dets(f) for f in faces[:3]])
    assert updates[-1].tracks[-1].track_id != 1  # without a velocity estimate yet: new tracks
    # Started slowly, then accelerating gradually, the filter learns the velocity and keeps
    # one track up to 400 px/s.
    xs = np.cumsum([0, 10, 20, 30, 40, 40, 40, 40, 40, 40, 40, 40])
    tracker = FaceTracker()
    ups = run(tracker, [dets((float(x), 100, 60, 80, 0.99)) for x in xs])
    assert [u.detection_tracks for u in ups[1:]] == [(1,)] * (len(xs) - 1)
    vx = ups[-1].tracks[0]
    assert vx.box[0] == pytest.approx(float(xs[-1]), abs=10)


def test_dropped_frames_are_bridged_by_prediction_in_capture_time() -> None:
    tracker = FaceTracker()
    steady = moving(0, 200, 10)  # 200 px/s, 20 px per frame at 10 fps
    run(tracker, [dets(f) for f in steady])
    # three frames dropped: the face is 80 px further (IoU with its last box: 0)
    x = steady[-1][0] + 200 * 0.4
    u = tracker.update(dets((x, 100, 60, 80, 0.99)), 0.9 + 0.4)
    assert u.detection_tracks == (1,)


def test_crossing_faces_keep_their_ids() -> None:
    # A moves right, B moves left a little lower; while they cross, B is hidden behind A.
    def a(i: int) -> tuple[float, float, float, float, float]:
        return (100 + 30 * i, 100, 60, 80, 0.99)

    def b(i: int) -> tuple[float, float, float, float, float]:
        return (520 - 30 * i, 120, 60, 80, 0.99)

    tracker = FaceTracker()
    frames = [dets(a(i), b(i)) for i in range(6)] + [dets(a(i)) for i in range(6, 9)] + \
        [dets(a(i), b(i)) for i in range(9, 12)]
    ups = run(tracker, frames)
    assert ups[5].detection_tracks == (1, 2)
    assert all(u.detection_tracks == (1,) for u in ups[6:9])
    # Back in view, B is where its velocity put it, 120 px left of where it was last seen;
    # A is now there (IoU 0.6 with B's last box), so position alone would swap the ids.
    assert ups[9].detection_tracks == (1, 2) and ups[9].reacquired == (2,)
    assert ups[11].detection_tracks == (1, 2)


def test_kalman_velocity_is_in_pixels_per_second() -> None:
    k = BoxKalman(np.array([0, 0, 60, 80.0]))
    for i in range(1, 20):
        k.predict(0.05)
        k.correct(np.array([10 * i, 0, 60 + 10 * i, 80.0]))  # 200 px/s at 20 fps
    assert k.velocity[0] == pytest.approx(200, rel=0.05)
    k.predict(0.5)
    assert k.box[0] == pytest.approx(190 + 100, abs=5)


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="low_score"):
        TrackerSettings(low_score=0.95, high_score=0.9)
    with pytest.raises(ConfigError, match="min_hits"):
        TrackerSettings(min_hits=0)
    with pytest.raises(ConfigError, match="match_iou"):
        TrackerSettings(match_iou=0.0)
    with pytest.raises(ConfigError, match="embed_every_n"):
        EmbedPolicySettings(embed_every_n=0)


# --- embedding policy --------------------------------------------------------------------


def _policy_run(frames: Sequence[Detections], quality: Sequence[Sequence[float]],
                requested: dict[int, tuple[int, ...]] | None = None
                ) -> list[list[tuple[int, str]]]:
    tracker, policy = FaceTracker(), EmbedPolicy()
    out = []
    for i, (d, q) in enumerate(zip(frames, quality, strict=True)):
        u = tracker.update(d, i / FPS)
        reqs = policy.select(u, np.asarray(q, np.float32), (requested or {}).get(i, ()))
        out.append([(r.track_id, str(r.reason)) for r in reqs])
    return out


def test_policy_embeds_new_tracks_then_every_n_frames() -> None:
    n = 22
    frames = [dets(f) for f in moving(100, 20, n)]
    chosen = _policy_run(frames, [[0.5]] * n)
    assert chosen[0] == []  # tentative: never embedded
    assert chosen[1] == [(1, "new_track")] and chosen[2] == [(1, "new_track")]
    periodic = [i for i, c in enumerate(chosen) if c == [(1, "periodic")]]
    assert periodic == [7, 12, 17]
    assert sum(len(c) for c in chosen) == 5  # of 22 faces


def test_policy_embeds_a_clearly_better_face() -> None:
    n = 8
    q = [[0.3], [0.3], [0.3], [0.35], [0.45], [0.5], [0.9], [0.95]]
    chosen = _policy_run([dets(f) for f in moving(100, 20, n)], q)
    assert chosen[3] == []  # +0.05: not clearly better
    assert chosen[4] == [(1, "better_quality")]  # +0.15 over the best embedded (0.3)
    assert chosen[5] == []
    assert chosen[6] == [(1, "better_quality")]
    assert chosen[7] == []


def test_policy_honours_requests_and_checks_reacquired_and_weak_matches() -> None:
    face = (100, 100, 60, 80, 0.99)
    frames = [dets(face)] * 4 + [dets()] * 3 + [dets(face)] + [dets(face)] * 2 + \
        [dets((130, 100, 60, 80, 0.99))]  # 30 px jump: IoU 0.33 with its prediction
    chosen = _policy_run(frames, [[0.5]] * len(frames), requested={3: (1,), 9: (1,)})
    assert chosen[3] == [(1, "requested")]
    assert chosen[7] == [(1, "reacquired")]
    assert chosen[9] == [(1, "requested")]
    assert chosen[10] == [(1, "weak_match")]


def test_policy_forgets_ended_tracks() -> None:
    tracker, policy = FaceTracker(TrackerSettings(max_lost_s=0.2)), EmbedPolicy()
    q = np.array([0.5], np.float32)
    for i in range(3):
        policy.select(tracker.update(dets((100, 100, 60, 80, 0.99)), i / FPS), q)
    policy.select(tracker.update(dets(), 1.0), q)
    assert policy._memory == {}


def test_predicted_boxes_change_nothing() -> None:
    tracker = FaceTracker()
    run(tracker, [dets(f) for f in moving(100.0, 200.0, 5)])  # 20 px per frame to the right
    before = tracker.predicted(0.5)
    ((tid, state, box),) = before
    assert state is TrackState.CONFIRMED
    assert box[0] == pytest.approx(100.0 + 200.0 * 0.5, abs=8.0)  # where it will be at 0.5 s
    assert tracker.predicted(0.5) == before  # asking twice gives the same answer
    update = tracker.update(dets((200.0, 100.0, 60.0, 80.0, 0.99)), 0.5)
    assert update.detection_tracks == (tid,)
    # a track past max_lost_s by then is not predicted at all
    assert tracker.predicted(0.5 + TrackerSettings().max_lost_s + 0.1) == []
