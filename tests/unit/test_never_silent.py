"""Faults that used to stop the data silently: each now survived, counted and shown (issue 23)."""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.collectors.batch import QUALITY_NOT_FINITE, Batch
from edge_agent.config import load_config
from edge_agent.demo.plant import Plant
from edge_agent.demo.workshop import demo_config, write_config
from edge_agent.runtime import checkpoint
from edge_agent.runtime.agent import Agent, PidFile, running_agent
from edge_agent.runtime.clock import ClockWatch
from edge_agent.runtime.forwarder import POISON_AFTER, Forwarder
from edge_agent.runtime.pipeline import Inbox
from edge_agent.runtime.polling import Backoff, DeviceHealth, DevicePoller
from edge_agent.runtime.supervisor import Supervisor
from edge_agent.sinks.base import RejectedPoints
from edge_agent.sinks.influx.line_protocol import LineProtocol
from edge_agent.store.catalog import Series, SeriesCatalog
from edge_agent.store.local import LocalStore


async def until(what: str, condition: Any, timeout_s: float = 60.0) -> None:
    """Wait for ``condition`` (a generous deadline, never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


# -- the store ----------------------------------------------------------------------------------


def stored(path: Path, points: int = 1000) -> None:
    """A store holding ``points`` points in ten chunks."""
    store = LocalStore(path)
    (sid,) = store.series.register([Series.of("m", {}, "v")]).tolist()
    for k in range(10):
        n = points // 10
        store.points.append(Batch.of(np.arange(n, dtype=np.int64) + k * n, np.full(n, sid, np.int32), np.ones(n)))
    store.close()


def damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "garbage":
        path.write_bytes(os.urandom(50_000))
    elif how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 3]))
    else:  # a bad page in the middle of the file
        page = 4096
        middle = (len(data) // page // 2) * page
        data[middle : middle + page] = os.urandom(page)
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["garbage", "truncated", "bad page"])
def test_a_damaged_store_is_set_aside_and_a_new_one_starts(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "store.sqlite3"
    stored(path, points=200_000)
    for extra in ("-wal", "-shm"):
        (tmp_path / f"store.sqlite3{extra}").unlink(missing_ok=True)
    damage(path, how)
    with caplog.at_level(logging.ERROR):
        store = LocalStore(path)
    (notice,) = store.damage_notices()
    kept = Path(str(notice["file"]))
    assert kept.name.startswith("store.sqlite3.damaged-") and kept.exists()
    assert "damaged" in caplog.text and str(kept) in caplog.text
    lost = notice["lost_points"]
    if lost:  # where the damaged file still says what it held, that is counted as lost
        assert store.points.stats().dropped == {"store_damaged": lost}
    # The new store works.
    (sid,) = store.series.register([Series.of("m", {}, "v")]).tolist()
    store.points.append(Batch.of(1, [sid], [2.0]))
    assert store.points.stats().pending_points == 1
    # The notice holds until the operator removes the kept file.
    kept.unlink()
    assert store.damage_notices() == []
    store.close()


def test_an_agent_starts_on_a_damaged_store_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "store.sqlite3").write_bytes(b"this is not a database" * 1000)
    agent = agent_without_devices_running(tmp_path)
    report = agent.health_report()
    assert report["status"] == "degraded"
    assert any("damaged" in r and "store.sqlite3.damaged-" in r for r in report["reasons"])
    agent.store.close()


# -- sinks ---------------------------------------------------------------------------------------


class PoisonedSink:
    """Raises OverflowError (as an encoder would) on any batch holding the value 13."""

    name, batch_size, concurrency = "poisoned", 1000, 1

    def __init__(self) -> None:
        self.received: list[float] = []

    def write(self, batch: Batch, catalog: SeriesCatalog) -> None:
        if (batch.value == 13.0).any():
            raise OverflowError("cannot convert float infinity to integer")
        self.received += batch.value.tolist()

    def close(self) -> None:
        return


def chunks(store: LocalStore, values: list[list[float]]) -> None:
    (sid,) = store.series.register([Series.of("m", {}, "v")]).tolist()
    for k, chunk in enumerate(values):
        store.points.append(Batch.of(np.arange(len(chunk), dtype=np.int64) + 100 * k, np.full(len(chunk), sid), chunk))


def test_a_chunk_that_fails_the_same_way_is_set_aside_and_the_rest_flows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = LocalStore(tmp_path / "s.sqlite3")
    buffer = store.points
    chunks(store, [[1.0, 2.0], [13.0, 14.0], [3.0]])
    sink = PoisonedSink()
    forwarder = Forwarder(buffer, store.series.catalog, sink)
    for attempt in range(POISON_AFTER):
        if attempt < POISON_AFTER - 1:
            with pytest.raises(OverflowError):
                forwarder.step()
        else:
            forwarder.step()
    forwarder.step()
    # The chunk behind the poison was on the wire with it (pipelined writes): sent again until the
    # poison was set aside, as unacknowledged points are; never lost.
    assert sink.received[:2] == [1.0, 2.0] and set(sink.received) == {1.0, 2.0, 3.0}
    stats = buffer.stats()
    assert stats.pending_points == 0 and stats.set_aside == {"poisoned": 2}
    assert forwarder.health.set_aside == 2
    assert "set aside in the local store's dead-letter table" in caplog.text
    row = sqlite3.connect(store.path).execute("SELECT sink, n, error FROM dead_letter").fetchone()
    assert row == ("poisoned", 2, "OverflowError: cannot convert float infinity to integer")
    forwarder.close()


class RefusingSink:
    """A destination that answers 400 to everything; the sink keeps what it refuses in ``file``."""

    name, batch_size, concurrency = "refusing", 500, 1

    def __init__(self, file: Path | None = None) -> None:
        self.requests, self.file = 0, file

    def write(self, batch: Batch, catalog: SeriesCatalog) -> None:
        self.requests += 1
        raise RejectedPoints("400 unable to parse")

    def keep_refused(self, batch: Batch, catalog: SeriesCatalog, reason: str) -> str:
        if self.file is None:
            raise ValueError("no file")
        self.file.parent.mkdir(parents=True, exist_ok=True)
        with self.file.open("a", encoding="utf-8") as fh:
            fh.write(f"# {reason}\n" + "\n".join(map(str, batch.value.tolist())) + "\n")
        return str(self.file)

    def close(self) -> None:
        return


def test_refused_points_are_kept_and_counted_when_the_rejected_file_cannot_be_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = LocalStore(tmp_path / "s.sqlite3")
    buffer = store.points
    chunks(store, [[float(v) for v in range(40)] for _ in range(5)])
    (tmp_path / "not-a-folder").write_text("a file where a folder should be", encoding="utf-8")
    forwarder = Forwarder(buffer, store.series.catalog, RefusingSink(tmp_path / "not-a-folder" / "rejected.lp"))
    with caplog.at_level(logging.ERROR):
        while forwarder.step():
            pass
    stats = buffer.stats()
    assert stats.pending_points == 0
    assert stats.dropped == {"rejected": 200} and stats.set_aside == {"refusing": 200}
    assert forwarder.health.rejected == 200
    # Refusals are logged at most once a minute, with a count.
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and "dead-letter table" in refusals[0].getMessage()
    assert forwarder._refusals.unsaid > 0
    # A destination that refuses everything is failing, not ok.
    assert forwarder.refusing_since_ns > 0
    assert "refuses every point" in forwarder.health.last_error
    forwarder.close()


def test_a_sink_that_refuses_everything_turns_failing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s.sqlite3")
    buffer = store.points
    chunks(store, [[1.0, 2.0]])
    forwarder = Forwarder(buffer, store.series.catalog, RefusingSink())

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(forwarder.run(stop, idle_s=0.01))
        await until("the sink failing", lambda: not forwarder.health.ok)
        stop.set()
        await task

    asyncio.run(run())
    assert not forwarder.health.ok and forwarder.health.failing_since_ns > 0
    assert forwarder.health.rejected == 2
    forwarder.close()


def test_a_non_finite_value_is_encoded_as_a_quality_code_never_raised() -> None:
    catalog = SeriesCatalog({0: Series.of("anomaly", {"signal": "t"}, "score")})
    lines = LineProtocol(catalog).lines(Batch.of(5, [0, 0, 0], [np.inf, np.nan, 1.5]))
    assert lines == [
        f"anomaly,signal=t score_quality={QUALITY_NOT_FINITE}i 5",
        f"anomaly,signal=t score_quality={QUALITY_NOT_FINITE}i 5",
        "anomaly,signal=t score=1.5 5",
    ]


# -- the middle ------------------------------------------------------------------------------------


def test_the_inbox_is_bounded_and_counts_what_it_drops() -> None:
    inbox = Inbox(max_points=100)
    for _ in range(30):
        inbox.put(Batch.of(0, np.arange(10, dtype=np.int32), np.ones(10)))
    kept = sum(len(b) for b in inbox.take())
    assert kept == 100
    assert inbox.take_drops() == {"inbox_full": 200}


def test_a_failing_task_is_logged_once_with_its_traceback_counted_shown_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = Supervisor(Backoff(0.01, 0.02))
    runs = {"n": 0}

    async def flaky() -> None:
        runs["n"] += 1
        if runs["n"] <= 3:
            raise ValueError("the same bug")

    async def body() -> None:
        supervisor.start("flaky", flaky)
        await until("four runs", lambda: runs["n"] >= 4)
        await supervisor.stop()

    with caplog.at_level(logging.ERROR):
        asyncio.run(body())
    (health,) = supervisor.report()
    assert (health["failures"], health["restarts"], health["last_error"]) == (3, 3, "ValueError: the same bug")
    with_traceback = [r for r in caplog.records if r.exc_info]
    assert len(with_traceback) == 1 and "task flaky failed" in with_traceback[0].getMessage()
    assert len(caplog.records) == 1  # the repeats wait for the next minute's line
    (reason,) = supervisor.reasons(time.time_ns())
    assert reason.startswith("task flaky failed 3 time(s)")


def agent_without_devices_running(tmp_path: Path, clock: Any = None) -> Agent:
    cfg = demo_config(Plant(1), "opc.tcp://127.0.0.1:1/x", 2, str(tmp_path / "store.sqlite3"), [])
    return Agent(load_config(write_config(tmp_path / "agent.yaml", cfg)), clock)


def test_a_failing_tick_still_stores_the_readings_it_took(tmp_path: Path) -> None:
    agent = agent_without_devices_running(tmp_path)

    def broken(*args: Any, **kwargs: Any) -> Batch:
        raise ZeroDivisionError("a bug in the analytics")

    agent.pipeline.process = broken  # type: ignore[method-assign]
    agent.pipeline.ingest(3, Batch.of(agent.clock.now_ns(), np.arange(7, dtype=np.int32), np.arange(7.0)))
    with pytest.raises(ZeroDivisionError):
        agent.tick()
    assert agent.store.points.stats().pending_points == 7
    agent.store.close()


def test_the_checkpoint_cannot_run_code_when_it_is_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    agent = agent_without_devices_running(tmp_path)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    agent.store.state.put_blob(checkpoint.KEY, pickle.dumps(Payload()))
    with caplog.at_level(logging.WARNING):
        assert checkpoint.restore(agent.store.state, agent.pipeline) is False
    assert not marker.exists()
    assert "unreadable" in caplog.text
    # What the agent writes, it reads back.
    agent.tick()
    checkpoint.save(agent.store.state, agent.pipeline, agent.clock.now_ns())
    assert checkpoint.restore(agent.store.state, agent.pipeline) is True
    agent.store.close()


# -- reload ------------------------------------------------------------------------------------------


def test_reload_never_signals_a_stale_pid_file_or_another_process(tmp_path: Path) -> None:
    path = tmp_path / "agent.pid"
    path.write_text(f"{os.getpid()}\n", encoding="utf-8")  # left by a crash: nobody holds it
    with pytest.raises(LookupError, match="stale"):
        running_agent(path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(path)!r}, os.O_RDWR)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.ftruncate(fd, 0); os.write(fd, str(os.getpid()).encode())\n"
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        with pytest.raises(LookupError, match="not an edge agent"):
            running_agent(path)
    finally:
        holder.kill()
        holder.wait()
    own = PidFile(tmp_path / "own.pid")
    own.claim()
    try:
        assert (tmp_path / "own.pid").read_text(encoding="utf-8").strip() == str(os.getpid())
    finally:
        own.release()
    assert not (tmp_path / "own.pid").exists()


# -- clocks -------------------------------------------------------------------------------------------


class SteppingClock:
    """The wall clock as a test sets it; the monotonic clock runs on regardless."""

    speed = 1.0

    def __init__(self) -> None:
        self.offset_ns = 0

    def now_ns(self) -> int:
        return time.time_ns() + self.offset_ns

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Answering:
    """A collector that answers every poll at once."""

    name, last_error = "fake", None

    async def connect(self) -> None:
        return

    async def collect(self) -> Batch:
        return Batch.of(0, [0], [1.0])

    async def close(self) -> None:
        return

    def health(self) -> dict[str, Any]:
        return {}


def test_a_wall_clock_stepped_back_neither_stops_polling_nor_goes_unnoticed() -> None:
    clock = SteppingClock()
    watch = ClockWatch(clock, threshold_ns=50_000_000)
    health = DeviceHealth("d", "fake://")
    stamps: list[int] = []
    poller = DevicePoller(0, Answering(), health, 0.02, 1.0, clock, lambda i, b: stamps.append(clock.now_ns()))  # type: ignore[arg-type]

    async def body() -> None:
        task = asyncio.create_task(poller.run())
        await until("ten polls", lambda: health.polls >= 10)
        clock.offset_ns -= 60_000_000_000  # an operator sets the clock back a minute
        stepped_at = health.polls
        await until("ten more polls", lambda: health.polls >= stepped_at + 10)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(body())
    assert health.polls >= 20, "polling stopped after the clock stepped back"
    assert watch.check() == pytest.approx(-60.0, abs=1.0) and watch.steps == 1
    assert min(np.diff(stamps)) < -50e9  # readings are stamped with the new time


def test_the_agent_reports_a_wall_clock_step(tmp_path: Path) -> None:
    clock = SteppingClock()
    agent = agent_without_devices_running(tmp_path, clock)
    agent.tick_s = 0.01

    async def body() -> None:
        running = asyncio.create_task(agent.run(drain_s=0))
        clock.offset_ns = -60_000_000_000
        await until("the step noticed", lambda: agent.clock_watch.steps > 0)
        report = agent.health_report()
        agent.stop()
        await running
        assert report["clock"]["steps"] == 1 and report["clock"]["last_step_s"] == pytest.approx(-60, abs=1)

    asyncio.run(asyncio.wait_for(body(), 120))


def test_threads_hand_over_whole_batches_under_a_bounded_inbox() -> None:
    """Producers on several threads, one taker: every point is taken or counted as dropped."""
    inbox = Inbox(max_points=5_000)
    made = 0
    lock = threading.Lock()

    def produce() -> None:
        nonlocal made
        for _ in range(2000):
            inbox.put(Batch.of(0, np.arange(3, dtype=np.int32), np.ones(3)))
            with lock:
                made += 3

    threads = [threading.Thread(target=produce) for _ in range(4)]
    taken = 0
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        taken += sum(len(b) for b in inbox.take())
    taken += sum(len(b) for b in inbox.take())
    assert taken + inbox.take_drops().get("inbox_full", 0) == made == 24_000


class ManualClock:
    """A clock the test moves (UTC ns); monotonic alike."""

    speed = 1.0

    def __init__(self, start_ns: int) -> None:
        self.now = start_ns

    def now_ns(self) -> int:
        return self.now

    def monotonic_ns(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def oee_window_keys(store: Path, after_chunk: int) -> list[int]:
    """Start times of the OEE windows (any grid) written in chunks after ``after_chunk``."""
    db = sqlite3.connect(store)
    oee_ids = {
        sid for sid, m, f in db.execute("SELECT id, measurement, field FROM catalog") if m == "oee" and f == "running_s"
    }
    keys: list[int] = []
    for ts, sig in db.execute("SELECT ts, signal FROM chunks WHERE id > ?", (after_chunk,)):
        t, s = np.frombuffer(ts, "<i8"), np.frombuffer(sig, "<i4")
        keys += t[np.isin(s, list(oee_ids))].tolist()
    db.close()
    return sorted(set(keys))


def test_after_a_crash_windows_written_since_the_checkpoint_are_not_written_again(tmp_path: Path) -> None:
    """The checkpoint is taken at minute 2; the agent writes windows up to minute 5, then dies
    (no checkpoint at the end). The next run restores minute 2 and must not overwrite minutes 2-5
    with windows that now hold unknown time."""
    start = 1_800_000_000 * 10**9 // (60 * 10**9) * (60 * 10**9)  # on a minute
    clock = ManualClock(start)
    cfg = demo_config(Plant(1), "opc.tcp://127.0.0.1:1/x", 2, str(tmp_path / "store.sqlite3"), [])
    path = write_config(tmp_path / "agent.yaml", cfg)
    names = [s.name for s in load_config(path).signals(load_config(path).config.devices[0])]
    state, parts = names.index("state"), names.index("parts")

    def run(agent: Agent, seconds: range, save_at: int | None = None) -> None:
        for s in seconds:
            clock.now = start + s * 10**9
            agent.pipeline.ingest(0, Batch.of(clock.now, [state, parts], [1.0, float(s)]))
            agent.tick()
            if s == save_at:
                checkpoint.save(agent.store.state, agent.pipeline, clock.now)

    first = Agent(load_config(path), clock)  # type: ignore[arg-type]
    run(first, range(0, 300), save_at=120)
    written = dict(first.pipeline.oee.written_until)
    assert written and max(written.values()) >= start + 240 * 10**9
    last_chunk = sqlite3.connect(tmp_path / "store.sqlite3").execute("SELECT MAX(id) FROM chunks").fetchone()[0]
    first.store.close()  # a crash: no final tick, no checkpoint

    second = Agent(load_config(path), clock)  # type: ignore[arg-type]
    run(second, range(360, 480))
    rewritten = [k for k in oee_window_keys(tmp_path / "store.sqlite3", last_chunk) if k < written["1m"]]
    assert rewritten == [], (
        f"windows written before the crash were written again: {[(k - start) / 1e9 for k in rewritten]}"
    )
    second.store.close()
