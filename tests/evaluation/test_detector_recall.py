"""`facewatch eval detector`: recall on dlib's hand-annotated group photos (43 faces in 9
PASCAL VOC photos, 37-130 px tall), by face size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from facewatch.evaluation.detection import detector_recall, matched_truth
from facewatch.pipeline import FacePipeline


def test_matching_is_one_to_one() -> None:
    truth = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    found = np.array([[0, 0, 10, 10]], np.float32)  # one detection covers one drawn face only
    assert matched_truth(truth, found).tolist() == [True, False, False]
    assert matched_truth(truth, np.zeros((0, 4), np.float32)).tolist() == [False] * 3


def test_recall_on_dlibs_group_photos(pipeline: FacePipeline, photos: Path) -> None:
    r = detector_recall(pipeline.detector, photos / "dlib_examples_faces")
    assert (r.photos, r.faces) == (9, 43)
    assert sum(b.faces for b in r.bands) == 43 and sum(b.found for b in r.bands) == r.found
    assert r.recall is not None and r.recall >= 0.95  # 43 of 43 when measured


def test_the_command(models_dir: Path, photos: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("facewatch")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "facewatch"]
    env = {**os.environ, "FACEWATCH_MODELS": str(models_dir)}
    proc = subprocess.run([*command, "eval", "detector", "--photos",
                           str(photos / "dlib_examples_faces"), "--json"], capture_output=True,
                          text=True, check=False, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["faces"] == 43 and [b["height_px"] for b in doc["bands"]] == [
        [0, 20], [20, 40], [40, 80], [80, None]]
    proc = subprocess.run([*command, "eval", "detector", "--photos", str(tmp_path)],
                          capture_output=True, text=True, check=False, timeout=300, env=env)
    assert proc.returncode == 2 and proc.stderr.startswith(f"facewatch: error: {tmp_path}: no photos")
