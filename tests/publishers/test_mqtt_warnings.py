"""How often a failing MQTT connection is reported: each reason once while attempts fail, and
again after the broker has been reached (the real broker cases are in tests/security)."""

from __future__ import annotations

import logging

import pytest

from facewatch.config.mqtt import MqttOutput
from facewatch.publishers.mqtt import MqttPublisher


def test_alternating_reasons_are_each_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    publisher = MqttPublisher(MqttOutput(host="127.0.0.1"), ["door"])
    # e.g. TLS 1.3 reports a refused client certificate in one of two ways, at random
    reasons = ["closed the connection (certificate required)", "handshake failed"] * 3
    with caplog.at_level(logging.DEBUG, logger="facewatch.publishers.mqtt"):
        for why in reasons:
            publisher._connect_failed(why)
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 2 and warned[0].startswith(reasons[0]) and warned[1].startswith(reasons[1])
    assert sum("(attempt" in r.getMessage() for r in caplog.records) == 4
