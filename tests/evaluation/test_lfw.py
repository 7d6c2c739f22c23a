"""The recognition core's proof on the whole of LFW (deep-funneled, 13,233 images).

Every image goes through facewatch's own detection, alignment and default embedder once: the
analyses are cached in one module-wide file, shared by the verification protocol, the open-set
identification and the 5,749-person gallery.  This is the slowest file of the suite (a few
minutes: it is most of what CI spends).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facewatch.engines.files import sha256_file
from facewatch.engines.install import FOAMLIU_THRESHOLD
from facewatch.evaluation.identification import run_identification
from facewatch.evaluation.lfw import centre_face, read_pairs, run_verification
from facewatch.gallery.cache import AnalysisCache, analyse_files
from facewatch.gallery.gallery import Gallery
from facewatch.gallery.index import EXACT_BELOW, HNSW_M
from facewatch.pipeline import FacePipeline


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lfw")


@pytest.fixture(scope="module")
def cache(work: Path) -> AnalysisCache:
    # the gallery below keeps its cache under state_dir/analysis.sqlite: the same file
    c = AnalysisCache(work / "analysis.sqlite")
    yield c
    c.close()


def test_pairs_file_is_the_standard_view2_protocol(lfw_dir: Path) -> None:
    pairs = read_pairs(lfw_dir / "pairs.txt", lfw_dir)
    assert len(pairs) == 6000
    for fold in range(10):
        in_fold = [p for p in pairs if p.fold == fold]
        assert sum(p.same for p in in_fold) == 300 and len(in_fold) == 600


def test_verification_accuracy_with_the_default_model(lfw_dir: Path, pipeline: FacePipeline,
                                                      cache: AnalysisCache) -> None:
    """The issue's target: >= 99.4 % with our own detection and alignment (measured 99.53 %)."""
    r = run_verification(lfw_dir, lfw_dir / "pairs.txt", pipeline, cache)
    assert (r.pairs, r.images) == (6000, 7701)
    assert r.accuracy >= 0.994, r
    assert r.val_at_far >= 0.98, r  # measured 99.03 %
    # the threshold the manifest ships is this evaluation's FAR=1e-3 point
    assert abs(r.threshold_at_far - FOAMLIU_THRESHOLD) < 0.01, r
    assert r.fallbacks <= 5  # images where no face was detected (measured 0)


def test_open_set_identification(lfw_dir: Path, pipeline: FacePipeline,
                                 cache: AnalysisCache) -> None:
    r = run_identification(lfw_dir, pipeline, cache, FOAMLIU_THRESHOLD)
    assert (r.enrolled, r.genuine_probes, r.impostor_probes) == (1680, 7484, 4069)
    assert r.rank1 >= 0.98, r  # measured 98.64 %
    assert r.identification_rate >= 0.97, r
    # Not asserted, reported: at a per-pair FAR of 1e-3, a stranger compared with 1,680
    # people usually resembles one of them (measured 93 % at 0.307); a home gallery of ten
    # people sees about 1 %.  The README says so.
    assert 0.0 <= r.false_accept_rate <= 1.0


def test_hnsw_rank1_equals_exact_search_on_all_lfw_people(
        lfw_dir: Path, pipeline: FacePipeline, cache: AnalysisCache, work: Path) -> None:
    """A real gallery of every LFW person (first image each) through the YAML path; every
    other image as a probe: the hnswlib index's nearest person is the exact search's."""
    people = sorted(d for d in lfw_dir.iterdir() if d.is_dir())
    lines = ["people:"]
    for person in people:
        first = sorted(person.glob("*.jpg"))[0]
        lines += [f"  - id: {person.name}", f"    images: [{first}]"]
    spec = work / "lfw_gallery.yaml"
    spec.write_text("\n".join(lines) + "\n")
    # LFW photos often show a second face behind the subject: enrol the largest
    gallery = Gallery.open(spec, pipeline, state_dir=work, largest_face=True, skip_bad=True)
    assert len(gallery.people) == 5749
    assert gallery.report.enrolled >= 5740, gallery.report.issues[:5]
    assert len(gallery.index) >= EXACT_BELOW and HNSW_M >= 48  # the graph really is used

    probes = [p for person in people for p in sorted(person.glob("*.jpg"))[1:]]
    assert len(probes) == 7484
    shas = {p: sha256_file(p) for p in probes}
    analyses, _ = analyse_files(pipeline, {s: p for p, s in shas.items()}, cache)
    vectors = []
    for p in probes:
        faces = analyses[shas[p]]
        choice = centre_face(faces, faces.image_size[1], faces.image_size[0])
        if choice is not None:
            vectors.append(faces.embeddings[choice])
    queries = np.stack(vectors)
    assert queries.shape[0] >= 7480

    approximate = gallery.identify(queries, exact=False)
    exact = gallery.identify(queries, exact=True)
    differ = [i for i, (a, e) in enumerate(zip(approximate, exact)) if a.nearest_id != e.nearest_id]
    assert differ == [], f"{len(differ)} probes differ, e.g. {differ[:5]}"
    np.testing.assert_allclose([a.similarity for a in approximate],
                               [e.similarity for e in exact], atol=1e-5)
