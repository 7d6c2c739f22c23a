"""facewatch: real-time face recognition for cameras, with events on ZeroMQ and MQTT."""

__version__ = "0.1.0"
