"""What Home Assistant accepts in an MQTT discovery payload, written down from its documentation,
and a check of a payload (and of the states published for it) against it.

Sources: home-assistant.io, integrations/sensor.mqtt, integrations/binary_sensor.mqtt and
integrations/image.mqtt ("Configuration Variables"), integrations/mqtt ("Discovery messages":
the discovery topic, the origin options, an empty payload removes), and integrations/
binary_sensor ("Device class").  Home Assistant ignores keys it does not know, so a typo in a
key is silently lost there: this check is where it is caught.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

import jinja2

# Options of every MQTT entity platform below.
_ENTITY = {
    "availability", "availability_mode", "availability_template", "availability_topic", "device",
    "enabled_by_default", "encoding", "entity_category", "entity_picture", "icon",
    "json_attributes_template", "json_attributes_topic", "name", "object_id", "platform",
    "unique_id"}
ALLOWED: dict[str, set[str]] = {
    "sensor": _ENTITY | {
        "device_class", "expire_after", "force_update", "last_reset_value_template", "options",
        "payload_available", "payload_not_available", "qos", "state_class", "state_topic",
        "suggested_display_precision", "unit_of_measurement", "value_template"},
    "binary_sensor": _ENTITY | {
        "device_class", "expire_after", "force_update", "off_delay", "payload_available",
        "payload_not_available", "payload_off", "payload_on", "qos", "state_topic",
        "value_template"},
    # no top-level payload_available here: availability's own keys carry it
    "image": _ENTITY | {"content_type", "image_encoding", "image_topic", "url_template", "url_topic"},
}
REQUIRED: dict[str, set[str]] = {"sensor": {"state_topic"}, "binary_sensor": {"state_topic"},
                                 "image": set()}  # image: image_topic or url_topic, exactly one
# Options of a discovery payload rather than of a platform.
DISCOVERY = {"origin", "~"}
AVAILABILITY = {"topic", "payload_available", "payload_not_available", "value_template"}
DEVICE = {"configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model",
          "model_id", "name", "serial_number", "suggested_area", "sw_version", "via_device"}
ORIGIN = {"name", "sw_version", "support_url"}
BINARY_SENSOR_CLASSES = {
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door",
    "garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving", "occupancy",
    "opening", "plug", "power", "presence", "problem", "running", "safety", "smoke", "sound",
    "tamper", "update", "vibration", "window"}
# The sensor classes facewatch uses ("timestamp: ISO 8601 with a time zone").
SENSOR_CLASSES = {"timestamp"}
_TOPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def check_discovery(topic: str, payload: bytes, discovery_prefix: str = "homeassistant"
                    ) -> tuple[str, dict[str, Any]]:
    """(component, config) of a discovery message; AssertionError naming what Home Assistant
    would not take."""
    levels = topic.split("/")
    assert len(levels) == 5 and levels[0] == discovery_prefix and levels[-1] == "config", topic
    component, node, object_id = levels[1:4]
    assert component in ALLOWED, f"{topic}: not a component checked here"
    assert _TOPIC_ID.match(node) and _TOPIC_ID.match(object_id), \
        f"{topic}: node_id and object_id must be [a-zA-Z0-9_-]"
    config = json.loads(payload)
    assert isinstance(config, dict), topic
    unknown = set(config) - ALLOWED[component] - DISCOVERY
    assert not unknown, f"{topic}: keys Home Assistant does not document for {component}: {unknown}"
    missing = REQUIRED[component] - set(config)
    assert not missing, f"{topic}: required keys missing: {missing}"
    if component == "image":
        assert ("image_topic" in config) != ("url_topic" in config), \
            f"{topic}: an image needs image_topic or url_topic, not both"
    assert not ("availability" in config and "availability_topic" in config), \
        f"{topic}: availability and availability_topic must not be used together"
    for item in config.get("availability", []):
        assert "topic" in item and set(item) <= AVAILABILITY, f"{topic}: availability {item}"
    device = config.get("device")
    if device is not None:
        assert set(device) <= DEVICE, f"{topic}: device keys {set(device) - DEVICE}"
        assert device.get("identifiers") or device.get("connections"), \
            f"{topic}: a device needs identifiers or connections"
        assert config.get("unique_id"), f"{topic}: a device works only with a unique_id"
    origin = config.get("origin")
    if origin is not None:
        assert "name" in origin and set(origin) <= ORIGIN, f"{topic}: origin {origin}"
    if "device_class" in config:
        classes = BINARY_SENSOR_CLASSES if component == "binary_sensor" else SENSOR_CLASSES
        assert component != "image" and config["device_class"] in classes, \
            f"{topic}: device_class {config['device_class']!r}"
    for key, value in config.items():
        if key.endswith("_topic"):
            assert isinstance(value, str) and value and not set(value) & {"+", "#", "\0"}, \
                f"{topic}: {key} {value!r} is not a topic to subscribe to"
    return component, config


def render(template: str, payload: bytes) -> str:
    """A state as Home Assistant renders `template` for `payload` (value, value_json)."""
    text = payload.decode()
    variables: dict[str, Any] = {"value": text}
    try:
        variables["value_json"] = json.loads(text)
    except ValueError:
        pass
    return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(template).render(
        **variables)


def check_state(component: str, config: dict[str, Any], payload: bytes) -> str:
    """What the entity shows for `payload` on its state topic; AssertionError if Home
    Assistant could not use it."""
    if component == "image":
        assert config.get("content_type", "image/jpeg") == "image/jpeg"
        assert payload.startswith(b"\xff\xd8") and payload.rstrip(b"\0").endswith(b"\xff\xd9"), \
            "not a JPEG"
        return "image"
    value = render(config["value_template"], payload) if "value_template" in config else payload.decode()
    if component == "binary_sensor":
        on, off = config.get("payload_on", "ON"), config.get("payload_off", "OFF")
        assert value in (on, off), f"{value!r} is neither {on!r} nor {off!r}"
    elif config.get("device_class") == "timestamp":
        when = datetime.datetime.fromisoformat(value)
        assert when.tzinfo is not None, f"{value!r}: a timestamp sensor needs a time zone"
    return value
