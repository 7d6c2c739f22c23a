"""Where events go: one module per transport (`zmq`, `mqtt`, `jsonl`) behind `Publisher`, the
`publisher` process that feeds them (`process`), and what sits between the two: the outbox,
which numbers and stores each event (`outbox`), `Fanout`, which hands a stored event to every
transport that takes it once (ZeroMQ, JSON lines), and `AckedDelivery`, which feeds a transport
that acknowledges (MQTT) from the outbox (`delivery`).

    publishers = build_publishers(config, on_ack=outbox.ack)
    fanout = Fanout([p for p in publishers if not acknowledges(p)])
    fanout.start()
    fanout.deliver(outbox.add(event, keep=False))
    fanout.stop()
"""

from facewatch.publishers.base import AckHook, Publisher, PublisherError
from facewatch.publishers.build import build_publishers
from facewatch.publishers.fanout import Fanout, PublisherStats

__all__ = ["AckHook", "Fanout", "Publisher", "PublisherError", "PublisherStats", "build_publishers"]
