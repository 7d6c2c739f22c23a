"""Where events go: one module per transport (`zmq`, `mqtt`, `jsonl`) behind `Publisher`, and
`Fanout`, which stamps each event and hands it to all of them.

    publishers = build_publishers(config, on_ack=outbox.acknowledged)
    fanout = Fanout(publishers)
    fanout.start()
    fanout.publish(FaceRecognized(camera="door", ts=frame_ts, ...))
    fanout.stop()
"""

from facewatch.publishers.base import AckHook, Publisher, PublisherError
from facewatch.publishers.build import build_publishers
from facewatch.publishers.fanout import Fanout, PublisherStats

__all__ = ["AckHook", "Fanout", "Publisher", "PublisherError", "PublisherStats", "build_publishers"]
