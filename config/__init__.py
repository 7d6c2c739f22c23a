"""Typed, validated configuration for the daemon, plus example files and the event schema.

    config = resolve(load_config(path))   # ConfigError (exit code 3) with `file:line: field: ...`

One module per section (`cameras`, `inference`, `tracking`, `recognition`, `snapshots`,
`outputs` + `mqtt`, `outbox`, `metrics`, `log`), all strict (`extra="forbid"`) and frozen.  Loading only
validates; `resolve()` is the separate step that looks at the machine.
"""

from pathlib import Path

from facewatch.config.cameras import CameraConfig
from facewatch.config.daemon import DaemonConfig
from facewatch.config.inference import InferenceConfig
from facewatch.config.loader import load_config, parse_config
from facewatch.config.log import LoggingConfig
from facewatch.config.metrics import MetricsConfig
from facewatch.config.mqtt import MqttOutput, MqttTls
from facewatch.config.outbox import OutboxConfig
from facewatch.config.outputs import JsonlOutput, OutputsConfig, ZmqOutput
from facewatch.config.recognition import RecognitionConfig
from facewatch.config.resolve import check_state_dir, resolve
from facewatch.config.snapshots import SnapshotsConfig
from facewatch.config.tracking import TrackingConfig

__all__ = [
    "CameraConfig", "DaemonConfig", "InferenceConfig", "JsonlOutput", "LoggingConfig",
    "MetricsConfig", "MqttOutput", "MqttTls", "OutboxConfig", "OutputsConfig", "RecognitionConfig",
    "SnapshotsConfig", "TrackingConfig", "ZmqOutput", "check_state_dir", "load_config",
    "load_resolved", "parse_config", "resolve",
]


def load_resolved(path: Path | str) -> DaemonConfig:
    """`resolve(load_config(path))`: what `facewatch run` and `facewatch config check` use."""
    return resolve(load_config(path))
