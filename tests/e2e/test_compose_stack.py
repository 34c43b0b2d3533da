"""The compose stack's own commands, run from the install its image makes.

No Docker engine runs here, so this stands in for ``docker compose up``: the install is made as
docker/Dockerfile makes it (only the files its COPY lines take, installed with the extras of
its RUN line into a clean virtual environment), then every service built from that image runs
its compose command with the compose network's names (``plant``, ``influxdb``) pointed at
loopback ports, the image's HEALTHCHECK command must pass against the agent, the data must
reach a real InfluxDB, and a ``docker stop`` (SIGTERM) must end the agent cleanly with its open
OEE windows written. What Grafana's container would read (provisioning, home dashboard) is
checked against the files the compose file mounts.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import InfluxServer, free_port

REPO = Path(__file__).parents[2]
DOCKER = REPO / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
DOCKERFILE = (DOCKER / "Dockerfile").read_text(encoding="utf-8")


@dataclass
class Image:
    """The image's install: its ``edge-agent`` entry point, and the Dockerfile's health check."""

    entrypoint: list[str]
    healthcheck: list[str]


def build_stage() -> tuple[list[tuple[list[str], str]], str]:
    """The first stage's COPY lines (sources, destination) and the extras its pip install takes."""
    stage = DOCKERFILE.split("\nFROM ", 2)[1]
    copies = []
    for line in stage.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            *sources, dest = shlex.split(line)[1:]
            copies.append((sources, dest))
    (extras,) = re.findall(r'pip install [^\n]*"\.\[([\w,]+)\]"', stage)
    return copies, extras


def exec_form(instruction: str) -> list[str]:
    """The JSON form of a Dockerfile instruction (``ENTRYPOINT``, ``HEALTHCHECK ... CMD``)."""
    match = re.search(rf"{instruction}[^\[]*(\[[^\]]*\])", DOCKERFILE.replace("\\\n", " "))
    assert match, f"no exec form of {instruction} in the Dockerfile"
    return list(yaml.safe_load(match[1]))


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    root = tmp_path_factory.mktemp("image")
    context = root / "src"
    context.mkdir()
    copies, extras = build_stage()
    for sources, dest in copies:
        for source in sources:
            path = REPO / source
            # A folder's contents go to the destination; a file goes into it when it ends with /.
            place = context / dest / path.name if dest.endswith("/") and path.is_file() else context / dest
            place.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                shutil.copytree(path, place, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(path, place)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", f"{context}[{extras}]"], check=True, timeout=1800)
    (entry,) = exec_form("ENTRYPOINT")
    health = exec_form("HEALTHCHECK")
    assert health[0] == entry
    return Image([str(venv / "bin" / entry)], [str(venv / "bin" / entry), *health[1:]])


def services_of_the_image() -> dict[str, list[str]]:
    """Service name -> its command, for every service that runs the image the Dockerfile builds."""
    built = {s["image"] for s in COMPOSE["services"].values() if "build" in s}
    return {name: s["command"] for name, s in COMPOSE["services"].items() if s.get("image") in built}


@dataclass
class Network:
    """The compose network's names and ports, on loopback."""

    ports: dict[int, int]
    influx_url: str
    state_dir: Path
    health_port: int

    def localize(self, text: str) -> str:
        for original, port in self.ports.items():
            text = text.replace(f"plant:{original}", f"127.0.0.1:{port}")
        text = text.replace("http://influxdb:8086", self.influx_url)
        text = text.replace("/var/lib/edge-agent", str(self.state_dir))
        return text.replace("127.0.0.1:8089", f"127.0.0.1:{self.health_port}")


def started(command: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env)


def wait_for(condition: Any, what: str, processes: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    deadline = time.monotonic() + 180
    while not condition():
        for process, log in zip(processes, logs, strict=True):
            assert process.poll() is None, f"{what}: {process.args!r} exited:\n{log.read_text(encoding='utf-8')}"
        assert time.monotonic() < deadline, f"{what}: not within 180 s; " + "; ".join(
            log.read_text(encoding="utf-8")[-2000:] for log in logs
        )
        time.sleep(0.2)


def test_the_image_holds_what_each_service_runs(image: Image, influxdb: InfluxServer, tmp_path: Path) -> None:
    commands = services_of_the_image()
    assert set(commands) == {"plant", "agent"}
    plant_command = commands["plant"]
    ports = {int(plant_command[i + 1]): free_port() for i, a in enumerate(plant_command) if a.endswith("-port")}
    state = tmp_path / "agent-data"
    state.mkdir()
    net = Network(ports, influxdb.url, state, free_port())
    # The agent's config is mounted from docker/: the same file, with the network's names localized.
    (mount,) = [v for v in COMPOSE["services"]["agent"]["volumes"] if v.startswith("./agent.yaml:")]
    inside = mount.split(":")[1]
    config = tmp_path / "agent.yaml"
    config.write_text(net.localize((DOCKER / "agent.yaml").read_text(encoding="utf-8")), encoding="utf-8")

    def localized(command: list[str]) -> list[str]:
        out = [str(config) if a == inside else a for a in command]
        out = ["127.0.0.1" if a == "0.0.0.0" else a for a in out]  # noqa: S104 - the container's bind-all, moved to loopback
        return [str(ports[int(a)]) if a.isdigit() and int(a) in ports else a for a in out]

    logs = [tmp_path / "plant.log", tmp_path / "agent.log"]
    plant = started(image.entrypoint + localized(plant_command), logs[0], tmp_path)
    agent = started(image.entrypoint + localized(commands["agent"]), logs[1], state)
    processes = [plant, agent]
    try:
        health = net.localize(shlex.join(image.healthcheck))

        def healthy() -> bool:
            return subprocess.run(shlex.split(health), capture_output=True, timeout=60, check=False).returncode == 0

        wait_for(healthy, "the image's HEALTHCHECK", processes, logs)
        devices = [d["name"] for d in yaml.safe_load(config.read_text(encoding="utf-8"))["devices"]]
        database = yaml.safe_load(config.read_text(encoding="utf-8"))["sinks"][0]["database"]

        def every_device_wrote() -> bool:
            try:
                series = influxdb.query('SELECT count("value") FROM "raw" GROUP BY "device"', database)
            except Exception:
                return False
            return {s["tags"]["device"] for s in series} == set(devices)

        wait_for(every_device_wrote, "raw values of every device in InfluxDB", processes, logs)
        agent.send_signal(signal.SIGTERM)  # docker stop
        grace_s = int(COMPOSE["services"]["agent"]["stop_grace_period"].removesuffix("s"))
        assert agent.wait(grace_s) == 0, logs[1].read_text(encoding="utf-8")
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(30)
    machines = {
        s["tags"]["machine"] for s in influxdb.query('SELECT count("oee") FROM "oee" GROUP BY "machine"', database)
    }
    assert machines == {d for d in devices if d != "energy-meter"}, "open OEE windows written at the stop"
    text = logs[1].read_text(encoding="utf-8")
    assert "Traceback" not in text and "ERROR" not in text, text[-3000:]


def test_grafana_reads_what_the_compose_file_mounts() -> None:
    """Grafana's container (which cannot run here): every provisioning file it is given exists, the
    datasource's variables are set in its environment and name the agent's database, and its
    home dashboard is among the mounted files."""
    grafana = COMPOSE["services"]["grafana"]
    mounts: dict[str, Path] = {}
    for volume in grafana["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[target] = (DOCKER / source).resolve()
        assert mounts[target].exists(), volume

    def on_host(path: str) -> Path:
        target = max((t for t in mounts if path.startswith(t)), key=len)
        return mounts[target] / path[len(target) :].lstrip("/")

    sources = on_host("/etc/grafana/provisioning/datasources")
    (datasource,) = yaml.safe_load(next(sources.glob("*.yaml")).read_text(encoding="utf-8"))["datasources"]
    used = set(re.findall(r"\$\{(\w+)\}", yaml.safe_dump(datasource)))
    assert used <= set(grafana["environment"]), f"unset in grafana's environment: {used - set(grafana['environment'])}"
    agent_db = yaml.safe_load((DOCKER / "agent.yaml").read_text(encoding="utf-8"))["sinks"][0]["database"]
    assert (
        grafana["environment"]["INFLUX_DB"] == agent_db == COMPOSE["services"]["influxdb"]["environment"]["INFLUXDB_DB"]
    )
    providers = on_host("/etc/grafana/provisioning/dashboards")
    (provider,) = yaml.safe_load(next(providers.glob("*.yaml")).read_text(encoding="utf-8"))["providers"]
    boards = sorted(on_host(provider["options"]["path"]).glob("*.json"))
    assert [b.name for b in boards] == ["enterprise.json", "fleet.json", "plant-overview.json"]
    assert on_host(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]).is_file()
