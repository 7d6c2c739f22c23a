"""Grouping unknown faces: online as they arrive (through the writer and the store) and on
demand, measured on a sample of LFW (the full measure is `facewatch eval clusters`)."""

from __future__ import annotations

import queue
from pathlib import Path

import numpy as np
import pytest

from facewatch.evaluation.clusters import run_cluster_evaluation
from facewatch.library import operations
from facewatch.library.clusters import (
    ClusterSettings,
    online_labels,
    regroup_labels,
    score_clusters,
    settings_for,
)
from facewatch.library.sqlite_store import SqliteLibrary
from facewatch.library.store import FaceQuery
from facewatch.library.writer import LibraryWriter, WriterSettings
from facewatch.pipeline import FacePipeline
from tests.library.conftest import PEOPLE, FaceSample, named, record

SETTINGS = settings_for(None, 0.307)  # foamliu's naming threshold, as the daemon derives it


def test_sampled_lfw_groups_are_pure_and_keep_people_together(
        lfw_dir: Path, pipeline: FacePipeline, tmp_path: Path) -> None:
    """12 random people with 10+ photos, all their photos mixed: the issue's bounds."""
    r = run_cluster_evaluation(lfw_dir, pipeline, None, SETTINGS, min_photos=10, max_people=12,
                               seed=3)
    assert r.people == 12 and r.photos >= 120
    for score in (r.online, r.regrouped):
        assert score.purity >= 0.95, score
        assert score.completeness >= 0.90, score


def test_scores_are_what_they_say() -> None:
    truth = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    s = score_clusters(np.array([0, 0, 0, 1, 1, 1, 2, 2]), truth)
    assert s.purity == pytest.approx(7 / 8)  # group 1 holds one face of person 0 among 1's
    assert s.completeness == pytest.approx(5 / 8) and s.worst_person == pytest.approx(0.5)
    assert (s.groups, s.singletons, s.people_below_90) == (3, 0, 2)


def test_online_and_regroup_agree_on_clear_cases() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 64))
    vectors = np.concatenate([c + 0.3 * rng.normal(size=(5, 64)) for c in centres])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    truth = np.repeat([0, 1, 2], 5)
    for labels in (online_labels(vectors, 0.5), regroup_labels(vectors, 0.4)):
        assert score_clusters(labels, truth).purity == 1.0
        assert score_clusters(labels, truth).completeness == 1.0


def test_the_writer_groups_unknown_faces_as_they_arrive(
        tmp_path: Path, lfw_faces: dict[str, list[FaceSample]], embedder_sha: str) -> None:
    channel: queue.Queue[object] = queue.Queue()
    for p, person in enumerate(PEOPLE[:5]):
        for t, sample in enumerate(lfw_faces[person]):
            known = person == "Colin_Powell"
            channel.put(record([sample], p * 10 + t, embedder_sha,
                               verdict=named(person) if known else None))
    writer = LibraryWriter(lambda: SqliteLibrary(tmp_path / "lib", writer=True),
                           WriterSettings(clusters=SETTINGS))
    while writer.step(channel, 0.01):
        pass
    store = writer.store
    assert isinstance(store, SqliteLibrary) and writer.stored == 30
    clusters = store.clusters()
    by_person: dict[str, set[int]] = {}
    for c in clusters:
        people = {PEOPLE[f.track_id // 10] for f in store.faces(FaceQuery(cluster_id=c.id, limit=99))}
        assert len(people) == 1, people  # pure
        by_person.setdefault(people.pop(), set()).add(c.id)
    assert "Colin_Powell" not in by_person  # named faces are not grouped
    assert set(by_person) == set(PEOPLE[:5]) - {"Colin_Powell"}
    biggest = {p: max(store.cluster(c).size for c in ids) for p, ids in by_person.items()}
    assert sum(biggest.values()) >= 0.9 * 24, biggest

    # dismiss one group, split a face off another, then regroup: the split face goes back,
    # and the dismissed group keeps its id and its state
    sharon = max(by_person["Ariel_Sharon"], key=lambda c: store.cluster(c).size)
    schroeder = max(by_person["Gerhard_Schroeder"], key=lambda c: store.cluster(c).size)
    operations.dismiss(store, sharon)
    assert sharon not in {c.id for c in store.clusters()}
    assert sharon in {c.id for c in store.clusters(include_dismissed=True)}
    face = store.faces(FaceQuery(cluster_id=schroeder, limit=1))[0]
    alone = operations.split(store, face.id)
    assert alone != schroeder and store.cluster(alone).size == 1
    result = operations.regroup(store, embedder_sha, SETTINGS)
    assert result.faces == 24
    assert store.cluster(sharon).dismissed and store.get(face.id).cluster_id == schroeder
    # the next unknown face of a dismissed person joins the dismissed group
    extra = lfw_faces["Ariel_Sharon"][0]
    channel.put(record([extra], 99, embedder_sha))
    writer.step(channel, 0.01)
    joined = store.find("door", 99)
    assert joined is not None and joined.cluster_id == sharon
    writer.close()


def test_settings_follow_the_embedder_or_the_config() -> None:
    assert settings_for(None, 0.307) == ClusterSettings(join=0.497, regroup=0.447)
    assert settings_for(0.5, 0.307) == ClusterSettings(join=0.5, regroup=0.45)
