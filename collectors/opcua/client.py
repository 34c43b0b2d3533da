"""The OPC UA collector (asyncua).

Every node of the profile is read in one batched Read per cycle, stamped with the time of the
reply. Nodes marked ``subscribe`` are also monitored: each change arrives with its
``SourceTimestamp``, so state transitions are timed by the device, not by our poll rate, and is
handed to the agent within the publishing interval (:mod:`.changes`). A subscribed node with
``poll: false`` is not read: each poll reports its latest value, while a read of the server's
state shows the session (and so the subscription) alive.
A lost session (PLC restart, network cut) surfaces as :class:`ConnectionError`; the agent then
reconnects and this collector builds a new session and subscription from scratch, which is
what recovers servers that forgot our subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np
from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.uaerrors import UaError

from edge_agent.collectors.batch import QUALITY_BAD_DECODE, QUALITY_BAD_DEVICE, Batch
from edge_agent.collectors.endpoints import split_user_info
from edge_agent.collectors.opcua.changes import Changes, to_number
from edge_agent.collectors.opcua.profile import OpcUaProfile, fill_placeholders
from edge_agent.collectors.opcua.security import (
    MODE_CODE,
    Security,
    UntrustedServer,
    application_uri,
    check_server_certificate,
    choose_endpoint,
    own_certificate,
    password_in_clear,
)


class _OneLine(logging.Filter):
    """asyncua's errors (a crashed publish loop when a server stops) as one line, no traceback:
    the agent logs the failure itself, once per change."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {_one_line(error) if error else ''}"
            record.args, record.exc_info, record.exc_text = None, None, None
        return True


def _quiet_asyncua() -> None:
    for name in [n for n in logging.Logger.manager.loggerDict if n.split(".")[0] == "asyncua"] + ["asyncua"]:
        logger = logging.getLogger(name)
        logger.setLevel(logging.ERROR)
        if not any(isinstance(f, _OneLine) for f in logger.filters):
            logger.addFilter(_OneLine())


def _policy_classes() -> dict[str, Any]:
    from asyncua.crypto import security_policies as sp  # noqa: PLC0415

    return {
        "Basic256Sha256": sp.SecurityPolicyBasic256Sha256,
        "Aes128_Sha256_RsaOaep": sp.SecurityPolicyAes128Sha256RsaOaep,
        "Aes256_Sha256_RsaPss": sp.SecurityPolicyAes256Sha256RsaPss,
        "Basic128Rsa15": sp.SecurityPolicyBasic128Rsa15,
        "Basic256": sp.SecurityPolicyBasic256,
    }


POLICY_CLASS = _policy_classes()


@dataclass(frozen=True)
class Access:
    """Who we are to the server and how the session is secured (see :mod:`.security`)."""

    security: Security = field(default_factory=Security)
    username: str | None = None
    password: str = field(default="", repr=False)
    certificate: str | None = None
    private_key: str | None = None
    server_certificate: str | None = None
    #: Where certificates are kept (``own/``, ``trusted/``).
    pki: Path = Path("pki")


#: Server_ServerCapabilities_OperationLimits_MaxNodesPerRead and _MaxMonitoredItemsPerCall (OPC UA Part 5).
MAX_NODES_PER_READ, MAX_MONITORED_ITEMS_PER_CALL = 11705, 11714
#: Server_ServerStatus_State: read when no node is polled, to see the session alive.
SERVER_STATE = 2259
#: A server clock further off than this (s) is reported once.
CLOCK_SKEW_WARN_S = 5.0

log = logging.getLogger(__name__)

T = TypeVar("T")


def _chunks(items: list[T], size: int) -> list[list[T]]:
    """``items`` in runs of at most ``size`` (all at once when ``size`` is 0: no limit)."""
    if size <= 0 or len(items) <= size:
        return [items]
    return [items[k : k + size] for k in range(0, len(items), size)]


async def _limit(client: Any, identifier: int) -> int:
    """One of the server's OperationLimits; 0 when it has none or does not say."""
    try:
        value = await client.get_node(f"i={identifier}").read_value()
    except (UaError, TimeoutError, OSError):
        return 0
    return int(value) if isinstance(value, int) and value > 0 else 0


def _one_line(exc: BaseException) -> str:
    """An asyncua error as one line (its class when it has no text)."""
    text = " ".join(str(exc).split())
    return text or exc.__class__.__name__


_quiet_asyncua()


async def secured_client(endpoint: str, access: Access, timeout_s: float) -> Any:
    """A client (not yet connected) set up for ``access``, after checking the server's endpoints:
    exactly the configured security or :class:`UntrustedServer`."""
    where = urlsplit(endpoint).netloc
    probe = Client(endpoint, timeout=timeout_s)
    try:
        endpoints = await probe.connect_and_get_server_endpoints()
    except (TimeoutError, OSError, UaError) as exc:
        raise ConnectionError(f"no OPC UA answer at {endpoint}: {_one_line(exc)}") from None
    chosen = choose_endpoint(endpoints, endpoint, access.security)
    client = Client(endpoint, timeout=timeout_s)
    client.application_uri = application_uri()
    if access.username:
        client.set_user(access.username)
        client.set_password(access.password)
        if access.password and access.security.mode == "None":
            _password_over_none(client, chosen, access, where)
    if access.security.mode != "None":
        check_server_certificate(access.pki, where, bytes(chosen.ServerCertificate), access.server_certificate)
        cert, key = await own_certificate(access.pki, access.certificate, access.private_key)
        await client.set_security(
            POLICY_CLASS[access.security.policy],
            str(cert),
            str(key),
            server_certificate=bytes(chosen.ServerCertificate),
            mode=ua.MessageSecurityMode(MODE_CODE[access.security.mode]),
        )
    return client


def _password_over_none(client: Any, chosen: Any, access: Access, where: str) -> None:
    """A password on an unsecured channel: encrypted by the token policy with the server's pinned
    certificate, or refused (unless ``allow_plaintext_password``)."""
    clear = password_in_clear(chosen)
    if clear is None:
        raise UntrustedServer(f"{where} takes no user name on {{mode: None}}: remove username, or secure the session")
    if clear:
        if not access.security.allow_plaintext_password:
            raise UntrustedServer(
                f"{where} would receive the password in clear text ({{mode: None}} and a user-name token "
                "policy without encryption): set security to {mode: SignAndEncrypt}, or security.allow_plaintext_"
                "password: true on a network you trust"
            )
        return
    server_der = bytes(chosen.ServerCertificate or b"")
    if not server_der:
        raise UntrustedServer(f"{where} asks for an encrypted password but sends no certificate to encrypt it with")
    check_server_certificate(access.pki, where, server_der, access.server_certificate)
    from asyncua.crypto.security_policies import SecurityPolicyNone  # noqa: PLC0415

    # asyncua encrypts the user token with its channel policy's peer certificate: on a None channel
    # it has none unless given.
    client.security_policy = SecurityPolicyNone(peer_cert=server_der)  # type: ignore[no-untyped-call]


class OpcUaCollector:
    """Reads one OPC UA device; signal indexes follow the profile's node order."""

    def __init__(
        self,
        profile: OpcUaProfile,
        endpoint: str,
        params: dict[str, str],
        now_ns: Callable[[], int],
        timeout_s: float = 4.0,
        publish_interval_ms: float = 100,
        access: Access | None = None,
        deliver: Callable[[Batch], None] | None = None,
        count_drop: Callable[[str, int], None] | None = None,
    ) -> None:
        self.profile, self.params, self.now_ns = profile, params, now_ns
        self.timeout_s, self.publish_interval_ms = timeout_s, publish_interval_ms
        self.access = access or Access()
        #: Where subscription changes go as they arrive (None: with the next poll).
        self.deliver, self.count_drop = deliver, count_drop
        self.polled = np.array([i for i, n in enumerate(profile.nodes) if n.poll], np.int32)
        self.listened = np.array([i for i, n in enumerate(profile.nodes) if not n.poll], np.int32)
        # A user name and password in the URL are taken out of it (and out of every message).
        endpoint, username, password = split_user_info(endpoint)
        if username is not None and self.access.username is None:
            self.access = replace(self.access, username=username, password=password or "")
        self.endpoint = endpoint
        self.node_ids = [fill_placeholders(n.node, params) for n in profile.nodes]
        self._client: Any = None
        self._nodes: list[Any] = []
        self._changes: Changes | None = None
        #: Changes dropped by the subscriptions of earlier sessions.
        self._dropped_before = 0
        self._overflows_before = 0
        self.last_error: str | None = None
        #: The server's OperationLimits (0: none), read at each connect.
        self.max_per_read = 0
        self.max_per_call = 0
        self._skew_said = False

    @property
    def name(self) -> str:
        return self.endpoint

    async def _secured_client(self) -> Any:
        return await secured_client(self.endpoint, self.access, self.timeout_s)

    async def _resolve(self, client: Any, text: str) -> Any:
        # asyncua sends 'nsu=' ids in a form some servers (node-opcua) cannot decode:
        # resolve the namespace index from its URI first, then build a plain 'ns=' id.
        if text.startswith("nsu="):
            uri, rest = text[4:].split(";", 1)
            try:
                index = await client.get_namespace_index(uri)
            except ValueError:
                known = await client.get_namespace_array()
                raise LookupError(
                    f"{self.endpoint}: the server has no namespace {uri!r}; it has {', '.join(map(repr, known))}: "
                    "fix the nsu= of the profile's node ids"
                ) from None
            text = f"ns={index};{rest}"
        return client.get_node(ua.NodeId.from_string(text))

    async def connect(self) -> None:
        await self.close()
        client = await self._secured_client()
        try:
            await client.connect()
        except (TimeoutError, OSError, UaError) as exc:
            raise ConnectionError(f"no OPC UA session at {self.endpoint}: {_one_line(exc)}") from None
        try:
            self._nodes = [await self._resolve(client, text) for text in self.node_ids]
            self.max_per_read = await _limit(client, MAX_NODES_PER_READ)
            self.max_per_call = await _limit(client, MAX_MONITORED_ITEMS_PER_CALL)
            watched = [i for i, n in enumerate(self.profile.nodes) if n.subscribe]
            if watched:
                index_of = {self._nodes[i].nodeid.to_string(): i for i in watched}
                self._changes = Changes(
                    index_of,
                    len(self._nodes),
                    self.now_ns,
                    self.deliver,
                    self.count_drop,
                    max(65_536, 64 * len(watched)),
                )
                sub = await client.create_subscription(self.publish_interval_ms, self._changes)
                await self._monitor(sub, watched)
        except BaseException:
            await client.disconnect()
            raise
        self._client = client

    async def _monitor(self, sub: Any, watched: list[int]) -> None:
        """Monitored items grouped by their options, in calls of at most MaxMonitoredItemsPerCall."""
        groups: dict[tuple[float, int, str, float], list[int]] = {}
        for i in watched:
            n = self.profile.nodes[i]
            # By default the server samples twice per publishing interval and queues every sample
            # of a second, or of two publishing intervals if longer: a value that changes once per
            # interval loses no change even when a busy server publishes up to that much late.
            sampling_ms = (
                n.sampling_interval * 1000 if n.sampling_interval is not None else self.publish_interval_ms / 2
            )
            room_ms = max(2.0 * self.publish_interval_ms, 1000.0)
            queue = n.queue_size or math.ceil(room_ms / max(sampling_ms, 1.0)) + 1
            band = (n.deadband.type, n.deadband.value) if n.deadband is not None else ("", 0.0)
            groups.setdefault((sampling_ms, queue, *band), []).append(i)
        for (sampling_ms, queue, band_type, band_value), members in groups.items():
            mfilter = None
            if band_type:
                mfilter = ua.DataChangeFilter()
                mfilter.Trigger = ua.DataChangeTrigger.StatusValue
                mfilter.DeadbandType = 1 if band_type == "absolute" else 2
                mfilter.DeadbandValue = band_value
            for chunk in _chunks(members, self.max_per_call):
                # asyncua's public subscribe_data_change has no filter argument: its _subscribe does.
                results = await sub._subscribe(
                    [self._nodes[i] for i in chunk], mfilter=mfilter, queuesize=queue, sampling_interval=sampling_ms
                )
                for i, result in zip(chunk, results, strict=True):
                    if isinstance(result, ua.StatusCode):
                        raise LookupError(
                            f"{self.endpoint}: cannot monitor {self.profile.nodes[i].name} "
                            f"({self.node_ids[i]}): {result.name}"
                        )

    async def collect(self) -> Batch:
        if self._client is None:
            raise ConnectionError(f"not connected to {self.endpoint}")
        nodes = [self._nodes[i] for i in self.polled.tolist()]
        try:
            replies = []
            if nodes:
                for chunk in _chunks(nodes, self.max_per_read):
                    replies += await self._client.read_attributes(chunk)
            else:  # subscribed only: the session (and its subscription) must still be alive
                await self._client.get_node(f"i={SERVER_STATE}").read_value()
        except (TimeoutError, OSError, UaError, ConnectionError) as exc:
            raise ConnectionError(f"{self.endpoint}: read failed: {_one_line(exc)}") from None
        values, quality = self._decode(replies)
        now = self.now_ns()
        polled = Batch.of(now, self.polled, values, quality)
        changes = self._changes
        latest = Batch.empty()
        if changes is not None and self.listened.shape[0]:
            # Subscribed only: the latest value holds until a change says otherwise.
            seen = self.listened[changes.last_quality[self.listened] != 255]
            latest = Batch.of(now, seen, changes.last_value[seen], changes.last_quality[seen])
        held = changes.drain() if changes is not None else Batch.empty()
        self._check_skew()
        return Batch.concat([held, polled, latest])

    def _decode(self, replies: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Values and qualities of the polled nodes' replies; ``last_error`` says what was bad."""
        n = len(replies)
        values = np.full(n, np.nan)
        quality = np.zeros(n, np.uint8)
        bad: list[str] = []
        for k, dv in enumerate(replies):
            node = self.profile.nodes[int(self.polled[k])]
            if dv.StatusCode is not None and not dv.StatusCode.is_good():
                quality[k] = QUALITY_BAD_DEVICE
                bad.append(f"{node.name}: {dv.StatusCode.name}")
                continue
            raw = dv.Value.Value if dv.Value is not None else None
            values[k] = to_number(raw)
            if not math.isfinite(values[k]):
                quality[k] = QUALITY_BAD_DECODE
                if isinstance(raw, list | tuple | ua.ExtensionObject) or hasattr(raw, "ua_types"):
                    what = f"an array of {len(raw)}" if isinstance(raw, list | tuple) else "a structure"
                    bad.append(f"{node.name} holds {what}: only scalars are collected (declare one node per element)")
        self.last_error = "; ".join(bad) or None
        return values, quality

    def _check_skew(self) -> None:
        skew = self._changes.skew_s if self._changes is not None else None
        if skew is not None and abs(skew) > CLOCK_SKEW_WARN_S and not self._skew_said:
            self._skew_said = True
            log.warning(
                "%s: the server's clock is %.1f s %s the agent's: its source timestamps are used as they are; "
                "synchronise the server's clock (NTP)",
                self.endpoint,
                abs(skew),
                "behind" if skew > 0 else "ahead of",
            )

    def describe(self, index: int) -> str:
        """Where node ``index`` comes from (``--test``): its node id, and how it is read."""
        node = self.profile.nodes[index]
        how = ("subscribed" if not node.poll else "read, subscribed") if node.subscribe else "read"
        return f"{self.node_ids[index]} ({how})"

    def health(self) -> dict[str, Any]:
        skew = self._changes.skew_s if self._changes is not None else None
        return {
            "nodes": len(self.node_ids),
            "subscribed": sum(n.subscribe for n in self.profile.nodes),
            "subscribed_only": int(self.listened.shape[0]),
            "changes_dropped": self._dropped_before + (self._changes.dropped if self._changes is not None else 0),
            "device_queue_overflows": self._overflows_before
            + (self._changes.server_overflows if self._changes is not None else 0),
            "max_nodes_per_read": self.max_per_read,
            "max_monitored_items_per_call": self.max_per_call,
            "clock_skew_s": None if skew is None else round(skew, 3),
        }

    async def close(self) -> None:
        """End the session; changes still held are handed to the agent first (a stop keeps them)."""
        client, self._client = self._client, None
        changes, self._changes = self._changes, None
        if changes is not None:
            self._dropped_before += changes.dropped
            self._overflows_before += changes.server_overflows
            if changes.deliver is not None:
                changes.hand_over()
        if client is not None:
            # When the server is already gone there is nothing to tell it.
            with contextlib.suppress(TimeoutError, OSError, UaError, ConnectionError):
                await asyncio.wait_for(client.disconnect(), self.timeout_s)
