"""The edge agent process: configuration, scheduling, pipeline, durable buffer, sinks, CLI."""

__version__ = "0.1.0"
