"""OPC UA: batched reads of many nodes and subscriptions with source timestamps (asyncua).

``collectors.opcua.client`` imports asyncua, which is heavy: import it only where it is used.
"""
