"""What every camera's source process needs, imported once by the server its processes are
forked from (see `ChildKind.preload`): the source loop, numpy, and GStreamer with its plugin
registry read, so those pages are shared between the cameras' processes.

Imported in that server, a fresh single-threaded interpreter, never in the supervisor.
Initialising GStreamer starts no thread there (checked: `Gst.init` leaves one), which is what
makes forking after it safe.  Without GStreamer, only the source loop is imported; a source
then decodes with OpenCV, which it imports itself.
"""

from __future__ import annotations

import facewatch.streams.process  # noqa: F401  (the loop, the ring, numpy, metrics)

try:
    from facewatch.streams import gstreamer_impl
except (ImportError, ValueError):  # no PyGObject, or no GStreamer typelibs
    pass
else:
    try:
        gstreamer_impl.init_gstreamer()
    except Exception:  # noqa: BLE001  (the source process reports GStreamer's state itself)
        pass
