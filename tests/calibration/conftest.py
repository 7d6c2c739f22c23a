"""One calibration shared by the calibration tests: all four nets, on about 50 real images
(40 frames of the Hamilton clip and the face_recognition example portraits), into a copy of
the session's models so that the shared `models_dir` is never written to."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from facewatch.calibration.run import CalibrationOptions, CalibrationReport, calibrate
from facewatch.calibration.sources import chain, folder_source, video_source
from facewatch.engines.store import ModelStore
from facewatch.pipeline import PipelineSettings

# INT8 is tested on foamliu's embedder: the default (fused) embedder's sirius half quantises
# badly and the gate refuses it (README, "Choosing the embedder").
EMBEDDER = "mobilefacenet-foamliu"


def copy_models(models_dir: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in models_dir.iterdir():
        if f.is_file():
            shutil.copyfile(f, dest / f.name)
    return dest


@pytest.fixture(scope="session")
def hamilton(shared_dir: Path) -> Path:
    return shared_dir / "data" / "videos" / "short_hamilton_clip.mp4"


@pytest.fixture(scope="session")
def calibrated(models_dir: Path, hamilton: Path, examples: Path, photos: Path,
               tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CalibrationReport]:
    """A models dir holding the FP32 models and their calibrated variants."""
    dest = copy_models(models_dir, tmp_path_factory.mktemp("calibrated"))
    source = chain([video_source(hamilton, 40), folder_source(examples)])
    # Speed depends on the machine's load: decisions here are made on accuracy alone.
    report = calibrate(ModelStore(dest), PipelineSettings(embedder=EMBEDDER), source,
                       CalibrationOptions(speed_check=False, progress=False,
                                          detector_photos=photos / "dlib_examples_faces"))
    return dest, report
