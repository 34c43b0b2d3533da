"""The MQTT sink (``type: mqtt``): every point to a broker, in a unified-namespace layout.

The client is paho-mqtt 2 (MQTT 3.1.1 and 5, TLS, automatic reconnects), its network loop in a
thread of its own. The forwarder's threads publish; a write returns only when the broker has
acknowledged every message of the batch (QoS 1: every PUBACK) and raises
:class:`SinkUnavailable` otherwise, so a broker outage is ridden out in the local store like a
database outage. Under MQTT 5 a PUBACK with a failure code (mosquitto's ACL: "not authorized")
is a refusal: :class:`RejectedPoints` naming the refused points, and the forwarder sets them
apart. Some brokers (mosquitto 2.0) close the connection right after such a PUBACK: the refused
topic is remembered for ``DENIED_FOR_S`` and its points are refused without being sent, so the
other topics keep flowing instead of the batch failing for ever; after that time the topic is
tried again (the operator may have fixed the ACL). MQTT 3.1.1 has no such code: a broker drops
what its ACL refuses without saying so. QoS 1 is at least once: a batch retried after a lost
acknowledgement is published again.

Topics and payloads: :mod:`.topics`.
"""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, model_validator

from edge_agent.collectors.batch import Batch
from edge_agent.collectors.durations import Duration
from edge_agent.sinks.base import (
    RejectedPoints,
    SinkConfig,
    SinkContext,
    SinkPlugin,
    SinkUnavailable,
    normalized_url,
    register,
)
from edge_agent.sinks.mqtt.topics import Messages, template_problems
from edge_agent.store.catalog import SeriesCatalog

#: Seconds a topic the broker refused is not sent again (its points are set apart meanwhile).
DENIED_FOR_S = 300.0


class MqttSink(SinkConfig):
    """``agent.yaml`` options of an MQTT broker destination."""

    type: Literal["mqtt"]
    """the sink's kind"""
    url: Annotated[str, Field(pattern=r"^mqtts?://[^/]+/?$")]
    """the broker: mqtt://HOST:PORT (1883 by default), or mqtts://HOST:PORT for TLS (8883)"""
    username: str = ""
    """user to log in as"""
    password: str = Field("", description="${VAR} from the environment, or password_file: PATH")
    ca_file: str | None = None
    """mqtts: the CA certificate (PEM) the broker's certificate is checked against (default: the system's)"""
    cert_file: str | None = None
    """mqtts: this client's certificate (PEM), for brokers that require one"""
    key_file: str | None = None
    """mqtts: its private key (PEM)"""
    client_id: str = ""
    """the client id (default: the agent's id); one per broker connection"""
    qos: Literal[0, 1] = 1
    """1: a point leaves the local store only once the broker acknowledged it; 0: once sent"""
    protocol: Literal["5", "3.1.1"] = "5"
    """MQTT version; 5 says when the broker refuses a topic"""
    clean_session: bool = True
    """start without the broker's state of a previous session"""
    keepalive: Annotated[Duration, Field(ge=5, le=3600)] = 60.0
    """seconds between pings while nothing else is sent"""
    topic_prefix: str = Field("", pattern=r"^([^#+\x00]*/)?$")
    """put before every topic, ending with / (e.g. enterprise/)"""
    format: Literal["uns"] = "uns"
    """topic and payload layout: uns (docs/mqtt.md)"""
    topics: dict[str, str] = Field(default_factory=dict)
    """per measurement, a topic template of tags replacing the uns topic, e.g. raw: plants/{site}/{machine}/{signal}"""
    retain: bool = False
    """ask the broker to keep each topic's latest message for new subscribers"""
    batch_size: Annotated[int, Field(ge=1, le=100_000, description="points per write")] = 1000

    @model_validator(mode="after")
    def _tls_files(self) -> MqttSink:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give cert_file and key_file together")
        if self.url.startswith("mqtt://") and (self.ca_file or self.cert_file):
            raise ValueError("ca_file, cert_file and key_file need an mqtts:// url")
        problems = [f"topics.{m}: {p}" for m, t in self.topics.items() for p in template_problems(m, t)]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def identity(self) -> str:
        user = f"?user={self.username}" if self.username else ""
        return f"mqtt:{normalized_url(self.url)}/{self.topic_prefix}{user}"


class MqttPublisher:
    """One broker connection shared by the forwarder's threads (paho's client is thread-safe)."""

    def __init__(self, cfg: MqttSink, context: SinkContext) -> None:
        from paho.mqtt import client as mqtt  # noqa: PLC0415 - only when an MQTT sink is configured
        from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

        self.cfg = cfg
        self.name = cfg.identity()
        self.batch_size, self.concurrency = cfg.batch_size, cfg.concurrency
        parts = urlsplit(cfg.url)
        tls = parts.scheme == "mqtts"
        self.host, self.port = parts.hostname or "", parts.port or (8883 if tls else 1883)
        version = mqtt.MQTTv5 if cfg.protocol == "5" else mqtt.MQTTv311
        self.v5 = version == mqtt.MQTTv5
        client_id = cfg.client_id or context.agent_id or "edge-agent"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=version,
            clean_session=None if self.v5 else cfg.clean_session,
        )
        if cfg.username:
            self.client.username_pw_set(cfg.username, cfg.password or None)
        if tls:
            self.client.tls_set(
                ca_certs=str(context.resolve(cfg.ca_file)) if cfg.ca_file else None,
                certfile=str(context.resolve(cfg.cert_file)) if cfg.cert_file else None,
                keyfile=str(context.resolve(cfg.key_file)) if cfg.key_file else None,
            )
        # In flight: paho's default (20), within what brokers grant (mosquitto's Receive Maximum is
        # 20: a client that sends more unacknowledged messages is disconnected). Queued: no limit
        # here; a write publishes only while connected, and at most a batch at a time.
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(1, max(1, int(cfg.retry_max)))
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._aborted = threading.Event()
        self._why = "not connected yet"
        self._refusal = ""
        self._refused: dict[int, str] = {}
        #: Topic -> (the broker's reason, monotonic time it said so); owned under ``_lock``.
        self._denied: dict[str, tuple[str, float]] = {}
        #: Message id -> topic of the messages waiting for their PUBACK; owned under ``_lock``.
        self._topic_of: dict[int, str] = {}
        #: Set after a connection closed during a write: publish one message at a time.
        self._careful = threading.Event()
        self._one_careful = threading.Lock()
        #: The topic whose message waited for its PUBACK when the broker last closed the connection.
        self._suspect: str | None = None
        self._messages: Messages | None = None
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self._started = False

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        properties = None
        if self.v5:
            from paho.mqtt.packettypes import PacketTypes  # noqa: PLC0415
            from paho.mqtt.properties import Properties  # noqa: PLC0415

            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 0 if self.cfg.clean_session else 0xFFFFFFFF
        self.client.connect_async(
            self.host,
            self.port,
            keepalive=int(self.cfg.keepalive),
            clean_start=self.cfg.clean_session if self.v5 else 3,  # 3: paho's MQTT_CLEAN_START_FIRST_ONLY
            properties=properties,
        )
        self.client.loop_start()

    # paho calls these from its network thread.
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._refusal = f"the broker refused the connection: {reason}: check username, password and client_id"
            self._connected.clear()
        else:
            self._refusal = ""
            self._forget_unacknowledged()
            self._connected.set()

    def _forget_unacknowledged(self) -> None:
        """Drop what paho would send again on this new connection: the writes that sent it have
        failed and the forwarder sends their points again, and a message the broker closed the
        last connection on would close this one too. (paho has no public call for this.)"""
        out, mutex = getattr(self.client, "_out_messages", None), getattr(self.client, "_out_message_mutex", None)
        if out is not None and mutex is not None:
            with mutex:
                out.clear()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        # A refused connection is followed by a disconnect: the refusal is what the operator needs.
        self._why = self._refusal or f"disconnected: {reason}"
        self._connected.clear()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        # paho sends a broken-off write's messages again after a reconnect: their refusals are
        # learnt here too, else a refused topic would close every new connection.
        with self._lock:
            topic = self._topic_of.pop(mid, None)
            if getattr(reason, "is_failure", False):
                self._refused[mid] = str(reason)
                if topic is not None:
                    self._denied[topic] = (str(reason), time.monotonic())
            else:
                self._refused.pop(mid, None)

    def write(self, batch: Batch, catalog: SeriesCatalog) -> None:
        self._start()
        with self._lock:
            if self._messages is None or self._messages.catalog is not catalog:
                self._messages = Messages(catalog, self.cfg.topic_prefix, self.cfg.topics)
            messages = self._messages
            now = time.monotonic()
            self._denied = {t: d for t, d in self._denied.items() if now - d[1] < DENIED_FOR_S}
            denied = dict(self._denied)
        held_back = messages.on_topics(batch, denied) if denied else None
        if held_back is None or not held_back.any():
            self._publish(batch, messages)
            return
        refused = np.flatnonzero(held_back)
        sent = np.flatnonzero(~held_back)
        try:
            self._publish(batch.take(sent), messages)
        except RejectedPoints as exc:
            # The sent part's refusal is by its own indices: named in the whole batch's, with
            # the points held back, so that none of either is counted as written.
            more = sent if exc.refused is None else sent[exc.refused]
            refused = np.union1d(refused, more)
            with self._lock:
                denied.update(self._denied)
        raise self._refusal_of(batch, messages, refused, denied)

    def _publish(self, batch: Batch, messages: Messages) -> None:
        """Publish ``batch`` and wait for every acknowledgement; RejectedPoints for refused topics."""
        pairs, _ = messages.of(batch)
        if not pairs:
            return
        if not self._connected.wait(min(self.cfg.timeout, 1.0)):
            raise SinkUnavailable(f"{self.name}: {self._why}")
        refused: dict[str, tuple[str, float]] = {}
        if self._careful.is_set():
            with self._one_careful:
                self._publish_one_by_one(pairs, refused)
        else:
            infos = self._send(pairs)
            try:
                self._await(infos)
            except SinkUnavailable:
                if not self._aborted.is_set():
                    self._careful.set()
                raise
            finally:
                # Refusals count even when the broker closed the connection right after them.
                refused.update(self._harvest(infos, pairs))
        if refused:
            raise self._refusal_of(batch, messages, np.flatnonzero(messages.on_topics(batch, refused)), refused)

    def _send(self, pairs: list[tuple[str, bytes]]) -> list[Any]:
        infos = [
            self.client.publish(topic, payload, qos=self.cfg.qos, retain=self.cfg.retain) for topic, payload in pairs
        ]
        with self._lock:
            self._topic_of.update((info.mid, topic) for info, (topic, _) in zip(infos, pairs, strict=True))
        return infos

    def _publish_one_by_one(self, pairs: list[tuple[str, bytes]], refused: dict[str, tuple[str, float]]) -> None:
        """After the broker closed a connection during a write: each message waits for its PUBACK
        before the next is sent, so a message the broker closes the connection on is known. One
        that does so twice in a row is refused (mosquitto 2.0 closes the connection after
        refusing a topic, and its PUBACK may be lost with the connection)."""
        with self._lock:
            suspect = self._suspect
        pairs = sorted(pairs, key=lambda pair: pair[0] != suspect)  # the suspect first
        for pair in pairs:
            (info,) = self._send([pair])
            try:
                self._await([info])
            except SinkUnavailable:
                if info.rc == 0 and not self._aborted.is_set():
                    self._blame(pair[0])
                raise
            finally:
                refused.update(self._harvest([info], [pair]))
        with self._lock:
            self._suspect = None
        self._careful.clear()

    def _blame(self, topic: str) -> None:
        """The broker closed the connection while ``topic``'s message waited for its PUBACK."""
        with self._lock:
            if self._suspect == topic:
                why = "the broker closes the connection on every message to it (mosquitto: its ACL refuses the topic)"
                self._denied[topic] = (why, time.monotonic())
                self._suspect = None
            else:
                self._suspect = topic

    def _await(self, infos: list[Any]) -> None:
        deadline = time.monotonic() + self.cfg.timeout
        for info in infos:
            while not self._published(info):
                if not self._connected.is_set():
                    raise SinkUnavailable(f"{self.name}: {self._why}")
                if self._aborted.is_set():
                    raise SinkUnavailable(f"{self.name}: broken off by the stop")
                if time.monotonic() > deadline:
                    raise SinkUnavailable(f"{self.name}: no acknowledgement within {self.cfg.timeout:g} s")
                try:
                    info.wait_for_publish(0.05)
                except RuntimeError as exc:  # paho: the connection dropped while the message waited
                    raise SinkUnavailable(f"{self.name}: {exc}") from None

    def _harvest(self, infos: list[Any], pairs: list[tuple[str, bytes]]) -> dict[str, tuple[str, float]]:
        """The topics the broker refused among ``infos`` (remembered in ``_denied``)."""
        now = time.monotonic()
        refused: dict[str, tuple[str, float]] = {}
        with self._lock:
            for info, (topic, _) in zip(infos, pairs, strict=True):
                reason = self._refused.pop(info.mid, None)
                if reason is not None:
                    refused[topic] = (reason, now)
            self._denied.update(refused)
        return refused

    def _refusal_of(
        self, batch: Batch, messages: Messages, index: NDArray[np.intp], denied: dict[str, tuple[str, float]]
    ) -> RejectedPoints:
        """The refusal of the points of ``batch`` at ``index``, naming their topics and why."""
        topics = sorted(messages.topics(batch.take(index)) & denied.keys())
        reason = denied[topics[0]][0] if topics else "refused"
        user = f" for user {self.cfg.username!r}" if self.cfg.username else ""
        shown = ", ".join(repr(t) for t in topics[:3]) + (f" and {len(topics) - 3} more" if len(topics) > 3 else "")
        return RejectedPoints(
            f"{self.name}: the broker refused {index.shape[0]} points on {len(topics)} topic(s) {shown}: {reason}; "
            f"check the broker's ACL{user} or the sink's topic_prefix/topics (tried again after {DENIED_FOR_S:g} s)",
            refused=index,
        )

    def _published(self, info: Any) -> bool:
        """Whether the broker acknowledged ``info``'s message; SinkUnavailable when paho gave it up."""
        if info.rc != 0:
            raise SinkUnavailable(f"{self.name}: the message was not sent (paho code {info.rc}): {self._why}")
        try:
            return bool(info.is_published())
        except (RuntimeError, ValueError) as exc:
            raise SinkUnavailable(f"{self.name}: {exc}") from None

    def abort(self) -> None:
        self._aborted.set()

    def close(self) -> None:
        if self._started:
            self.client.disconnect()
            self.client.loop_stop()


def _make(config: Any, context: SinkContext) -> MqttPublisher:
    assert isinstance(config, MqttSink)
    for name in ("ca_file", "cert_file", "key_file"):
        given = getattr(config, name)
        if given and not context.resolve(given).is_file():
            raise ValueError(f"{name}: no file {context.resolve(given)}")
    return MqttPublisher(config, context)


register(SinkPlugin("mqtt", MqttSink, _make))

__all__ = ["MqttPublisher", "MqttSink"]
