#!/usr/bin/env bash
# Makes sure the programs the tests start are there: Debian's InfluxDB 1.x (influxd), Mosquitto
# (an MQTT broker) and Chromium (a headless browser for the status page). The tests start each on a
# free loopback port with temporary directories; nothing here starts a daemon.
set -euo pipefail
missing=()
command -v influxd >/dev/null 2>&1 || missing+=(influxdb)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "not found: ${missing[*]}: installing Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Some images run a service manager; the tests want no system daemon on the default ports.
    if command -v systemctl >/dev/null 2>&1; then
        systemctl stop influxdb mosquitto >/dev/null 2>&1 || true
    fi
    exit 0
fi
echo "Missing Debian packages the tests need: ${missing[*]}" >&2
echo "Fix: sudo apt-get install ${missing[*]}   (Debian/Ubuntu), then run 'make test' again." >&2
exit 1
