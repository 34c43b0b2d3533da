#!/usr/bin/env bash
# Makes sure Debian's InfluxDB 1.x server binary (influxd) is there for the tests.
# The tests start their own influxd on a free loopback port; nothing here starts a daemon.
set -euo pipefail
if command -v influxd >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "influxd not found: installing Debian's influxdb package" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends influxdb >/dev/null
    # Some images run a service manager; the tests want no system daemon on 8086.
    if command -v systemctl >/dev/null 2>&1; then systemctl stop influxdb >/dev/null 2>&1 || true; fi
    command -v influxd >/dev/null 2>&1 && exit 0
fi
echo "InfluxDB (influxd) is missing and could not be installed." >&2
echo "Fix: sudo apt-get install influxdb   (Debian/Ubuntu), then run 'make test' again." >&2
exit 1
