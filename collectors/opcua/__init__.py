"""OPC UA: batched reads of many nodes and subscriptions with source timestamps."""

from collectors.opcua.client import OpcUaCollector

__all__ = ["OpcUaCollector"]
