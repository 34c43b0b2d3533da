"""The collector extension point: the interface a protocol adapter implements, and the registry.

A protocol adapter is one folder under ``collectors/`` (``collectors/modbus/``, ``collectors/opcua/``)
whose ``plugin`` module calls :func:`register` once with a :class:`CollectorPlugin`: the protocol's
name (the ``protocol:`` of its profiles), its profile model, the URL schemes of its endpoints, the
model of its per-device options in ``agent.yaml`` and a factory. Config loading, the agent and the
docs read the registry (:data:`PROTOCOLS`, an :class:`~edge_agent.registry.Registry`); nothing else
names a concrete collector. Every protocol module, built in or in a package of its own, is named
by an entry point of the group ``edge_agent.collectors`` (``pyproject.toml``).

When the agent calls each method of a :class:`Collector`:

* ``connect()`` before the first ``collect()`` and again after any failure (with backoff, owned by
  the agent: a collector never sleeps or retries on its own);
* ``collect()`` once per poll interval; it returns one :class:`~collectors.batch.Batch` whose signal
  indexes follow the profile's :meth:`~collectors.profile.ProfileBase.signals` order. A device that
  answers with an error for some values returns them with a bad quality; a device that cannot be
  reached raises (``ConnectionError`` or ``TimeoutError``): its time is then unknown;
* ``close()`` after a failure and at shutdown; it must not raise.

Optionally, ``describe(index)`` says where signal ``index`` comes from (a register and the raw
words of the latest poll, a node id), for ``edge-agent run --test``.

A collector whose connection is shared with other devices (a gateway) may expose an integer
``link_generation`` that grows each time the connection is made: devices backing off after a
failure then poll again as soon as any of them has reconnected.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from edge_agent.collectors.batch import Batch
from edge_agent.collectors.profile import ProfileBase, Strict
from edge_agent.registry import Registry

T = TypeVar("T")


class DeviceUnreachable(ConnectionError):
    """The device (or its gateway) cannot be reached or does not answer; its time is unknown.

    ``link_ok``: the connection itself works (a gateway answered for a unit that is down), so
    the agent keeps it and retries with backoff without reconnecting.
    """

    def __init__(self, message: str, link_ok: bool = False) -> None:
        super().__init__(message)
        self.link_ok = link_ok


class Collector(Protocol):
    """One device instance, polled by the agent (see the module docstring for when).

    The poller bounds each poll by ``2 * timeout + 1`` s. A collector whose every wait is already
    bounded may say so with an attribute ``bounds_its_waits = True`` (optional): its polls then
    run without that extra timer (connecting is always bounded by the poller).
    """

    @property
    def name(self) -> str:
        """Where the device is, for logs and health: never holds a secret."""
        ...

    #: What the device answered with an error in the latest poll (values kept with a bad quality).
    last_error: str | None

    async def connect(self) -> None: ...

    async def collect(self) -> Batch: ...

    async def close(self) -> None: ...

    def health(self) -> dict[str, Any]:
        """Protocol details for ``/health`` (request plans, unit states, ...); no secrets."""
        ...


class KeyValueStore(Protocol):
    """Small values a collector keeps across restarts (in the agent's local store)."""

    def get_state(self, key: str) -> str | None: ...

    def put_state(self, key: str, value: str) -> None: ...


class _MemoryState:
    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def get_state(self, key: str) -> str | None:
        return self._values.get(key)

    def put_state(self, key: str, value: str) -> None:
        self._values[key] = value


class _MemoryTexts:
    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()

    def intern(self, text: str) -> int:
        with self._lock:
            return self._ids.setdefault(text, len(self._ids))


@dataclass
class CollectorContext:
    """What the agent lends a collector factory.

    ``now_ns`` is the agent's clock (UTC ns). ``shared`` lets devices of one protocol share a
    resource (a gateway connection) through :meth:`shared_resource`. ``state`` keeps small values
    across restarts; ``data_dir`` is where a collector may keep files (certificates).
    ``intern_text`` gives the id (kept across restarts) of a text reading: a signal of kind
    ``text`` carries that id as its value. It may be called from any thread.

    ``deliver`` (on the event loop) takes readings that arrive between polls, a subscription's
    changes, as a batch indexed like ``collect()``'s: the agent stores them at once, whatever the
    poll interval. None: there is no one to take them; keep them for the next ``collect()``.
    ``count_drop(reason, points)`` counts readings a collector had to drop (a full queue).
    """

    now_ns: Callable[[], int]
    state: KeyValueStore = field(default_factory=_MemoryState)
    data_dir: str = "."
    intern_text: Callable[[str], int] = field(default_factory=lambda: _MemoryTexts().intern)
    deliver: Callable[[Batch], None] | None = None
    count_drop: Callable[[str, int], None] | None = None
    _shared: dict[Hashable, Any] = field(default_factory=dict)

    def shared_resource(self, key: Hashable, make: Callable[[], T]) -> T:
        """The resource under ``key``, made by ``make`` the first time it is asked for."""
        if key not in self._shared:
            self._shared[key] = make()
        value: T = self._shared[key]
        return value


class DeviceOptions(Strict):
    """Base of a protocol's per-device options in ``agent.yaml`` (unit id, node parameters, ...).

    In ``agent.yaml`` these fields sit beside the common ones (name, endpoint, line, poll_interval,
    timeout, oee, ...) in one device entry; the agent hands them to the factory as this model.
    """


@dataclass(frozen=True)
class DeviceSpec:
    """One device instance as a factory receives it: where, how often, and its protocol options.

    ``poll_interval`` and ``timeout`` are in seconds; ``options`` is the plugin's
    ``device_options`` model, validated.
    """

    name: str
    endpoint: str
    poll_interval: float
    timeout: float
    options: Any


#: (profile, device, context) -> collector.
CollectorFactory = Callable[[Any, DeviceSpec, CollectorContext], Collector]
#: (profile, device) -> problems as (field path inside the device entry, message).
DeviceCheck = Callable[[Any, DeviceSpec], list[tuple[tuple[str | int, ...], str]]]


@dataclass(frozen=True)
class CollectorPlugin:
    """Everything the agent needs to know about one protocol."""

    protocol: str
    profile_model: type[ProfileBase]
    schemes: tuple[str, ...]
    device_options: type[DeviceOptions]
    factory: CollectorFactory
    #: Checks of a device entry against its profile (placeholders filled, units addressed, ...).
    check_device: DeviceCheck | None = None
    #: One line for docs and ``--help``: what the endpoint looks like.
    endpoint_example: str = ""
    #: endpoint -> what is wrong with it (None: fine). Default: it needs a host and a port.
    check_endpoint: Callable[[str], str | None] | None = None


def _no_clash(plugin: CollectorPlugin, registered: Mapping[str, CollectorPlugin]) -> None:
    for other in registered.values():
        clash = set(other.schemes) & set(plugin.schemes)
        if clash:
            raise ValueError(f"URL schemes {sorted(clash)} are already registered by {other.protocol!r}")


#: Every protocol, by name: the one list.
PROTOCOLS: Registry[CollectorPlugin] = Registry(
    "protocol", "edge_agent.collectors", lambda p: p.protocol, check=_no_clash
)


#: Add a protocol (a second registration of the same protocol replaces the first); remove one.
register, unregister = PROTOCOLS.register, PROTOCOLS.unregister


def plugins() -> dict[str, CollectorPlugin]:
    """Every registered protocol, by name."""
    return dict(PROTOCOLS)


def for_scheme(scheme: str) -> CollectorPlugin | None:
    """The plugin whose endpoints use URL ``scheme`` (``modbus``, ``opc.tcp``, ...)."""
    return next((p for p in PROTOCOLS.values() if scheme in p.schemes), None)
