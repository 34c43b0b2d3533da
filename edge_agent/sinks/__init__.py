"""Sinks: where stored points go. The contract and the registry are in :mod:`edge_agent.sinks.base`."""

from edge_agent.sinks.base import (
    RejectedPoints,
    Sink,
    SinkConfig,
    SinkContext,
    SinkPlugin,
    SinkUnavailable,
    make_sink,
    plugins,
    register,
)

__all__ = [
    "RejectedPoints",
    "Sink",
    "SinkConfig",
    "SinkContext",
    "SinkPlugin",
    "SinkUnavailable",
    "make_sink",
    "plugins",
    "register",
]
