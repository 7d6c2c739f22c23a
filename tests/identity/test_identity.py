"""Identity per track: unit tests on hand-made vectors, and the whole path on the Hamilton clip.

The end-to-end test runs the real detector, tracker, embedding policy, embedder and gallery on
/work/shared's short_hamilton_clip.mp4 (Lin-Manuel Miranda on stage, then Barack and Michelle
Obama in the audience), sampled at 10 fps as a camera would be.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from facewatch.errors import ConfigError
from facewatch.identity import (
    Changed,
    Decision,
    FinalIdentity,
    GalleryMatcher,
    IdentitySettings,
    IdentityStage,
    IdentityUpdate,
    Label,
    Nearest,
    Observation,
    Recognized,
    TrackIdentity,
    Unknown,
    VectorMatcher,
    decide,
    observations,
)
from facewatch.tracking import (
    EmbedPolicy,
    EmbedRequest,
    EndedTrack,
    FaceTracker,
    TrackInfo,
    TrackState,
    TrackUpdate,
)

DIM = 32
E = np.eye(DIM, dtype=np.float32)
A, B, C = E[0], E[1], E[2]  # three enrolled people, orthogonal


def face(person: np.ndarray, similarity: float, noise: int) -> np.ndarray:
    """A unit vector at exactly `similarity` to `person`, off along basis vector `noise`."""
    v: np.ndarray = similarity * person + np.sqrt(1 - similarity ** 2) * E[noise]
    return v.astype(np.float32)


def gallery(threshold: float = 0.4, **people: np.ndarray) -> VectorMatcher:
    return VectorMatcher({pid: (pid.upper(), v) for pid, v in people.items()}, threshold)


def frame(ts: float, live: tuple[int, ...] = (1,), ended: tuple[int, ...] = ()) -> TrackUpdate:
    tracks = tuple(TrackInfo(t, TrackState.CONFIRMED, (0.0, 0.0, 60.0, 80.0), i, 0.9, 0.99, 5,
                             0.0, ts) for i, t in enumerate(live))
    gone = tuple(EndedTrack(t, 0.0, ts - 0.1, 5, "timeout") for t in ended)
    return TrackUpdate(ts, tuple(live), tracks, (), (), gone)


class Feed:
    """Drives an IdentityStage one frame at a time, 10 fps."""

    def __init__(self, stage: IdentityStage) -> None:
        self.stage = stage
        self.ts = 0.0

    def __call__(self, *obs: Observation, live: tuple[int, ...] = (1,),
                 ended: tuple[int, ...] = ()) -> IdentityUpdate:
        self.ts += 0.1
        return self.stage.update(frame(self.ts, live, ended), obs)


def ident(update: IdentityUpdate, track_id: int = 1) -> TrackIdentity:
    found = update.identity(track_id)
    assert found is not None, track_id
    return found


def rounded(decisions: tuple[Decision, ...]) -> tuple[Decision, ...]:
    """Decisions with times and scores rounded, to compare with exact records."""
    return tuple(dataclasses.replace(d, capture_ts=round(d.capture_ts, 6), score=round(d.score, 4))
                 for d in decisions)


def ob(vector: np.ndarray, quality: float = 0.5, track: int = 1,
       crop: np.ndarray | None = None) -> Observation:
    return Observation(track, vector, quality, crop)


# --- decision rule -----------------------------------------------------------------------


@pytest.mark.parametrize(("current", "nearest", "expected"), [
    (None, Nearest("a", "A", 0.45), Label("a", "A")),  # enter
    (None, Nearest("a", "A", 0.38), Label(None, None)),  # below enter
    (Label("a", "A"), Nearest("a", "A", 0.38), Label("a", "A")),  # kept above exit
    (Label("a", "A"), Nearest("a", "A", 0.34), Label(None, None)),  # dropped below exit
    (Label("a", "A"), Nearest("b", "B", 0.38), Label(None, None)),  # someone else nearer
    (Label("a", "A"), Nearest("b", "B", 0.41), Label("b", "B")),  # someone else named
    (Label("a", "A"), Nearest("a", "Ada", 0.5), Label("a", "Ada")),  # renamed in the gallery
    (None, Nearest(None, None, 0.0), Label(None, None)),  # empty gallery
])
def test_decide_with_hysteresis(current: Label | None, nearest: Nearest, expected: Label) -> None:
    assert decide(current, nearest, enter=0.4, exit_=0.35) == expected


# --- stage -------------------------------------------------------------------------------


def test_no_decision_before_min_evidence_then_recognized() -> None:
    feed = Feed(IdentityStage(gallery(a=A, b=B)))
    u1 = feed(ob(face(A, 0.6, 10)))
    assert u1.decisions == ()
    assert ident(u1).status == "pending"
    assert u1.wants_evidence == (1,)
    u2 = feed(ob(face(A, 0.6, 10)))
    assert rounded(u2.decisions) == (Recognized(1, 0.2, "a", "A", 0.6, 2),)
    assert u2.wants_evidence == ()
    assert feed(ob(face(A, 0.6, 10))).decisions == ()  # no news, no decision


def test_unknown_once_enough_evidence_is_below_the_threshold() -> None:
    feed = Feed(IdentityStage(gallery(a=A)))
    feed(ob(face(A, 0.2, 10)))
    u = feed(ob(face(A, 0.2, 10)))
    assert rounded(u.decisions) == (Unknown(1, 0.2, 0.2, "a", 2),)
    assert ident(u).status == "unknown"


def test_a_name_is_kept_down_to_the_exit_threshold_and_given_back_at_enter() -> None:
    stage = IdentityStage(gallery(0.4, a=A))  # enter 0.4, exit 0.35
    feed = Feed(stage)
    feed(ob(face(A, 0.5, 10)))
    assert isinstance(feed(ob(face(A, 0.5, 10))).decisions[0], Recognized)
    total = 2 * face(A, 0.5, 10)  # equal qualities: the aggregate is the plain mean
    kept_between = 0
    for _ in range(20):
        total = total + face(A, 0.25, 10)
        sim = float(total @ A / np.linalg.norm(total))
        u = feed(ob(face(A, 0.25, 10)))
        if sim >= 0.35:
            assert u.decisions == ()
            kept_between += sim < 0.4
        else:
            (d,) = u.decisions
            assert isinstance(d, Changed)
            assert (d.previous_id, d.person_id, d.reason) == ("a", None, "evidence")
            assert d.score == pytest.approx(sim, abs=1e-5)
            break
    else:
        pytest.fail("the aggregate never fell below the exit threshold")
    assert kept_between >= 1  # named while between exit and enter
    for _ in range(20):
        u = feed(ob(face(A, 0.9, 10)))
        if u.decisions:
            assert isinstance(u.decisions[0], Changed) and u.decisions[0].person_id == "a"
            assert u.decisions[0].score >= 0.4
            break
    else:
        pytest.fail("the name never came back")


def test_quality_weights_the_aggregate_and_picks_the_snapshot() -> None:
    crops = [np.full((112, 112, 3), i, np.uint8) for i in range(3)]
    feed = Feed(IdentityStage(gallery(a=A)))
    feed(ob(face(A, 0.7, 10), quality=0.9, crop=crops[0]))
    feed(ob(face(A, 0.6, 11), quality=0.0, crop=crops[1]))  # vetoed face: weight floored
    u = feed(ob(face(A, 0.6, 12), quality=0.3, crop=crops[2]), live=(), ended=(1,))
    total = 0.9 * face(A, 0.7, 10) + 0.05 * face(A, 0.6, 11) + 0.3 * face(A, 0.6, 12)
    final = u.finals[0]
    assert final.score == pytest.approx(float(total @ A / np.linalg.norm(total)), abs=1e-5)
    assert final.snapshot is not None and final.snapshot.quality == 0.9
    assert np.array_equal(final.snapshot.crop, crops[0]) and final.snapshot.crop is not crops[0]
    assert final.evidence == final.embeddings == 3


def test_someone_else_in_the_box_restarts_the_evidence() -> None:
    crop_b = np.ones((112, 112, 3), np.uint8)
    feed = Feed(IdentityStage(gallery(a=A, b=B)))
    for _ in range(3):
        feed(ob(face(A, 0.6, 10)))
    u = feed(ob(face(B, 0.6, 11), crop=crop_b))
    assert u.decisions == () and u.wants_evidence == (1,)  # held aside, more wanted
    assert ident(u).person_id == "a"
    u = feed(ob(face(B, 0.6, 11)))
    assert rounded(u.decisions) == (Changed(1, 0.5, "a", "A", "b", "B", 0.6, 2, "appearance"),)
    final = feed(live=(), ended=(1,)).finals[0]
    assert [(h.person_id, round(h.since_ts, 6)) for h in final.history] == [("a", 0.2),
                                                                            ("b", 0.5)]
    assert final.person_id == "b" and final.evidence == 2 and final.embeddings == 5
    assert final.snapshot is not None and np.array_equal(final.snapshot.crop, crop_b)


def test_someone_else_with_the_same_label_is_still_a_change_of_face() -> None:
    """Two strangers one after the other in one box are both unknown: the label does not
    change, but the face did, and the daemon must split the track (reason "appearance")."""
    feed = Feed(IdentityStage(gallery(a=A)))
    for _ in range(3):
        u = feed(ob(face(B, 0.9, 10)))
    assert ident(u).status == "unknown"
    feed(ob(face(C, 0.9, 11)))
    u = feed(ob(face(C, 0.9, 11)))
    assert [(type(d).__name__, getattr(d, "reason", None), getattr(d, "person_id", None),
             getattr(d, "previous_id", None)) for d in u.decisions] == [
        ("Changed", "appearance", None, None)]
    # and the same person named again after someone else was in the box between: no change
    # of face is reported for a face that merely returns to the track's evidence
    u = feed(ob(face(C, 0.9, 11)))
    assert u.decisions == ()


def test_one_odd_face_is_dropped_not_a_switch() -> None:
    feed = Feed(IdentityStage(gallery(a=A, b=B)))
    for _ in range(3):
        feed(ob(face(A, 0.6, 10)))
    feed(ob(face(B, 0.6, 11)))
    u = feed(ob(face(A, 0.6, 10)))
    assert u.decisions == () and u.wants_evidence == ()
    assert ident(u).evidence == 4
    # two odd faces that do not resemble each other are no new person either
    feed(ob(face(B, 0.6, 11)))
    u = feed(ob(face(C, 0.6, 12)))
    assert u.decisions == () and ident(u).person_id == "a"


def test_switch_detection_can_be_disabled() -> None:
    feed = Feed(IdentityStage(gallery(a=A, b=B), IdentitySettings(switch_evidence=0)))
    for _ in range(3):
        feed(ob(face(A, 0.6, 10)))
    for _ in range(2):
        assert feed(ob(face(B, 0.6, 11))).decisions == ()


def test_a_new_gallery_re_evaluates_live_tracks_at_the_next_update() -> None:
    stage = IdentityStage(gallery(a=A, b=B))
    feed = Feed(stage)
    for _ in range(2):
        feed(ob(face(A, 0.6, 10), track=1), ob(face(C, 0.6, 11), track=2), live=(1, 2))
    u = feed(live=(1, 2))
    assert [(i.track_id, i.status) for i in u.current] == [(1, "known"), (2, "unknown")]
    stage.set_matcher(gallery(0.5, b=B, c=C))  # a removed, c enrolled, threshold raised
    assert stage.enter_threshold == 0.5
    u = feed(live=(1, 2))
    changes = {d.track_id: d for d in u.decisions}
    assert isinstance(changes[1], Changed) and changes[1].person_id is None
    assert changes[1].reason == "gallery"
    assert isinstance(changes[2], Changed) and changes[2].person_id == "c"
    assert changes[2].reason == "gallery"
    assert feed(live=(1, 2)).decisions == ()


def test_final_identity_when_the_track_ends() -> None:
    feed = Feed(IdentityStage(gallery(a=A)))
    feed(ob(face(A, 0.6, 10), track=1), ob(face(A, 0.6, 10), track=2), live=(1, 2))
    u = feed(ob(face(A, 0.6, 10), track=1), live=(1, 2))
    u = feed(live=(), ended=(1, 2))
    finals = {f.track_id: f for f in u.finals}
    assert finals[1].status == "known" and finals[1].name == "A"
    assert finals[1].last_ts == pytest.approx(0.2)  # from the tracker's record
    assert finals[2].status == "pending" and finals[2].person_id is None
    assert u.current == () and feed(live=()).finals == ()


def test_tracks_gone_without_an_end_record_are_finalised() -> None:
    feed = Feed(IdentityStage(gallery(a=A)))
    feed(ob(face(A, 0.6, 10)))
    u = feed(live=())  # the update that ended it was missed
    assert [f.track_id for f in u.finals] == [1]


def test_observations_pairs_requests_with_embeddings() -> None:
    reqs = (EmbedRequest(2, 7, 0.4, "new_track"), EmbedRequest(0, 9, 0.8, "periodic"))
    crops = np.arange(3 * 4).reshape(3, 2, 2, 1).astype(np.uint8)
    obs = observations(reqs, np.stack([A, B]), crops)
    assert [(o.track_id, o.quality) for o in obs] == [(7, 0.4), (9, 0.8)]
    assert obs[0].crop is not None and obs[0].crop[0, 0, 0] == 8
    assert np.array_equal(obs[1].embedding, B)
    with pytest.raises(ValueError, match="2 requests but 1"):
        observations(reqs, A[None])


def test_gallery_matcher_uses_identify_and_names() -> None:
    @dataclass
    class Person:
        name: str

    @dataclass
    class Match:
        nearest_id: str | None
        similarity: float

    class FakeGallery:
        threshold = 0.37

        def identify(self, embeddings: np.ndarray, threshold: float | None = None,
                     exact: bool | None = None) -> list[Any]:
            return [Match("ada", 0.5), Match(None, 0.0)][: embeddings.shape[0]]

        def person(self, person_id: str) -> Any:
            return Person("Ada Lovelace")

    m = GalleryMatcher(FakeGallery())
    assert m.threshold == 0.37
    assert m.nearest(np.stack([A, B])) == [Nearest("ada", "Ada Lovelace", 0.5),
                                          Nearest(None, None, 0.0)]
    assert IdentityStage(FakeGallery()).enter_threshold == 0.37  # a gallery is accepted as is


def test_the_threshold_is_the_matchers_operating_point() -> None:
    """No second threshold in the stage: a fixed one goes to the gallery's operating point
    (facewatch.identity.threshold), whose result the matcher carries."""
    stage = IdentityStage(gallery(0.3, a=A), IdentitySettings(exit_margin=0.1))
    assert stage.enter_threshold == 0.3 and stage.exit_threshold == pytest.approx(0.2)
    feed = Feed(stage)
    feed(ob(face(A, 0.35, 10)))
    assert isinstance(feed(ob(face(A, 0.35, 10))).decisions[0], Recognized)
    assert not hasattr(IdentitySettings(), "threshold")


def test_a_not_example_vetoes_its_person_and_the_next_nearest_may_be_named() -> None:
    stranger = face(A, 0.5, 10)  # resembles a at 0.5
    not_a = face(A, 0.5, 10)  # the same stranger, marked "not a"
    plain = IdentityStage(gallery(0.4, a=A, b=B))
    feed = Feed(plain)
    feed(ob(stranger))
    assert ident(feed(ob(stranger))).person_id == "a"  # named a without the `not:` photo
    vetoed = IdentityStage(VectorMatcher({"a": ("A", A), "b": ("B", B)}, 0.4, {"a": not_a[None]}))
    feed = Feed(vetoed)
    feed(ob(stranger))
    u = feed(ob(stranger))
    assert ident(u).status == "unknown" and ident(u).nearest_id == "b"
    assert isinstance(u.decisions[0], Unknown) and u.decisions[0].nearest_id == "b"
    # a's own face is still named a: it is closer to a than to the stranger
    feed = Feed(IdentityStage(VectorMatcher({"a": ("A", A)}, 0.4, {"a": not_a[None]})))
    feed(ob(face(A, 0.8, 11)))
    assert ident(feed(ob(face(A, 0.8, 11)))).person_id == "a"


def test_margin_and_agreement_rules() -> None:
    ab = A + B + 0.02 * A
    close_call = ab / np.linalg.norm(ab)  # a hair nearer a than b: margin 0.014
    for settings, expected in [(IdentitySettings(), "a"), (IdentitySettings(min_margin=0.05), None)]:
        feed = Feed(IdentityStage(gallery(0.4, a=A, b=B), settings))
        feed(ob(close_call))
        u = feed(ob(close_call))
        assert ident(u).person_id == expected, settings
        assert ident(u).margin == pytest.approx(float(close_call @ A - close_call @ B), abs=1e-5)
    # two views: one nearest a, one nearest c; their mean is nearest a (0.53 against 0.42),
    # with half the votes
    for min_agreement, expected in [(0.0, "a"), (0.5, "a"), (0.9, None)]:
        feed = Feed(IdentityStage(gallery(0.4, a=A, c=C), IdentitySettings(
            min_agreement=min_agreement, switch_evidence=0)))
        feed(ob(face(A, 0.75, 10)))
        u = feed(ob(face(C, 0.6, 13)))
        assert ident(u).person_id == expected, (min_agreement, ident(u))


def test_a_track_near_the_threshold_asks_for_more_views() -> None:
    feed = Feed(IdentityStage(gallery(0.4, a=A), IdentitySettings(borderline_views=4)))
    feed(ob(face(A, 0.42, 10)))
    u = feed(ob(face(A, 0.42, 10)))
    assert ident(u).person_id == "a" and u.wants_evidence == (1,)  # 0.42: within 0.05 of 0.4
    u = feed(ob(face(A, 0.42, 10)))
    assert u.wants_evidence == (1,)
    u = feed(ob(face(A, 0.42, 10)))
    assert u.wants_evidence == ()  # four views: enough
    feed = Feed(IdentityStage(gallery(0.4, a=A)))
    feed(ob(face(A, 0.7, 10)))
    assert feed(ob(face(A, 0.7, 10))).wants_evidence == ()  # clearly decided: nothing asked


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="min_evidence"):
        IdentitySettings(min_evidence=0)
    with pytest.raises(ConfigError, match="min_weight"):
        IdentitySettings(min_weight=0.0)
    with pytest.raises(ConfigError, match="min_margin"):
        IdentitySettings(min_margin=-0.1)
    with pytest.raises(ConfigError, match="min_agreement"):
        IdentitySettings(min_agreement=1.5)
    with pytest.raises(ConfigError, match="borderline_views"):
        IdentitySettings(borderline_views=-1)


# --- end to end: the Hamilton clip --------------------------------------------------------

CLIP = Path("data/videos/short_hamilton_clip.mp4")  # in ../shared
PORTRAITS = Path("data/photos/face_recognition_examples/examples")

# The gallery runs at the default operating point for two people (0.326 with the default
# embedder).  Obama sits in the audience in three-quarter profile, about 80 px, in soft video:
# against the mean of his two portraits his track aggregates to about 0.336, while every other
# face of the clip stays below 0.10 aggregated against either person.
SAMPLE_FPS = 10.0


def truth(ts: float, box: tuple[float, float, float, float]) -> str:
    """Who a detected box is, from the clip's shots (seen frame by frame)."""
    x1, y1, x2, _ = box
    cx = (x1 + x2) / 2
    if ts < 0.68:  # wide shot of the stage: Lin standing right, the pianist small, left
        return "lin" if cx > 400 else "other"
    if 2.78 < ts < 7.08:  # Lin close: his box is the only large one near the top
        return "lin" if x2 - x1 >= 65 and y1 < 110 else "other"
    if ts >= 7.08:  # the audience: Barack Obama, Michelle Obama on his left, two women
        if 335 < cx < 375:
            return "obama"
        if 400 < cx < 440:
            return "michelle"
    return "other"  # includes the profile close-up of another performer


@dataclass
class ClipRun:
    frames: int = 0
    detections: int = 0
    embeddings: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    # (ts, truth, track id or None, label person id or None, status or None) per detection
    tagged: list[tuple[float, str, int | None, str | None, str | None]] = \
        field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    finals: dict[int, FinalIdentity] = field(default_factory=dict)
    similarities: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


@pytest.fixture(scope="session")
def clip_run(shared_dir: Path, models_dir: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> ClipRun:
    """The whole clip through the daemon's per-frame sequence, once per test session.

    `shared_dir` and `models_dir` (tests/conftest.py) skip when ../shared is absent and build
    the models once per session with `install_models`.
    """
    clip = shared_dir / CLIP
    portraits_dir = shared_dir / PORTRAITS
    for needed in (clip, portraits_dir / "obama.jpg", portraits_dir / "lin-manuel-miranda.png"):
        if not needed.is_file():
            pytest.skip(f"shared test data absent: {needed} (set FACEWATCH_SHARED to the shared/ "
                        f"folder)")
    from facewatch.detection.detector import MtcnnSettings
    from facewatch.engines.store import ModelStore
    from facewatch.gallery.gallery import Gallery
    from facewatch.pipeline import FacePipeline, PipelineSettings
    from facewatch.streams.decimation import Decimator

    tmp = tmp_path_factory.mktemp("hamilton")
    pipeline = FacePipeline.load(PipelineSettings(detector=MtcnnSettings(min_face=40)),
                                 ModelStore(models_dir))
    assert pipeline.embedder is not None
    spec = tmp / "gallery.yaml"
    spec.write_text(
        "people:\n"
        "  - id: lin\n    name: Lin-Manuel Miranda\n"
        f"    images: [{portraits_dir / 'lin-manuel-miranda.png'}]\n"
        "  - id: obama\n    name: Barack Obama\n"
        f"    images: [{portraits_dir / 'obama.jpg'}, {portraits_dir / 'obama2.jpg'}]\n")
    gal = Gallery.open(spec, pipeline, state_dir=tmp / "gallery-state")
    assert gal.operating_point.source == "calibration"
    portraits = {gal.people[int(p)].id: gal.templates.embeddings[i]
                 for i, p in enumerate(gal.template_person)}

    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 29.97
    decimator = Decimator(SAMPLE_FPS)
    sampled: list[tuple[float, np.ndarray]] = []
    index = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        ts = index / fps
        if decimator.take(ts):
            sampled.append((ts, np.ascontiguousarray(bgr[:, :, ::-1])))
        index += 1
    cap.release()
    assert index == 275

    tracker, policy, identity = FaceTracker(), EmbedPolicy(), IdentityStage(gal)
    run = ClipRun()
    wanted: tuple[int, ...] = ()
    batch = 8
    for start in range(0, len(sampled), batch):
        chunk = sampled[start:start + batch]
        analysed = pipeline.analyze([img for _, img in chunk], embed=False)
        for (ts, _), faces in zip(chunk, analysed, strict=True):
            tracks = tracker.update(faces.detections, ts)
            requests = policy.select(tracks, faces.quality, requested=wanted)
            embeddings = pipeline.embedder.embed(faces.crops[[r.detection for r in requests]])
            result = identity.update(tracks, observations(requests, embeddings, faces.crops))
            wanted = result.wants_evidence
            run.frames += 1
            run.detections += len(faces)
            run.embeddings += len(requests)
            run.reasons.update(r.reason for r in requests)
            run.decisions += result.decisions
            run.finals.update((f.track_id, f) for f in result.finals)
            boxes = [(float(b[0]), float(b[1]), float(b[2]), float(b[3]))
                     for b in faces.detections.boxes]
            for r, e in zip(requests, embeddings, strict=True):
                who = truth(ts, boxes[r.detection])
                for pid, vec in portraits.items():
                    run.similarities[f"{who}~{pid}"].append(float(e @ vec))
            for i, tid in enumerate(tracks.detection_tracks):
                current = result.identity(tid) if tid is not None else None
                run.tagged.append((ts, truth(ts, boxes[i]), tid,
                                   current.person_id if current else None,
                                   current.status if current else None))
    last = identity.update(tracker.end_all())
    run.finals.update((f.track_id, f) for f in last.finals)
    _report(run)
    return run


def _report(run: ClipRun) -> None:
    tracks_of: dict[str, set[int]] = defaultdict(set)
    for _, who, tid, _, _ in run.tagged:
        if tid is not None:
            tracks_of[who].add(tid)
    print(f"\nhamilton clip: {run.frames} frames at {SAMPLE_FPS:g} fps, {run.detections} "
          f"detections, {len(run.finals)} confirmed tracks, {run.embeddings} embeddings "
          f"({dict(run.reasons)})")
    print("tracks per person:", {k: sorted(v) for k, v in tracks_of.items()})
    for d in run.decisions:
        print("decision:", d)
    for f in run.finals.values():
        print(f"final: track {f.track_id} {f.status} {f.name} score={f.score} "
              f"evidence={f.evidence}/{f.embeddings} history="
              f"{[(round(h.since_ts, 2), h.person_id, round(h.score, 3)) for h in f.history]}")
    for key, sims in sorted(run.similarities.items()):
        print(f"similarity {key}: n={len(sims)} min={min(sims):.3f} mean={np.mean(sims):.3f} "
              f"max={max(sims):.3f}")


def _tags(run: ClipRun, who: str) -> list[tuple[float, int | None, str | None, str | None]]:
    return [(ts, tid, pid, status) for ts, w, tid, pid, status in run.tagged if w == who]


def test_clip_names_lin_manuel_miranda_on_his_tracks(clip_run: ClipRun) -> None:
    lin = _tags(clip_run, "lin")
    named = [t for t in lin if t[2] == "lin"]
    assert len(named) >= 0.8 * len(lin), lin
    # both shots of him: on stage at the start, and close up
    assert any(ts < 0.7 for ts, *_ in named) and any(ts > 2.8 for ts, *_ in named)
    assert any(isinstance(d, Recognized) and d.person_id == "lin" for d in clip_run.decisions)


def test_clip_names_barack_obama_on_his_track(clip_run: ClipRun) -> None:
    obama = _tags(clip_run, "obama")
    assert obama, "Obama's face was not detected"
    named = [t for t in obama if t[2] == "obama"]
    assert len(named) >= 0.7 * len(obama), obama
    assert any(getattr(d, "person_id", None) == "obama" for d in clip_run.decisions)
    obama_tracks = {tid for _, tid, _, _ in named if tid is not None}
    assert all(clip_run.finals[t].person_id == "obama" for t in obama_tracks)


def test_clip_leaves_michelle_obama_unknown(clip_run: ClipRun) -> None:
    michelle = _tags(clip_run, "michelle")
    assert michelle, "Michelle Obama's face was not detected"
    assert all(pid is None for _, _, pid, _ in michelle)
    tracks = {tid for _, tid, _, _ in michelle if tid is not None}
    assert tracks and all(clip_run.finals[t].status == "unknown" for t in tracks)


def test_clip_names_nobody_wrongly(clip_run: ClipRun) -> None:
    wrong = [(ts, who, tid, pid) for ts, who, tid, pid, _ in clip_run.tagged
             if pid is not None and pid != who]
    # At the cut to the audience, Obama's box overlaps where Lin's track was predicted, so the
    # tracker hands him Lin's track; the identity stage sees the new face and corrects the
    # name within 0.1 s (two embeddings).  Nothing else may ever be named wrongly.
    assert len(wrong) <= 1, wrong
    assert all(who == "obama" and pid == "lin" and 7.08 <= ts < 7.2 for ts, who, _, pid in wrong)
    named = {getattr(d, "person_id", None) for d in clip_run.decisions} - {None}
    assert named == {"lin", "obama"}


def test_clip_embeds_far_fewer_faces_than_it_detects(clip_run: ClipRun) -> None:
    assert clip_run.embeddings <= 0.35 * clip_run.detections, (
        clip_run.embeddings, clip_run.detections)
    # no person is split into many tracks (each person's shot is one or two tracks)
    for who in ("lin", "obama", "michelle"):
        tracks = {tid for _, tid, _, _ in _tags(clip_run, who) if tid is not None}
        assert 1 <= len(tracks) <= 3, (who, tracks)


def test_events_name_the_detected_box_not_the_trackers_estimate() -> None:
    """A face that moves fast (or a cut that hands a track to the person beside it) leaves the
    tracker's Kalman estimate between two places; events must say where the face was seen."""
    from facewatch.detection.detections import Detections
    from facewatch.events.schema import FaceRecognized, TrackStarted
    from facewatch.inference.camera_analysis import AnalysisSettings, CameraAnalysis
    from facewatch.pipeline import AnalyzedFaces

    analysis = CameraAnalysis("door", AnalysisSettings(), gallery(a=A), snapshots=None)
    picture = np.zeros((360, 640, 3), np.uint8)
    events: list[Any] = []
    seen: list[tuple[float, ...]] = []
    for i in range(12):
        x = 100.0 + 12.0 * i + (6.0 if i % 2 else 0.0)  # moving right, jittering
        box = np.array([[x, 50.0, x + 60.0, 130.0]], np.float32)
        seen.append(tuple(float(v) for v in box[0]))
        marks = np.array([[[x + 20, 80], [x + 40, 80], [x + 30, 95], [x + 22, 110], [x + 38, 110]]],
                         np.float32)
        faces = AnalyzedFaces(Detections(box, np.array([0.99], np.float32), marks),
                              np.zeros((1, 112, 112, 3), np.uint8), np.array([0.9]), None)
        crops, started = analysis.select(picture, faces, 1000.0 + 0.1 * i)
        embeddings = np.stack([face(A, 0.9, 10)] * len(crops)) if len(crops) else \
            np.zeros((0, DIM), np.float32)
        events += started + analysis.apply(embeddings)
    named = [e for e in events if isinstance(e, (TrackStarted, FaceRecognized))]
    assert {type(e) for e in named} == {TrackStarted, FaceRecognized}
    for e in named:
        assert e.bbox in seen, f"{e.type} names {e.bbox}, which no detection had"


def test_cameras_of_one_engine_never_share_a_track_id() -> None:
    """Both cameras start a track in the same millisecond: the shared counter keeps them apart."""
    from facewatch.detection.detections import Detections
    from facewatch.events.schema import TrackStarted
    from facewatch.inference.camera_analysis import AnalysisSettings, CameraAnalysis, new_track_ids
    from facewatch.pipeline import AnalyzedFaces

    ids = new_track_ids()
    cameras = [CameraAnalysis(name, AnalysisSettings(), gallery(a=A), None, track_ids=ids)
               for name in ("door", "yard")]
    box = np.array([[100.0, 50.0, 160.0, 130.0]], np.float32)
    marks = np.array([[[120, 80], [140, 80], [130, 95], [122, 110], [138, 110]]], np.float32)
    faces = AnalyzedFaces(Detections(box, np.array([0.99], np.float32), marks),
                          np.zeros((1, 112, 112, 3), np.uint8), np.array([0.9]), None)
    started: list[int] = []
    for i in range(6):
        for camera in cameras:
            crops, events = camera.select(np.zeros((360, 640, 3), np.uint8), faces, 1000.0 + 0.1 * i)
            camera.apply(np.zeros((len(crops), DIM), np.float32))
            started += [e.track_id for e in events if isinstance(e, TrackStarted)]
    assert len(started) == 2 and len(set(started)) == 2
