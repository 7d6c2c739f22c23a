"""What a command run with sudo writes for the service belongs to the service
(`facewatch.ownership`), and `config check` says when the service could not read a photo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from facewatch.cli.config_check import protected_home_warning
from facewatch.config.editing import append_list_item, save_config
from facewatch.config.loader import load_config
from facewatch.gallery.editing import add_person_images, edit_gallery
from facewatch.gallery.gallery import Gallery
from facewatch.ownership import Ownership, make_folders
from facewatch.pipeline import FacePipeline

NOBODY = 65534


def _service_folder(tmp_path: Path, mode: int) -> Path:
    """A folder owned by another user, as /var/lib/facewatch is the service's."""
    if os.geteuid() != 0:
        pytest.skip("giving files to another user needs root, as sudo runs the CLI")
    folder = tmp_path / "service"
    folder.mkdir()
    os.chown(folder, NOBODY, NOBODY)
    folder.chmod(mode)
    return folder


@pytest.mark.parametrize("mode, file_mode", [(0o700, 0o600), (0o750, 0o640), (0o755, 0o644)])
def test_a_new_file_takes_its_folders_owner_and_read_bits(tmp_path: Path, mode: int,
                                                            file_mode: int) -> None:
    folder = _service_folder(tmp_path, mode)
    made = folder / "file"
    made.write_text("x")
    Ownership.for_new_file_in(folder).apply(made)
    st = made.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (NOBODY, NOBODY, file_mode)
    make_folders(folder / "a" / "b")
    for sub in (folder / "a", folder / "a" / "b"):
        st = sub.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (NOBODY, NOBODY, mode)


def test_sudo_gallery_add_leaves_the_service_a_gallery_it_can_read(
        tmp_path: Path, examples: Path, pipeline: FacePipeline) -> None:
    state = _service_folder(tmp_path, 0o700)
    gallery = state / "gallery.yaml"
    photo = str(examples / "knn_examples" / "train" / "biden" / "biden2.jpg")
    cache = state / "gallery"

    def enrol(candidate: Path) -> None:
        Gallery.open(candidate, pipeline, state_dir=cache)

    edit_gallery(gallery, add_person_images("biden", None, [photo]), enrol)
    for path in (gallery, cache, cache / "analysis.sqlite", *cache.glob("index-*.hnsw")):
        assert path.stat().st_uid == NOBODY, path
    assert gallery.stat().st_mode & 0o777 == 0o600
    # an existing file keeps its owner and mode through an edit
    gallery.chmod(0o640)
    edit_gallery(gallery, add_person_images("biden", None, [photo]), enrol)
    assert (gallery.stat().st_uid, gallery.stat().st_mode & 0o777) == (NOBODY, 0o640)


def test_sudo_cameras_add_keeps_the_configs_owner(tmp_path: Path, examples: Path) -> None:
    folder = _service_folder(tmp_path, 0o750)
    config = folder / "config.yaml"
    config.write_text("# mine\ncameras:\n")
    os.chown(config, 0, NOBODY)
    config.chmod(0o640)
    text = append_list_item(config.read_text(), config, "cameras",
                            {"name": "door", "url": str(examples / "obama.jpg")})
    save_config(config, text, load_config)
    st = config.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, NOBODY, 0o640)
    assert config.read_text().startswith("# mine\ncameras:\n  - name: door\n")


def test_photos_the_unit_cannot_read_are_named() -> None:
    service = Path("/etc/facewatch/config.yaml")
    gallery = Path("/var/lib/facewatch/gallery.yaml")
    warning = protected_home_warning(gallery, [Path("/var/lib/facewatch/faces/a/1.jpg"),
                                               Path("/home/ada/Pictures/ada.jpg")], service)
    assert warning is not None
    assert "1 gallery photo(s) are under /home (e.g. /home/ada/Pictures/ada.jpg)" in warning
    assert "ProtectHome=yes" in warning and "/var/lib/facewatch/photos/" in warning
    assert "under /root" in str(protected_home_warning(Path("/root/g.yaml"), [], service))
    assert protected_home_warning(gallery, [Path("/var/lib/facewatch/faces/a/1.jpg")], service) is None
    # a user's own config in their home, run by hand: nothing hides their photos
    assert protected_home_warning(Path("/home/ada/g.yaml"), [Path("/home/ada/a.jpg")],
                                  Path("/home/ada/.config/facewatch/config.yaml")) is None
