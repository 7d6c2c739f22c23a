"""The publishers a config asks for; each transport's module is imported only when used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facewatch.config import DaemonConfig
from facewatch.publishers.base import AckHook, Publisher


def build_publishers(config: DaemonConfig, *, on_ack: AckHook | None = None,
                     api_feed: Any = None, runtime_dir: Path | None = None) -> list[Publisher]:
    """Unstarted publishers for `config.outputs`, in the order zmq, mqtt, jsonl, then the feed
    of the daemon's own API process when `api_feed` (its channel) is given.

    `config` must be resolved (`facewatch.config.resolve`): the MQTT password read and paths
    absolute.  `on_ack` is called with an event id when the MQTT broker has acknowledged it.
    """
    if not config.is_resolved:
        raise ValueError("build_publishers needs a resolved config (facewatch.config.resolve)")
    outputs = config.outputs
    publishers: list[Publisher] = []
    if outputs.zmq is not None:
        from facewatch.publishers.zmq import ZmqPublisher

        publishers.append(ZmqPublisher(outputs.zmq.bind, send_hwm=outputs.zmq.send_hwm,
                                       curve=outputs.zmq.curve))
    if outputs.mqtt is not None:
        from facewatch.publishers.home_assistant import home_assistant_for
        from facewatch.publishers.mqtt import MqttPublisher

        publishers.append(MqttPublisher(outputs.mqtt, config.camera_names, on_ack=on_ack,
                                        home_assistant=home_assistant_for(config)))
    if outputs.jsonl is not None:
        from facewatch.publishers.jsonl import JsonlPublisher

        publishers.append(JsonlPublisher(outputs.jsonl.path))
    if api_feed is not None:
        from facewatch.publishers.api_feed import CAMERAS_FILE, ApiFeed

        publishers.append(ApiFeed(api_feed, runtime_dir / CAMERAS_FILE if runtime_dir else None))
    return publishers
