"""ZeroMQ PUB socket: every event as two frames, [topic, JSON].

The topic frame is `<type>/<camera>` in UTF-8, e.g. `face.recognized/door`.  ZeroMQ filters
subscriptions by byte prefix, so:

    SUBSCRIBE ""                      every event
    SUBSCRIBE "face.recognized"       recognitions from every camera
    SUBSCRIBE "track."                track.started and track.ended
    SUBSCRIBE "face.recognized/door"  recognitions from door -- and from door2, door-back, ...:
                                      compare the topic frame (or `camera`) for an exact match

The second frame is the event's JSON (`facewatch.events.to_json`).  PUB never blocks: a
subscriber that falls `send_hwm` messages behind loses messages, and a subscriber that connects
late misses what came before (use MQTT or the JSON-lines file for history).
"""

from __future__ import annotations

import logging

import zmq

from facewatch.events import Event, to_json
from facewatch.publishers.base import PublisherError

log = logging.getLogger(__name__)


def _reason(exc: zmq.ZMQError) -> str:
    # pyzmq's own message appends the address; the C library's is the plain reason.
    return zmq.strerror(exc.errno) if exc.errno else str(exc)


def topic_of(event: Event) -> bytes:
    return f"{event.type}/{event.camera}".encode()


class ZmqPublisher:
    name = "zmq"

    def __init__(self, bind: str = "tcp://127.0.0.1:5556", *, send_hwm: int = 10_000,
                 linger_ms: int = 500) -> None:
        self.bind = bind
        self.send_hwm = send_hwm
        self.linger_ms = linger_ms
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._socket: zmq.Socket[bytes] | None = None
        self._endpoint: str | None = None

    @property
    def endpoint(self) -> str:
        """The bound endpoint, with the real port when the config said `*`."""
        if self._endpoint is None:
            raise RuntimeError("the ZeroMQ publisher is not started")
        return self._endpoint

    def start(self) -> None:
        if self._socket is not None:
            return
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()  # our own: no global instance
        socket = context.socket(zmq.PUB)
        socket.setsockopt(zmq.SNDHWM, self.send_hwm)
        socket.setsockopt(zmq.LINGER, self.linger_ms)
        if self.bind.startswith("tcp://[") or self.bind.count(":") > 2:
            socket.setsockopt(zmq.IPV6, 1)
        try:
            socket.bind(self.bind)
        except zmq.ZMQError as exc:
            socket.close(0)
            context.term()
            raise PublisherError(f"outputs.zmq.bind {self.bind}: cannot bind ({_reason(exc)})") from None
        self._context, self._socket = context, socket
        self._endpoint = socket.getsockopt_string(zmq.LAST_ENDPOINT)
        log.info("publishing events on ZeroMQ %s", self._endpoint)

    def publish(self, event: Event) -> None:
        if self._socket is None:
            raise PublisherError("the ZeroMQ publisher is not started")
        try:
            self._socket.send_multipart([topic_of(event), to_json(event)], flags=zmq.NOBLOCK)
        except zmq.Again:
            # PUB drops at the high-water mark instead of raising; this is only defensive.
            raise PublisherError("ZeroMQ send queue full: event dropped") from None
        except zmq.ZMQError as exc:
            raise PublisherError(f"ZeroMQ send failed: {_reason(exc)}") from None

    def stop(self) -> None:
        socket, context = self._socket, self._context
        self._socket = self._context = None
        if socket is not None:
            socket.close(self.linger_ms)
        if context is not None:
            context.term()
