"""The durable local store (SQLite, WAL) and the series catalog."""
