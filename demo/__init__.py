"""The demo workshop: simulated machines behind real OPC UA and Modbus TCP servers on loopback."""
