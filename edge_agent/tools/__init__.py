"""Offline tools that run the agent's own analytics on recorded signals (OEE and anomaly replays)."""
