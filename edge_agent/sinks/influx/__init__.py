"""The InfluxDB sinks (one plugin folder, like ``collectors/modbus/``): ``influxdb_v1`` (``v1``:
1.x ``/write``) and ``influxdb_v2`` (``v2``: the v2 write API of 2.x, 3.x and 1.8+), what they share
(``write``: options, posting, the rejected-points file), line protocol encoded from columnar
batches (``line_protocol``, ``numbers``) and a lean HTTP client (``http``)."""
