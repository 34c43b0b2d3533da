"""The sink extension point: the contract, each sink's configuration, and the registry.

A sink is one module (a folder of this one, like ``influx/``, or a package of its own) that calls
:func:`register` with a :class:`SinkPlugin`: its ``type:`` name in ``agent.yaml``, its
configuration model (a :class:`SinkConfig` subclass with ``type: Literal[...]``) and a factory.
The module is named by an entry point of the group ``edge_agent.sinks``. Config loading, the
agent and the docs read the registry (:data:`SINKS`); nothing else names a concrete sink.

The contract (Benthos' output contract): the forwarder calls ``write(batch, catalog)`` with up to
``batch_size`` points of the local store, from up to ``concurrency`` threads at once. The batch is
columnar (:class:`~collectors.batch.Batch`); the catalog says what each series id means
(measurement, tags, field); encoding is the sink's business. **Returning means the destination
acknowledged every point**, and only then may the store let them go. Raise :class:`SinkUnavailable`
for anything worth retrying (network, 5xx, credentials an operator may fix) and
:class:`RejectedPoints` when the destination refused the data itself (HTTP 400): the forwarder
then splits the batch until the bad points stand alone, counts them and never retries them. A
sink keeps the points its destination refused in its own format (``keep_refused``, optional:
the InfluxDB sinks append line protocol to their ``rejected_file``); without it, or when it
fails, they go to the local store's dead-letter table.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol
from urllib.parse import urlsplit

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from edge_agent.collectors.batch import Batch
from edge_agent.collectors.durations import Duration
from edge_agent.collectors.profile import Strict
from edge_agent.registry import Registry
from edge_agent.secrets import is_secret_key
from edge_agent.store.catalog import SeriesCatalog


class SinkUnavailable(Exception):
    """The write did not go through; retry later with backoff."""


class RejectedPoints(Exception):
    """The destination refused these points as bad data (HTTP 400); retrying would not help.

    ``dropped`` is how many points the destination says it dropped, when it says (InfluxDB 1.x
    reports ``dropped=N`` on a partial write); the other points were written. ``refused``, when
    given, is which points of the batch (indices) were refused: all the others were written.
    """

    def __init__(self, message: str, dropped: int | None = None, refused: NDArray[np.intp] | None = None) -> None:
        super().__init__(message)
        self.dropped = dropped if refused is None else int(refused.shape[0])
        self.refused = refused


class Sink(Protocol):
    """Where points go; ``write`` may be called from up to ``concurrency`` threads at once."""

    name: str
    batch_size: int
    concurrency: int

    def write(self, batch: Batch, catalog: SeriesCatalog) -> None:
        """Write every point of ``batch``; returning means acknowledged."""
        ...

    def close(self) -> None: ...


class KeepsRefused(Protocol):
    """A sink that keeps the points its destination refused itself (optional, besides :class:`Sink`)."""

    def keep_refused(self, batch: Batch, catalog: SeriesCatalog, reason: str) -> str:
        """Keep ``batch`` (refused with ``reason``) where an operator can find it; return where.
        Raise OSError or ValueError when it cannot: the points then go to the dead-letter table."""
        ...


def abort(sink: Sink) -> None:
    """Break off a sink's writes in flight (a stop that cannot wait for the database's timeout);
    the points they carried stay in the local store. Sinks without ``abort`` are left alone."""
    method = getattr(sink, "abort", None)
    if callable(method):
        method()


#: Options of every sink that say how points are fed to it, not where they go.
FEEDING = frozenset({"type", "batch_size", "concurrency", "timeout", "retry_max", "rejected_file", "gzip"})


class SinkConfig(Strict):
    """Options every sink has: how the forwarder feeds it. Subclasses add ``type`` and their own."""

    batch_size: Annotated[int, Field(ge=1, le=100_000, description="points per write")] = 5000
    concurrency: Annotated[int, Field(ge=1, le=8, description="writes in flight at once")] = 2
    timeout: Annotated[Duration, Field(gt=0, description="longest wait for one write (s)")] = 10.0
    retry_max: Annotated[Duration, Field(gt=0, description="longest wait between retries while unavailable")] = 5.0

    def identity(self) -> str:
        """Where this sink's points go, as one string: its cursor in the local store and its name in
        logs and ``/health``. Two sinks with one identity would share a cursor (``config check``
        refuses them). By default: the type and every option that is not about feeding the sink
        (``FEEDING``) or a secret; a sink type may say it more readably."""
        values = self.model_dump(mode="json", exclude=set(FEEDING))
        where = ",".join(f"{k}={v}" for k, v in sorted(values.items()) if v not in ("", None) and not is_secret_key(k))
        return f"{getattr(self, 'type', '?')}:{where}"


def normalized_url(url: str) -> str:
    """``url`` as an identity: scheme and host in lower case, no default port, no trailing slash,
    no user information.

    >>> normalized_url("HTTP://Influx.Plant:80/api/")
    'http://influx.plant/api'
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443, "mqtt": 1883, "mqtts": 8883}.get(scheme)
    netloc = host if port in (None, default) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


@dataclass(frozen=True)
class SinkContext:
    """What the agent lends a sink factory: where relative paths start (the folder of
    ``agent.yaml``), and where the agent keeps its files (the local store's folder)."""

    base_dir: Path
    data_dir: Path | None = None
    #: The agent's id (``agent.id``): a default name toward the destination (an MQTT client id).
    agent_id: str = ""

    def resolve(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.base_dir / p

    def data_file(self, given: str | None, default: str) -> Path:
        """``given`` (relative to ``agent.yaml``), or ``default`` in the agent's data folder."""
        if given:
            return self.resolve(given)
        return (self.data_dir or self.base_dir) / default


def compress_for(url: str, gzip: bool | str) -> bool:
    """Whether to gzip request bodies: ``auto`` does, except to a database on this machine.

    Over loopback compression costs CPU (level 1 gzip is about as costly as encoding the line
    protocol itself) and saves nothing.

    >>> compress_for("http://127.0.0.1:8086", "auto"), compress_for("http://influx.plant:8086", "auto")
    (False, True)
    """
    if isinstance(gzip, bool):
        return gzip
    host = (urlsplit(url).hostname or "").lower()
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    return not loopback


#: (config, context) -> sink.
SinkFactory = Callable[[Any, SinkContext], Sink]


@dataclass(frozen=True)
class SinkPlugin:
    """One sink type: its ``type:`` name in ``agent.yaml``, its configuration model and its factory."""

    name: str
    config_model: type[SinkConfig]
    factory: SinkFactory


#: Every sink type, by name: the one list.
SINKS: Registry[SinkPlugin] = Registry("sink type", "edge_agent.sinks", lambda p: p.name)


#: Add a sink type (a second registration of the same type replaces the first); remove one.
register, unregister = SINKS.register, SINKS.unregister


def plugins() -> dict[str, SinkPlugin]:
    """Every registered sink type."""
    return dict(SINKS)


def make_sink(config: SinkConfig, context: SinkContext) -> Sink:
    type_name: str = getattr(config, "type", "")
    return SINKS.require(type_name).factory(config, context)
