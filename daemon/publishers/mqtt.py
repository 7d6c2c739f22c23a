"""MQTT: events to a broker with paho-mqtt 2, reconnecting in the background.

Topics (`<prefix>` is `outputs.mqtt.prefix`, `facewatch` by default):

    <prefix>/available            "online" (retained) after every (re)connect; "offline"
                                  (retained) as the Last Will and on a clean stop
    <prefix>/events               every event, JSON, QoS `outputs.mqtt.qos` (1)
    <prefix>/<camera>/<type>      the same event again per camera and type, e.g.
                                  facewatch/door/face.recognized, facewatch/door/track.ended
    <prefix>/<camera>/status      the camera's latest camera.status event, retained, so a
                                  client that connects later learns each camera's state

With `home_assistant: true`, discovery configs (retained) under `<discovery_prefix>` and the
retained states behind them, per camera and per person in the gallery: see
`facewatch.publishers.home_assistant`, which decides what to send; this class sends it on
every (re)connection, after each event, and when `tick()` (called by the publisher loop) finds
a presence ran out or the gallery changed.  Everything is sent again when Home Assistant
announces itself on `<discovery_prefix>/status`.

Delivery: with QoS 1 the broker acknowledges each message (PUBACK); once every message of an
event is acknowledged, `on_ack(event_id)` is called, in paho's network thread.  While the
broker is away, QoS 1/2 messages wait in memory (at most `max_queued` messages) and are sent
after reconnecting; they are lost if the process ends first, which is why the daemon puts
the on-disk outbox (`publishers.delivery`) in front of this class.  An unreachable broker at start
neither blocks nor fails `start()`: one warning is logged and paho keeps retrying with an
exponential backoff.  The warning says why (unreachable, the broker's certificate refused,
our client certificate refused, wrong user or password) and is repeated only when the reason
changes.

Security: with `tls`, TLS 1.2 or later, the broker's certificate verified against `tls.ca` (or
the system's CAs) and its host name checked; `tls.cert`/`tls.key` are presented to brokers
that require client certificates (`MqttTls.ssl_context`).  The password goes to paho only;
paho's own log lines are not forwarded (its CONNECT line names the user).
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from facewatch.config.mqtt import MqttOutput, TlsFileError
from facewatch.errors import ConfigError
from facewatch.events import CameraStatus, Event, to_json
from facewatch.publishers.base import AckHook, PublisherError
from facewatch.publishers.home_assistant import AVAILABLE, UNAVAILABLE

if TYPE_CHECKING:
    from facewatch.publishers.home_assistant import HomeAssistant, Message

log = logging.getLogger(__name__)

# How often tick() looks at time-driven states: a presence turns off at most this late.
TICK_S = 0.25
# "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required (_ssl.c:2580)"
_SSL_ERROR = re.compile(r"\[SSL: [A-Z0-9_]+\] (.+?) \(_ssl\.c:\d+\)")


def event_topics(prefix: str, event: Event) -> list[tuple[str, bool]]:
    """(topic, retain) for every message that carries `event`."""
    if isinstance(event, CameraStatus):
        return [(f"{prefix}/events", False), (status_topic(prefix, event.camera), True)]
    return [(f"{prefix}/events", False), (f"{prefix}/{event.camera}/{event.type}", False)]


def status_topic(prefix: str, camera: str) -> str:
    return f"{prefix}/{camera}/status"


def availability_topic(prefix: str) -> str:
    return f"{prefix}/available"


class _Client(mqtt.Client):
    """paho's client, remembering why the last connection attempt failed: paho calls
    on_connect_fail without the exception, and "cannot reach" is the wrong thing to say about
    a certificate the broker refused or a broker we refused."""

    last_error: OSError | None = None

    def reconnect(self) -> MQTTErrorCode:
        try:
            rc = super().reconnect()
        except OSError as exc:
            self.last_error = exc
            raise
        self.last_error = None
        return rc

    def _ssl_wrap_socket(self, tcp_sock: socket.socket) -> ssl.SSLSocket:
        # paho leaves the TLS socket of a failed handshake to the garbage collector: one
        # ResourceWarning per attempt, for as long as a certificate is refused.  Our context
        # always checks the host name itself (MqttTls.ssl_context), so this is all paho does.
        context = self._ssl_context
        assert context is not None
        ssl_sock = context.wrap_socket(tcp_sock, server_hostname=self._host,
                                       do_handshake_on_connect=False)
        try:
            ssl_sock.settimeout(self._connect_timeout)
            ssl_sock.do_handshake()
        except BaseException:
            ssl_sock.close()
            raise
        return ssl_sock


def describe_connect_error(address: str, exc: OSError | None) -> str:
    """One line saying why a connection attempt failed, with the setting to look at."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or exc.reason or "verification failed"
        return (f"MQTT broker {address}: its TLS certificate was refused ({why}); check "
                f"outputs.mqtt.tls.ca, and that the certificate names {address.rpartition(':')[0]}")
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or str(exc)).replace("_", " ").lower()
        hint = "; check outputs.mqtt.tls.cert and key" if "certificate" in reason else ""
        return f"MQTT broker {address}: the TLS handshake failed ({reason}{hint})"
    if exc is None:
        return f"cannot reach MQTT broker {address}"
    return f"cannot reach MQTT broker {address} ({exc.strerror or exc})"


class MqttPublisher:
    name = "mqtt"
    acknowledges = True

    def __init__(self, settings: MqttOutput, cameras: Sequence[str] = (), *,
                 on_ack: AckHook | None = None, reconnect_min_s: int = 1,
                 reconnect_max_s: int = 30, max_queued: int = 10_000,
                 stop_timeout_s: float = 2.0,
                 home_assistant: HomeAssistant | None = None) -> None:
        """`settings` should come from a resolved config (password read, paths absolute).
        `home_assistant`: its entities, when `settings.home_assistant` (by default the
        cameras' only: `home_assistant_for(config)` adds the gallery's people)."""
        self.settings = settings
        self.cameras = tuple(cameras)
        if home_assistant is None and settings.home_assistant:
            from facewatch.publishers.home_assistant import HomeAssistant

            home_assistant = HomeAssistant(settings, self.cameras)
        self.home_assistant = home_assistant
        self.on_ack = on_ack
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.max_queued = max_queued
        self.stop_timeout_s = stop_timeout_s
        self.client_id = settings.client_id or f"facewatch-{socket.gethostname()}"[:128]
        self._client: mqtt.Client | None = None
        # Guards the bookkeeping below; never held while calling into paho (see publish).
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._stopping = False
        self._failed_attempts = 0
        # the reasons logged since attempts started failing, so that each is logged once
        self._warned: set[str] = set()
        self._socket_error: str | None = None  # paho's last socket error, for messages
        self._refused = False  # the broker refused the current attempt with a CONNACK
        self._mid_event: dict[int, str | None] = {}  # in-flight message → its event (None: ours)
        self._unacked: dict[str, int] = {}  # event_id → messages not yet acknowledged
        self._early_acks: set[int] = set()  # acknowledged before publish() returned its mid
        self._last_status: dict[str, bytes] = {}  # camera → latest camera.status payload
        self._next_tick = 0.0

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def start(self) -> None:
        if self._client is not None:
            return
        s = self.settings
        self._stopping = False
        self._failed_attempts = 0
        self._warned.clear()
        if self.home_assistant is not None:
            self.home_assistant.start()
        client = _Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                         protocol=mqtt.MQTTv311, clean_session=True)
        client.suppress_exceptions = True  # a bug in a callback must not end the network thread
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_log = self._on_log
        client.reconnect_delay_set(min_delay=self.reconnect_min_s, max_delay=self.reconnect_max_s)
        client.max_queued_messages_set(self.max_queued)
        client.will_set(availability_topic(s.prefix), UNAVAILABLE, qos=1, retain=True)
        if s.username is not None:
            password = s.password.get_secret_value() if s.password is not None else None
            client.username_pw_set(s.username, password)
        if s.tls is not None:
            try:
                client.tls_set_context(s.tls.ssl_context())
            except TlsFileError as exc:
                raise ConfigError(f"outputs.mqtt.tls.{exc.field}: {exc}") from None
        # Resolving and connecting happen in the network thread: start() never waits for them.
        client.connect_async(s.host, s.port, keepalive=s.keepalive)
        self._client = client
        client.loop_start()

    def publish(self, event: Event) -> None:
        client = self._client
        if client is None:
            raise PublisherError("the MQTT publisher is not started")
        payload = to_json(event)
        qos = self.settings.qos
        topics = event_topics(self.settings.prefix, event)
        with self._lock:
            if isinstance(event, CameraStatus):
                self._last_status[event.camera] = payload
            # Added, not set: the same event may be sent again (an outbox retrying) while the
            # first copy is still in flight; the hook fires once every copy is acknowledged.
            self._unacked[event.event_id] = self._unacked.get(event.event_id, 0) + len(topics)
        failure = None
        for topic, retain in topics:
            # Not under self._lock: paho holds its own lock while it calls on_publish, which
            # takes self._lock; holding ours while calling into paho would invert the order.
            info = client.publish(topic, payload, qos=qos, retain=retain)
            if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                failure = f"more than {self.max_queued} messages wait for the broker: event dropped"
            elif info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and qos == 0:
                failure = "not connected, and QoS 0 messages are not queued: event dropped"
            elif info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                failure = f"publish failed: {mqtt.error_string(info.rc)}"
            else:
                self._track(info.mid, event.event_id)
        if failure is not None:
            with self._lock:
                # Never acknowledged: whatever part was sent, the event counts as not delivered.
                self._unacked.pop(event.event_id, None)
            raise PublisherError(f"MQTT {self.settings.address}: {failure}")
        if self.home_assistant is not None:
            # After the event: a state changes once what changed it went out.  An event sent
            # again (an outbox retrying) changes nothing twice.
            try:
                messages = self.home_assistant.on_event(event)
            except Exception:  # a bug here must not hold the event back: it was delivered
                log.exception("Home Assistant: the states of event %s were not updated", event.seq)
                return
            self._send_own(client, messages)

    def tick(self) -> None:
        """Time-driven states (a presence that ran out) and gallery edits; the publisher loop
        calls this on every step, which may be hundreds of times a second in a burst of events:
        the states are looked at every `TICK_S`."""
        client = self._client
        if client is None or self.home_assistant is None:
            return
        now = time.monotonic()
        if now < self._next_tick:
            return
        self._next_tick = now + TICK_S
        try:
            messages = self.home_assistant.tick()
        except Exception:  # a bug here must not stop the events
            log.exception("Home Assistant: the periodic update failed")
            return
        self._send_own(client, messages)

    def stop(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        self._stopping = True
        if self.home_assistant is not None:
            self.home_assistant.stop()
        if self.connected:
            # Give events in flight a moment to be acknowledged, then say goodbye.
            deadline = time.monotonic() + self.stop_timeout_s
            while self._pending_events() and time.monotonic() < deadline and self.connected:
                time.sleep(0.01)
            info = client.publish(availability_topic(self.settings.prefix), UNAVAILABLE, qos=1,
                                  retain=True)
            try:
                info.wait_for_publish(self.stop_timeout_s)
            except (ValueError, RuntimeError):
                pass
            client.disconnect()
        lost = self._pending_events()
        if lost:
            log.warning("MQTT %s: %d event(s) not acknowledged by the broker at stop",
                        self.settings.address, lost)
        client.loop_stop()
        self._connected.clear()

    def _pending_events(self) -> int:
        with self._lock:
            return len(self._unacked)

    # -- paho callbacks, in its network thread ------------------------------------------------

    def _track(self, mid: int, event_id: str | None) -> None:
        """Remember which event message `mid` belongs to (None: one of our own messages)."""
        with self._lock:
            if mid in self._early_acks:  # acknowledged before publish() returned
                self._early_acks.discard(mid)
                done = self._count_ack(event_id)
            else:
                self._mid_event[mid] = event_id
                done = None
        self._call_hook(done)

    def _count_ack(self, event_id: str | None) -> str | None:
        """Under self._lock: the event id if this acknowledgement completes its event."""
        if event_id is None:
            return None
        remaining = self._unacked.get(event_id)
        if remaining is None:
            return None  # failed, or already complete
        if remaining > 1:
            self._unacked[event_id] = remaining - 1
            return None
        del self._unacked[event_id]
        return event_id

    def _call_hook(self, event_id: str | None) -> None:
        if event_id is None or self.on_ack is None:
            return
        try:
            self.on_ack(event_id)
        except Exception:
            log.exception("the MQTT acknowledgement hook failed for event %s", event_id)

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode,
                    _properties: Any) -> None:
        with self._lock:
            if mid not in self._mid_event:
                self._early_acks.add(mid)
                return
            event_id = self._mid_event.pop(mid)
            if reason.is_failure:  # MQTT 5 only; a 3.1.1 PUBACK carries no reason
                self._unacked.pop(event_id or "", None)
                return
            done = self._count_ack(event_id)
        self._call_hook(done)

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode,
                    _properties: Any) -> None:
        address = self.settings.address
        if reason.is_failure:
            hint = ""
            if reason.getName() in ("Not authorized", "Bad user name or password"):
                hint = "; check outputs.mqtt.username and the password"
            self._connect_failed(f"MQTT broker {address} refused the connection ({reason}{hint})")
            self._refused = True  # the disconnect that follows is this same attempt
            return
        if self._failed_attempts:
            log.info("connected to MQTT broker %s after %d failed attempt(s)", address,
                     self._failed_attempts)
        else:
            log.info("connected to MQTT broker %s", address)
        self._failed_attempts = 0
        self._warned.clear()
        prefix = self.settings.prefix
        self._publish_own(client, availability_topic(prefix), AVAILABLE.encode(), retain=True)
        with self._lock:
            statuses = list(self._last_status.items())
        for camera, payload in statuses:
            # The broker may have restarted without persistence and lost the retained state.
            self._publish_own(client, status_topic(prefix, camera), payload, retain=True)
        if self.home_assistant is not None:
            client.subscribe(f"{self.settings.discovery_prefix}/status", qos=1)
            self._send_own(client, self.home_assistant.announce())
        self._connected.set()

    def _on_connect_fail(self, client: mqtt.Client, _userdata: Any) -> None:
        self._connect_failed(describe_connect_error(self.settings.address,
                                                    getattr(client, "last_error", None)))

    def _connect_failed(self, why: str) -> None:
        """One warning for each reason while attempts fail (unreachable, then a certificate
        refused): a broker away for an hour is one line, and so is a refusal that reaches us
        in one of two ways at random (TLS 1.3 ends the handshake or the connection)."""
        self._failed_attempts += 1
        if why in self._warned:
            log.debug("%s (attempt %d)", why, self._failed_attempts)
            return
        self._warned.add(why)
        # The daemon keeps undelivered events in its on-disk outbox (publishers.delivery);
        # this transport itself holds at most `max_queued` messages.
        log.warning("%s; undelivered events are kept and paho retries in the background "
                    "every %d-%d s", why, self.reconnect_min_s, self.reconnect_max_s)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode,
                       _properties: Any) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if self._stopping:
            return
        if was_connected:
            log.warning("lost the connection to MQTT broker %s (%s); reconnecting",
                        self.settings.address, reason)
            self._failed_attempts = 0
            self._warned.clear()
            return
        if self._refused:  # refused with a CONNACK, already reported
            self._refused = False
            return
        # Closed before CONNACK: with TLS 1.3 a broker checks the client certificate after
        # the handshake has completed on our side, so a refused certificate ends up here.
        why, self._socket_error = self._socket_error or str(reason), None
        hint = "; check outputs.mqtt.tls.cert and key" if "certificate" in why or "unknown ca" in why else ""
        self._connect_failed(f"MQTT broker {self.settings.address} closed the connection before "
                             f"accepting it ({why}{hint})")

    def _on_log(self, _client: mqtt.Client, _userdata: Any, level: int, text: str) -> None:
        # Only paho's errors are kept, for _on_disconnect; its other log lines are not wanted.
        if level == mqtt.MQTT_LOG_ERR:
            found = _SSL_ERROR.search(text)
            self._socket_error = found.group(1) if found else text.rpartition(": ")[2]

    def _on_message(self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if (self.home_assistant is not None
                and message.topic == f"{self.settings.discovery_prefix}/status"
                and message.payload == b"online"):
            # Home Assistant restarted and forgot its entities
            self._send_own(client, self.home_assistant.announce())

    def _send_own(self, client: mqtt.Client, messages: Iterable[Message]) -> None:
        for m in messages:
            self._publish_own(client, m.topic, m.payload, retain=m.retain)

    def _publish_own(self, client: mqtt.Client, topic: str, payload: bytes, retain: bool) -> None:
        info = client.publish(topic, payload, qos=1, retain=retain)
        if info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            self._track(info.mid, None)
