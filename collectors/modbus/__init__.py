"""Modbus TCP: request planning, register decoding and the polling collector."""

from edge_agent.collectors.modbus.decode import FieldDecoder, decode_fields
from edge_agent.collectors.modbus.plan import Request, plan_requests

__all__ = ["FieldDecoder", "Request", "decode_fields", "plan_requests"]
