"""The agent configuration for the demo workshop, written as a real ``agent.yaml``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from edge_agent.demo.plant import ENERGY_METER_UNIT, STATE_CODES, Plant

#: Idle and down episodes shorter than this (plant seconds) are micro-stops in the demo.
MICROSTOP_S = 60.0


def demo_config(
    plant: Plant,
    opcua_endpoint: str,
    modbus_port: int,
    buffer_path: str,
    sinks: list[dict[str, Any]],
    speed: float = 1.0,
    poll_interval_s: float = 1.0,
) -> dict[str, Any]:
    """``agent.yaml`` content for every demo machine and the energy meter."""
    state_map = dict(STATE_CODES.items())
    devices: list[dict[str, Any]] = []
    for name, sim in plant.machines.items():
        spec = sim.spec
        oee: dict[str, Any] = {
            "state": {"signal": "state", "map": state_map, "default": "down"},
            "ideal_cycle_time": f"{spec.ideal_cycle_s}s",
            "microstop_threshold": f"{MICROSTOP_S:g}s",
            "stale_after": "60s",
        }
        device: dict[str, Any] = {
            "name": name,
            "line": spec.line,
            "poll_interval": f"{poll_interval_s}s",
            "oee": oee,
        }
        if spec.protocol == "opcua":
            device |= {
                "profile": "demo-cnc-opcua",
                "endpoint": opcua_endpoint,
                "params": {"machine": name},
            }
            oee["counters"] = {"total": {"signal": "parts"}, "reject": {"signal": "rejects"}}
        else:
            device |= {
                "profile": "demo-press-modbus",
                "endpoint": f"modbus://127.0.0.1:{modbus_port}",
                "unit_id": spec.unit_id,
            }
            oee["counters"] = {
                "good": {"signal": "good", "modulus": 65536},
                "reject": {"signal": "rejects"},
            }
        devices.append(device)
    devices.append(
        {
            "name": "energy-meter",
            "line": "utilities",
            "profile": "demo-energy-meter",
            "endpoint": f"modbus://127.0.0.1:{modbus_port}",
            "unit_id": ENERGY_METER_UNIT,
            "poll_interval": f"{poll_interval_s}s",
            "anomaly_signals": [],
        }
    )
    return {
        "agent": {
            "id": "demo-edge-1",
            "site": "demo-site",
            "workshop": "machining",
            "buffer": {"path": buffer_path},
        },
        "sinks": sinks,
        # Late OPC UA notifications are waited for: a quarter of a wall second, in plant time.
        "analytics": {
            "oee_window": "60s",
            "settle": f"{max(2.0, 0.25 * speed):g}s",
            # The demo shows a few plant minutes, and each machine state keeps its own normal:
            # calibrated after 120 samples of a state and shifts armed after 240, instead of 300
            # and 1,200 (a real plant runs for days).
            "anomaly": {"forecast": {"calibrate_after": 120, "shift_after": 240}},
            # Two 12-hour shifts covering the day (no breaks): OEE per shift as well (window=shift).
            "shifts": {
                "timezone": "UTC",
                "schedule": [
                    {"name": "day", "start": "00:00", "end": "12:00"},
                    {"name": "night", "start": "12:00", "end": "00:00"},
                ],
            },
        },
        # Shop-floor and cloud KPIs each plant minute; devices count as seen within 5 plant minutes.
        "kpis": {
            "every": "60s",
            "seen_within": "5m",
            "energy_meters": ["energy-meter.energy"],
            # The workshop before the project, as its records say: what the improvement KPIs compare with.
            "baseline": {"energy_per_good_kwh": 0.018, "defect_rate": 0.03, "throughput_per_h": 850},
        },
        "devices": devices,
    }


def sinks_from_env(env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Sinks from ``INFLUX_URL``, ``INFLUX_API`` (v1|v2), ``INFLUX_DB``/``INFLUX_BUCKET``, ..."""
    env = dict(os.environ) if env is None else env
    url = env.get("INFLUX_URL", "").strip()
    if not url:
        return []
    api = env.get("INFLUX_API", "v1").strip().lower()
    if api == "v1":
        sink = {"type": "influxdb_v1", "url": url, "database": env.get("INFLUX_DB", "edge")}
        if env.get("INFLUX_USER"):
            sink |= {"username": env["INFLUX_USER"], "password": env.get("INFLUX_PASSWORD", "")}
        return [sink]
    if api == "v2":
        return [
            {
                "type": "influxdb_v2",
                "url": url,
                "org": env.get("INFLUX_ORG", ""),
                "bucket": env.get("INFLUX_BUCKET", "edge"),
                "token": _token(env),
            }
        ]
    raise ValueError(f"INFLUX_API={api!r}: use v1 (InfluxDB 1.x /write) or v2 (InfluxDB 2.x, 3.x, 1.8+)")


def _token(env: dict[str, str]) -> str:
    token = env.get("INFLUX_TOKEN", "").strip()
    if not token:
        raise ValueError("INFLUX_API=v2 needs INFLUX_TOKEN (InfluxDB 1.8 without authentication takes any, e.g. none)")
    return token


def write_config(path: Path, content: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Written by `edge-agent demo`: the agent configuration for the demo workshop.\n"
        + yaml.safe_dump(content, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    return path
