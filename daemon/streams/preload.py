"""What every camera's source process needs, imported once by the server its processes are
forked from (see `ChildKind.preload`): the source loop, numpy, GStreamer with its plugin
registry read, and the plugins a camera's pipeline loads (with FFmpeg's libraries behind
gst-libav, about 150 shared libraries whose relocated pages each process would otherwise
hold privately), so those pages are shared between the cameras' processes.

Imported in that server, a fresh interpreter, never in the supervisor.  It must stay
single-threaded to fork safely: numpy's OpenBLAS would start worker threads on import, so
it is limited to one (a source process does no linear algebra); reading the registry and
loading plugins start none.  Without GStreamer, only the source loop is imported; a source
then decodes with OpenCV, which it imports itself.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import facewatch.streams.process  # noqa: F401  (the loop, the ring, numpy, metrics)

# The plugins of rtspsrc / uridecodebin / v4l2src -> decodebin -> videoconvert -> appsink with
# the usual containers and codecs; hardware decoders' plugins load on demand in the source.
PLUGINS = ("coreelements", "playback", "typefindfunctions", "app", "videoconvertscale",
           "videoconvert", "videoscale", "isomp4", "matroska", "videoparsersbad", "libav",
           "jpeg", "rtsp", "rtp", "rtpmanager", "udp", "tcp", "video4linux2")

try:
    from facewatch.streams import gstreamer_impl
except (ImportError, ValueError):  # no PyGObject, or no GStreamer typelibs
    pass
else:
    try:
        from gi.repository import Gst

        gstreamer_impl.init_gstreamer()
        for _name in PLUGINS:
            Gst.Plugin.load_by_name(_name)  # None when not installed
    except Exception:  # noqa: BLE001,S110  (the source process reports GStreamer's state itself)
        pass
