"""Pick the decoder backend: GStreamer when its bindings and elements are present, else OpenCV.

Each backend module imports its library at the top, so only the selected one is ever imported
(PyGObject is an optional dependency; cv2 import costs time a GStreamer process need not pay).
"""

from __future__ import annotations

import logging
from typing import Literal

from facewatch.errors import BackendUnavailableError
from facewatch.streams.settings import StreamSettings
from facewatch.streams.source import FrameSource
from facewatch.streams.urls import SourceKind

log = logging.getLogger(__name__)

Backend = Literal["gstreamer", "opencv"]


def create_source(settings: StreamSettings) -> FrameSource:
    """A new, unopened source for `settings` on the backend `choose_backend` picks."""
    if choose_backend(settings) == "gstreamer":
        from facewatch.streams.gstreamer_impl import GstFrameSource

        return GstFrameSource(settings)
    from facewatch.streams.opencv_impl import OpenCvFrameSource

    return OpenCvFrameSource(settings)


def choose_backend(settings: StreamSettings) -> Backend:
    """The backend for `settings.decoder`; `BackendUnavailableError` if gstreamer is forced but missing."""
    if settings.decoder == "opencv":
        return "opencv"
    problem = gstreamer_problem(settings.kind)
    if problem is None:
        return "gstreamer"
    if settings.decoder == "gstreamer":
        raise BackendUnavailableError(
            f"stream {settings.shown_url}: decoder gstreamer is unavailable ({problem}); "
            "install GStreamer and facewatch[gstreamer], or set decoder: opencv")
    log.info("stream %s: using OpenCV, GStreamer is unavailable (%s)", settings.shown_url, problem)
    return "opencv"


def gstreamer_problem(kind: SourceKind) -> str | None:
    """Why the GStreamer backend cannot read a `kind` source here, or None if it can."""
    try:
        from facewatch.streams import gstreamer_impl
    except (ImportError, ValueError) as exc:  # gi.require_version raises ValueError for a missing typelib
        return f"cannot load GStreamer's Python bindings: {exc}"
    missing = gstreamer_impl.missing_elements(kind)
    if missing:
        return f"missing GStreamer elements: {', '.join(missing)}"
    return None
