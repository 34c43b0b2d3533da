"""The running process: agent (lifecycle), polling, pipeline and its stages, health endpoint, clocks."""
