"""``edge-agent run --test -c FILE``: read every device once, print what it says, write nothing.

What an integrator reaches for first (Telegraf's ``--test``): is the byte order right, the scale,
the node id? Every device of the configuration is connected to once, at the same time, and read
once; each value is printed on its own line with its device, field, decoded value, unit, quality,
and where it came from (the registers and their raw words, the node id). Nothing goes to a sink or
the local store (a collector may still keep its own files beside the store: an OPC UA server's
certificate, trusted on first use). The exit code is 0 when every device answered, 1 otherwise,
each failure named with its reason, within a bound of twice each device's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import TextIO

from edge_agent.collectors.batch import QUALITY_BAD_DECODE, QUALITY_BAD_DEVICE, QUALITY_GOOD, QUALITY_UNREACHABLE
from edge_agent.collectors.plugin import CollectorContext
from edge_agent.config import LoadedConfig
from edge_agent.runtime.agent import redact_url

QUALITY_NAMES = {
    QUALITY_GOOD: "good",
    QUALITY_BAD_DEVICE: "device error",
    QUALITY_BAD_DECODE: "not a number",
    QUALITY_UNREACHABLE: "unreachable",
}


class _Texts:
    """Text readings by id, for printing them as text."""

    def __init__(self) -> None:
        self.by_text: dict[str, int] = {}

    def intern(self, text: str) -> int:
        return self.by_text.setdefault(text, len(self.by_text))

    def text(self, code: float) -> str:
        return next((t for t, i in self.by_text.items() if i == int(code)), "?")


async def _one(
    loaded: LoadedConfig, index: int, context: CollectorContext, texts: _Texts
) -> tuple[list[list[str]], str | None]:
    """Rows for one device, and why it failed (None: it answered)."""
    dev = loaded.config.devices[index]
    signals = loaded.signals(dev)
    collector = loaded.plugin(dev).factory(loaded.profile(dev), loaded.spec(dev), context)
    try:
        async with asyncio.timeout(dev.timeout * 2 + 1):
            await collector.connect()
            batch = await collector.collect()
    except Exception as exc:  # a failed device is reported, the others go on
        why = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
        if isinstance(exc, TimeoutError) and not str(exc):
            why = f"no answer within {dev.timeout * 2 + 1:g} s"
        return [], why
    finally:
        with contextlib.suppress(Exception):  # closing after a failure: nothing more to say
            await asyncio.wait_for(collector.close(), dev.timeout)
    describe = getattr(collector, "describe", None)
    latest = {}  # a subscribed node may report a change and its read: the latest reading each
    for sig, value, quality in zip(batch.signal.tolist(), batch.value.tolist(), batch.quality.tolist(), strict=True):
        latest[sig] = (value, quality)
    rows = []
    for sig, (value, quality) in sorted(latest.items()):
        spec = signals[sig]
        if quality != QUALITY_GOOD:
            shown = "-"
        elif spec.kind == "text":
            shown = repr(texts.text(value))
        else:
            shown = f"{value:g}"
        where = describe(sig) if callable(describe) else ""
        rows.append([dev.name, spec.name, shown, spec.unit, QUALITY_NAMES.get(quality, str(quality)), where])
    return rows, collector.last_error


def run_test(loaded: LoadedConfig, out: TextIO = sys.stdout) -> int:
    """Read every device once and print one line per value; 0 when every device answered."""
    texts = _Texts()
    data_dir = loaded.resolve(loaded.config.agent.buffer.path).parent
    data_dir.mkdir(parents=True, exist_ok=True)
    context = CollectorContext(now_ns=time.time_ns, data_dir=str(data_dir), intern_text=texts.intern)

    async def everything() -> list[tuple[list[list[str]], str | None]]:
        devices = range(len(loaded.config.devices))
        return list(await asyncio.gather(*(_one(loaded, i, context, texts) for i in devices)))

    results = asyncio.run(everything())
    rows = [["device", "field", "value", "unit", "quality", "source"]]
    failed: list[str] = []
    for dev, (device_rows, problem) in zip(loaded.config.devices, results, strict=True):
        rows += device_rows
        if not device_rows:
            failed.append(f"{dev.name} ({redact_url(dev.endpoint)}): {problem}")
        elif problem:
            failed.append(f"{dev.name}: answered with errors: {problem}")
    _print_table(rows, out)
    answered = sum(1 for device_rows, _ in results if device_rows)
    print(f"\n{answered} of {len(loaded.config.devices)} devices answered", file=out)
    for line in failed:
        print(f"FAILED {line}", file=out)
    return 0 if answered == len(results) else 1


def _print_table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + "  " + r[-1], file=out)


__all__ = ["run_test"]
