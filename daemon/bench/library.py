"""`facewatch bench library`: the face library at size -- how fast faces are stored, how long
a search takes among N stored faces, and how the index compares with exact search.

Every face goes through the real store (`SqliteLibrary.add`: crop JPEG written, SQLite row,
hnswlib index) into a temporary folder.  The stored vectors are real LFW embeddings with
noise added (so that 100,000 faces come from a few thousand photos, each a "view" of its
photo's person at the similarity views of one person have), or random unit vectors.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from facewatch.cli.common import add_recognition_options, pipeline_from
from facewatch.cli.output import emit
from facewatch.errors import BadInputError

_CAMERAS = ("door", "yard", "garage", "hall")


def register(bsub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    p = bsub.add_parser("library", parents=[common],
                        help="face library: store rate and search latency over N faces")
    p.add_argument("--faces", type=int, default=100_000, help="faces stored (default: 100,000)")
    p.add_argument("--queries", type=int, default=300, help="searches timed (default: 300)")
    p.add_argument("--lfw", type=Path, metavar="DIR",
                   help="base the faces on real LFW embeddings (people with 10+ photos; "
                        "default: random unit vectors)")
    p.add_argument("--dir", type=Path, metavar="DIR",
                   help="build the library here and keep it (default: a temporary folder)")
    p.add_argument("--cache", type=Path, metavar="FILE", help="LFW analysis cache (as eval)")
    add_recognition_options(p)
    p.set_defaults(handler=_bench)


def _base_vectors(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str, str]:
    """(vectors, crops) to build faces from, the embedder's sha256, and where they came from."""
    rng = np.random.default_rng(0)
    if args.lfw is None:
        v = rng.normal(size=(4096, 128)).astype(np.float32)
        crops = np.full((1, 112, 112, 3), 128, np.uint8)
        return v / np.linalg.norm(v, axis=1, keepdims=True), crops, "0" * 64, "random unit vectors"
    import platformdirs

    from facewatch.evaluation.clusters import lfw_people
    from facewatch.evaluation.lfw import embed_subjects
    from facewatch.gallery.cache import AnalysisCache
    from facewatch.images import load_image

    pipeline = pipeline_from(args)
    assert pipeline.embedder is not None
    paths, _truth = lfw_people(args.lfw, 10)
    cache = AnalysisCache(args.cache or platformdirs.user_cache_path("facewatch") / "analysis.sqlite")
    try:
        vectors, _ = embed_subjects(paths, pipeline, cache)
    finally:
        cache.close()
    found = [a.crops[0] for a in pipeline.analyze([load_image(p) for p in paths[:16]], embed=False)
             if len(a)]
    return (vectors, np.stack(found), pipeline.embedder.manifest.sha256,
            f"{len(paths)} LFW photos ({args.embedder}) with noise")


def _views(base: np.ndarray, rng: np.random.Generator, k: int, sigma: float) -> np.ndarray:
    noisy = base[None] + sigma * rng.normal(size=(k, base.shape[0])).astype(np.float32)
    out: np.ndarray = (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)
    return out


def _bench(args: argparse.Namespace) -> int:
    from facewatch.library.records import TrackRecord, Unnamed
    from facewatch.library.search import search
    from facewatch.library.sqlite_store import SqliteLibrary
    from facewatch.library.store import FaceQuery

    if args.faces < 100 or args.queries < 1:
        raise BadInputError("--faces must be at least 100 and --queries at least 1")
    base, crops, sha, source = _base_vectors(args)
    # a view of a photo's person: noise that leaves it about 0.8 similar to the photo (the
    # similarity of one person's views in a track); a 128-d sigma of 0.065 does that
    sigma = 0.75 / np.sqrt(base.shape[1])
    rng = np.random.default_rng(1)
    folder = args.dir or Path(tempfile.mkdtemp(prefix="facewatch-bench-library-"))
    t0 = time.time() - args.faces  # one face a second, ending now
    store = SqliteLibrary(folder, max_faces=args.faces, writer=True)
    try:
        add_s: list[float] = []
        started = time.perf_counter()
        for i in range(args.faces):
            views = _views(base[i % len(base)], rng, 3, sigma)
            q = np.array([0.9, 0.8, 0.7], np.float32)
            rec = TrackRecord(_CAMERAS[i % len(_CAMERAS)], i, t0 + i, t0 + i + 1.0,
                              Unnamed(0.1, None), crops[i % len(crops)], None, views, q, sha)
            t = time.perf_counter()
            store.add(rec, rec.mean_embedding())
            add_s.append(time.perf_counter() - t)
        fill_s = time.perf_counter() - started
        t = time.perf_counter()
        store.save_index()
        save_s = time.perf_counter() - t
        store.close()

        t = time.perf_counter()
        reader = SqliteLibrary(folder)
        reader.nearest(base[:1], sha, 1)  # opens the saved index
        open_s = time.perf_counter() - t
        queries = np.stack([_views(base[j % len(base)], rng, 1, sigma)[0]
                            for j in rng.integers(0, len(base), args.queries)])
        threshold = 0.307 if args.lfw is not None else 0.5

        def timed(**kwargs: object) -> tuple[np.ndarray, int]:
            ms, found = [], 0
            for qv in queries:
                t = time.perf_counter()
                hits = search(reader, qv, sha, limit=20, min_similarity=threshold,
                              **kwargs)  # type: ignore[arg-type]
                ms.append(1000 * (time.perf_counter() - t))
                found += len(hits)
            return np.array(ms), found

        plain, found = timed()
        newest, _ = timed(order="newest")
        camera, _ = timed(camera="door")
        recent, _ = timed(since=t0 + args.faces - 3600)
        # recall of the index against exact search, on the track vectors
        ids = reader.face_ids(FaceQuery())
        exact_ids, exact_vectors = ids, reader.vectors(ids)
        sample = queries[: min(100, len(queries))]
        exact = np.argsort(-(sample @ exact_vectors.T), axis=1)[:, :10]
        approx = reader.nearest(sample, sha, 10)
        recall = float(np.mean([len({exact_ids[j] for j in row} & {f for f, _ in got}) / 10
                                for row, got in zip(exact, approx)]))
        reader.close()
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)

    def stats(ms: np.ndarray) -> dict[str, float]:
        return {"p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)),
                "p99": float(np.percentile(ms, 99))}

    add_ms = np.array(add_s) * 1000
    doc = {"faces": args.faces, "source": source, "store_ms": stats(add_ms),
           "faces_stored_per_s": args.faces / fill_s, "index_save_s": save_s,
           "open_s": open_s, "search_ms": stats(plain), "search_newest_ms": stats(newest),
           "search_one_camera_ms": stats(camera), "search_last_hour_ms": stats(recent),
           "results_per_search": found / len(queries), "recall_at_10": recall,
           "queries": len(queries)}

    def line(label: str, s: dict[str, float]) -> str:
        return f"{label:28s} p50 {s['p50']:6.2f} ms  p90 {s['p90']:6.2f}  p99 {s['p99']:6.2f}"

    emit(args.json, doc, [
        f"face library with {args.faces:,} faces ({source})",
        f"stored {doc['faces_stored_per_s']:.0f} faces/s (crop JPEG, SQLite row, index); "
        f"index saved in {save_s:.2f} s, opened in {open_s:.2f} s",
        line("store one face", doc["store_ms"]),
        line("search (top 20)", doc["search_ms"]),
        line("search, newest first", doc["search_newest_ms"]),
        line("search, one camera of 4", doc["search_one_camera_ms"]),
        line("search, last hour", doc["search_last_hour_ms"]),
        f"{doc['results_per_search']:.1f} results per search at >= {threshold}; index recall@10 "
        f"{recall:.3f} against exact search",
    ])
    return 0
