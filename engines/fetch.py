"""Get the pinned source files: from a local directory, from GitHub, or from a wheel via pip.

Every file is checked against its pinned sha256 before it is used, and written atomically, so
an interrupted or tampered download never leaves a file that looks valid.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from facewatch.engines.catalog import GitHubFile, PinnedFile, WheelMember
from facewatch.engines.files import atomic_write_bytes, sha256_file
from facewatch.errors import IntegrityError, ModelError
from facewatch.progress import progress_bar

log = logging.getLogger(__name__)

_DOWNLOAD_TIMEOUT_S = 60


def acquire(pinned: PinnedFile, sources_dir: Path, from_dir: Path | None = None,
            mirror: str | None = None) -> tuple[Path, str]:
    """Return the verified local copy of `pinned` and how it was obtained."""
    target = sources_dir / pinned.filename
    if target.is_file() and sha256_file(target) == pinned.sha256:
        return target, "cached"
    if from_dir is not None:
        _import_from_dir(pinned, from_dir, target)
        return target, f"imported from {from_dir}"
    if isinstance(pinned.origin, GitHubFile):
        _download(pinned, pinned.origin.url(mirror), target)
        return target, f"downloaded from {pinned.origin.describe()}"
    wheel = sources_dir / pinned.origin.wheel_filename
    if not wheel.is_file():  # one download serves every file inside the wheel
        _download_wheel_via_pip(pinned.origin, wheel)
    _extract_member(pinned, pinned.origin, wheel, target)
    return target, f"extracted from {pinned.origin.requirement}"


def _check(pinned: PinnedFile, data: bytes, where: str) -> None:
    import hashlib

    actual = hashlib.sha256(data).hexdigest()
    if actual != pinned.sha256:
        raise IntegrityError(f"{where}: sha256 {actual[:12]}… is not the pinned "
                             f"{pinned.sha256[:12]}… for {pinned.filename}; refusing it")


def _import_from_dir(pinned: PinnedFile, from_dir: Path, target: Path) -> None:
    """Find the file under `from_dir` by name, or inside the pinned wheel if that is there."""
    if not from_dir.is_dir():
        raise ModelError(f"{from_dir}: not a directory (--from expects a folder of model files)")
    matches = sorted(p for p in from_dir.rglob(pinned.filename) if p.is_file())
    if matches:
        data = matches[0].read_bytes()
        _check(pinned, data, str(matches[0]))
        atomic_write_bytes(target, data)
        return
    if isinstance(pinned.origin, WheelMember):
        wheels = sorted(from_dir.rglob(pinned.origin.wheel_filename))
        if wheels:
            _extract_member(pinned, pinned.origin, wheels[0], target)
            return
    raise ModelError(f"{from_dir}: no {pinned.filename} found under it "
                     f"(expected sha256 {pinned.sha256[:12]}…, from {pinned.origin.describe()})")


def _download(pinned: PinnedFile, url: str, target: Path) -> None:
    log.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            chunks = []
            with progress_bar(total, pinned.filename, unit="B", unit_scale=True) as bar:
                while chunk := resp.read(1 << 16):
                    chunks.append(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(exc, urllib.error.HTTPError):
            reason = f"HTTP {exc.code} {reason}"
            exc.close()  # an HTTP error carries the open response; do not leak its socket
        raise ModelError(f"{url}: download failed ({reason}); on an offline machine copy the "
                         f"files over and use `facewatch models fetch --from DIR`") from None
    data = b"".join(chunks)
    _check(pinned, data, url)
    atomic_write_bytes(target, data)


def _download_wheel_via_pip(origin: WheelMember, dest: Path) -> None:
    """Fetch the wheel with the ordinary pip client (whatever index pip is configured with)
    into `dest`; it is checked against its pin when a file is extracted from it."""
    with tempfile.TemporaryDirectory(prefix="facewatch-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-d", tmp, origin.requirement]
        log.info("fetching %s with pip", origin.requirement)
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              env={**os.environ, "PIP_NO_INPUT": "1"})
        wheel = Path(tmp) / origin.wheel_filename
        if proc.returncode != 0 or not wheel.is_file():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise ModelError(f"pip download {origin.requirement} failed ({last}); on an offline "
                             f"machine use `facewatch models fetch --from DIR`")
        atomic_write_bytes(dest, wheel.read_bytes())


def _extract_member(pinned: PinnedFile, origin: WheelMember, wheel: Path, target: Path) -> None:
    actual = sha256_file(wheel)
    if actual != origin.wheel_sha256:
        raise IntegrityError(f"{wheel}: sha256 {actual[:12]}… is not the pinned "
                             f"{origin.wheel_sha256[:12]}… of {origin.requirement}; refusing it")
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(origin.member)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ModelError(f"{wheel}: cannot read {origin.member} ({exc})") from None
    _check(pinned, data, f"{wheel}:{origin.member}")
    atomic_write_bytes(target, data)
