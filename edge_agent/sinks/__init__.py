"""Sinks: where buffered points go. ``write`` returning means acknowledged."""

from edge_agent.sinks.base import RejectedPoints, Sink, SinkUnavailable
from edge_agent.sinks.line_protocol import SeriesTable, series_key

__all__ = ["RejectedPoints", "SeriesTable", "Sink", "SinkUnavailable", "series_key"]
