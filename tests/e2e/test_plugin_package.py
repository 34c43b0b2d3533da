"""A protocol, a sink and a detector shipped as a package of their own: built in a temporary
folder, installed into the test environment with pip, seen by ``profile check``, ``config check``,
``anomaly params`` and the agent itself (run as a process), then uninstalled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "edge-agent-toys"
version = "0.1.0"

[tool.setuptools]
packages = ["toys"]

[project.entry-points."edge_agent.collectors"]
counter = "toys.counter"
[project.entry-points."edge_agent.sinks"]
csv = "toys.csv_sink"
[project.entry-points."edge_agent.detectors"]
jump = "toys.jump"
"""

COUNTER = '''\
"""A toy protocol: counters that count up by ``step`` at each poll."""
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from edge_agent.collectors.batch import Batch
from edge_agent.collectors.plugin import CollectorContext, CollectorPlugin, DeviceOptions, DeviceSpec, register
from edge_agent.collectors.profile import ProfileBase, SignalSpec


class CounterProfile(ProfileBase):
    protocol: Literal["counter"]
    counters: list[str]

    def signals(self) -> list[SignalSpec]:
        return [SignalSpec(name, "analog") for name in self.counters]


class CounterOptions(DeviceOptions):
    step: Annotated[int, Field(ge=1)] = 1


class CounterCollector:
    name = "counter"

    def __init__(self, profile: Any, device: DeviceSpec, context: CollectorContext) -> None:
        self.step, self.now_ns, self.last_error = device.options.step, context.now_ns, None
        self.index = np.arange(len(profile.counters), dtype=np.int32)
        self.polls = 0

    async def connect(self) -> None:
        return

    async def collect(self) -> Batch:
        """The i-th counter reads step x (polls + i): a staircase per counter."""
        self.polls += 1
        return Batch.of(self.now_ns(), self.index, self.step * (self.polls + self.index.astype(float)))

    async def close(self) -> None:
        return

    def health(self) -> dict[str, Any]:
        return {"value": self.step * self.polls}


register(CollectorPlugin("counter", CounterProfile, ("counter",), CounterOptions,
                         lambda profile, device, context: CounterCollector(profile, device, context)))
'''

CSV_SINK = '''\
"""A toy sink: one CSV line per point, fsync'd before it acknowledges."""
import os
from typing import Literal

from edge_agent.collectors.batch import Batch
from edge_agent.sinks.base import SinkConfig, SinkContext, SinkPlugin, register
from edge_agent.store.catalog import SeriesCatalog


class CsvSinkConfig(SinkConfig):
    type: Literal["csv"]
    path: str


class CsvSink:
    def __init__(self, config: CsvSinkConfig, context: SinkContext) -> None:
        self.name, self.batch_size, self.concurrency = config.identity(), config.batch_size, 1
        self.file = open(context.resolve(config.path), "a", encoding="utf-8")

    def write(self, batch: Batch, catalog: SeriesCatalog) -> None:
        for sid, ts, value in zip(batch.signal.tolist(), batch.ts.tolist(), batch.value.tolist()):
            series = catalog[sid]
            signal = dict(series.tags).get("signal", "")
            self.file.write(f"{ts},{series.measurement},{series.field},{signal},{value}\\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


register(SinkPlugin("csv", CsvSinkConfig, CsvSink))
'''

JUMP = '''\
"""A toy detector: |x - previous x| in units of ``size``."""
from typing import ClassVar

import numpy as np

from edge_agent.analytics.detectors.base import Param, RowDetector, register


@register
class Jump(RowDetector):
    name: ClassVar[str] = "jump"
    params: ClassVar[dict[str, Param]] = {"size": Param(10.0, "a jump worth an alarm, in signal units", gt=0)}
    _state: ClassVar[dict[str, float]] = {"last": np.nan}
    threshold = 1.0

    def __init__(self, n_signals, deps=None, size=10.0):
        super().__init__(n_signals)
        self.size = size

    def step(self, x, valid, out):
        np.divide(np.abs(x - self.last), self.size, out=out)
        out[np.isnan(self.last)] = 0.0
        self.last = np.where(np.isnan(x), self.last, x)
'''

PROFILE = """\
name: toy-counters
protocol: counter
counters: [a, b]
"""


def agent_yaml(tmp: Path, health_port: int) -> str:
    return f"""\
agent:
  id: toy-agent
  site: lab
  workshop: w
  buffer: {{path: {tmp / "store.sqlite3"}}}
  health_listen: 127.0.0.1:{health_port}
  drain: 5s
profile_dirs: [{tmp}]
sinks:
  - {{type: csv, path: {tmp / "points.csv"}}}
analytics:
  anomaly: {{detectors: [jump], jump: {{size: 100}}}}
devices:
  - {{name: c1, profile: toy-counters, endpoint: "counter://here:1", line: l1, step: 3, poll_interval: 50ms}}
"""


@pytest.fixture(scope="module")
def toys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The toy package, installed into this environment for the module's tests."""
    root = tmp_path_factory.mktemp("edge-agent-toys")
    (root / "toys").mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (root / "toys" / "__init__.py").write_text("", encoding="utf-8")
    (root / "toys" / "counter.py").write_text(COUNTER, encoding="utf-8")
    (root / "toys" / "csv_sink.py").write_text(CSV_SINK, encoding="utf-8")
    (root / "toys" / "jump.py").write_text(JUMP, encoding="utf-8")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--no-deps", str(root)], check=True)
    try:
        yield root
    finally:
        subprocess.run([*pip, "uninstall", "-y", "edge-agent-toys"], check=True)


def edge_agent(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_tools_see_the_package(toys: Path, tmp_path: Path) -> None:
    (tmp_path / "toy.yaml").write_text(PROFILE, encoding="utf-8")
    checked = edge_agent("profile", "check", str(tmp_path / "toy.yaml"), cwd=tmp_path)
    assert (checked.returncode, checked.stdout.strip()) == (0, "ok"), checked.stderr
    params = edge_agent("anomaly", "params", cwd=tmp_path)
    assert "jump" in params.stdout and "a jump worth an alarm" in params.stdout
    (tmp_path / "agent.yaml").write_text(agent_yaml(tmp_path, free_port()), encoding="utf-8")
    config = edge_agent("config", "check", str(tmp_path / "agent.yaml"), cwd=tmp_path)
    assert (config.returncode, config.stdout.strip()) == (0, "ok"), config.stderr
    # The package's own option is validated like a built-in one, at its line.
    wrong = (tmp_path / "agent.yaml").read_text(encoding="utf-8").replace("step: 3", "step: 0")
    (tmp_path / "wrong.yaml").write_text(wrong, encoding="utf-8")
    refused = edge_agent("config", "check", str(tmp_path / "wrong.yaml"), cwd=tmp_path)
    assert refused.returncode == 2 and "devices[0].step" in refused.stderr


def test_the_agent_runs_with_the_package(toys: Path, tmp_path: Path) -> None:
    health_port = free_port()
    (tmp_path / "toy.yaml").write_text(PROFILE, encoding="utf-8")
    (tmp_path / "agent.yaml").write_text(agent_yaml(tmp_path, health_port), encoding="utf-8")
    log = (tmp_path / "agent.log").open("wb")
    agent = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "run", "-c", str(tmp_path / "agent.yaml")],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        while not _counted(tmp_path / "points.csv", 20):
            assert agent.poll() is None, (tmp_path / "agent.log").read_text(encoding="utf-8")
            assert time.monotonic() < deadline, "no counter values reached the CSV sink"
            time.sleep(0.1)
        health = _health(health_port)
    finally:
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(60)
        log.close()
    assert code == 0, (tmp_path / "agent.log").read_text(encoding="utf-8")
    assert health["devices"][0]["value"] > 0 and health["sinks"][0]["name"].startswith("csv:")
    rows = [line.split(",") for line in (tmp_path / "points.csv").read_text(encoding="utf-8").splitlines()]
    a = [float(r[4]) for r in rows if r[1] == "raw" and r[3] == "a"]
    assert a[:3] == [3.0, 6.0, 9.0]
    assert any(r[1] == "anomaly" for r in rows), "the package's detector scored nothing"


def _counted(path: Path, n: int) -> bool:
    return path.exists() and sum(1 for line in path.read_text(encoding="utf-8").splitlines() if ",raw," in line) >= n


def _health(port: int) -> dict[str, object]:
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as reply:
            return dict(json.loads(reply.read()))
    except urllib.error.HTTPError as exc:
        return dict(json.loads(exc.read()))
