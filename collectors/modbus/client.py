"""The Modbus collector: one unit id, polled with the fewest reads its profile allows.

The connection (a :class:`~collectors.modbus.tcp.TcpLink`, or a serial line) is a *link*: devices
behind one gateway may share one (``connection: shared``), taking turns with one request in
flight, or each have their own.

A merged read the device refuses with exception 2 (illegal data address) or 3 (illegal data
value) is split: first into runs of adjacent fields (no unmapped registers in between), then, if
a run is refused too, into one read per field. The split is said once, remembered in the local
store (so a restart does not rediscover it) and re-read at once: fields that can be read are
never lost because a neighbour or a gap cannot.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from edge_agent.collectors.batch import QUALITY_BAD_DECODE, QUALITY_BAD_DEVICE, Batch
from edge_agent.collectors.modbus.plan import Request, plan_requests, span, split_request
from edge_agent.collectors.modbus.profile import ModbusProfile
from edge_agent.collectors.modbus.tcp import ReadReply
from edge_agent.collectors.plugin import DeviceUnreachable, KeyValueStore

log = logging.getLogger(__name__)


class Link(Protocol):
    """A connection that reads registers; raises DeviceUnreachable (or TimeoutError) when it fails."""

    @property
    def where(self) -> str: ...

    async def connect(self) -> None: ...

    async def read(self, table: str, address: int, count: int, unit_id: int) -> ReadReply: ...

    def close(self) -> None: ...


#: Gateway exceptions that mean the unit behind it cannot be reached.
UNIT_DOWN = frozenset({10, 11})
#: Exceptions that mean "not this range": a merged read answering one of them is split.
REFUSED_RANGE = frozenset({2, 3})
#: Distinct texts one field may produce; beyond, new texts are bad readings (a counter or clock
#: decoded as text would otherwise grow the store without end).
MAX_TEXTS_PER_FIELD = 1000


class ModbusCollector:
    """Polls one Modbus unit; signal indexes follow the profile's field order.

    A read answered with a Modbus exception marks its fields ``QUALITY_BAD_DEVICE``; a transport
    failure raises (the agent reconnects with backoff). So do the gateway's exceptions 10 (path
    unavailable) and 11 (target device failed to respond): the unit behind the gateway is down,
    whatever the gateway itself does. Text fields (``string``, ``enum``) carry the id of their
    text (``intern_text``) as their value.
    """

    def __init__(
        self,
        profile: ModbusProfile,
        link: Link,
        unit_id: int,
        now_ns: Callable[[], int],
        state: KeyValueStore | None = None,
        intern_text: Callable[[str], int] | None = None,
    ) -> None:
        self.profile, self.link, self.unit_id, self.now_ns = profile, link, unit_id, now_ns
        self.state, self.intern_text = state, intern_text
        self._state_key = f"modbus/refused/{link.where}/{unit_id}/{profile.name}"
        self.refused: list[tuple[str, int, int]] = self._remembered()
        self.requests = self._apply_refused(
            plan_requests(profile.fields, profile.max_registers_per_request, profile.max_gap)
        )
        self._index = [np.asarray(r.field_index, np.intp) for r in self.requests]
        self._signals = np.arange(len(profile.fields), dtype=np.int32)
        #: Per text field (by index), the ids of the texts it sent (made when it first sends one).
        self._text_ids: dict[int, dict[str, int]] = {}
        self._said: set[str] = set()
        self.last_error: str | None = None
        #: The words (or bits) each read returned in the latest poll, by (table, first address).
        self._last_words: dict[tuple[str, int], np.ndarray] = {}

    @property
    def name(self) -> str:
        return f"modbus://{self.link.where}/{self.unit_id}"

    @property
    def link_generation(self) -> int:
        """Connections the link has made: devices sharing it retry when it changes."""
        return int(getattr(self.link, "generation", 0))

    # -- refused ranges ------------------------------------------------------------------------
    def _remembered(self) -> list[tuple[str, int, int]]:
        raw = self.state.get_state(self._state_key) if self.state is not None else None
        try:
            return [(str(t), int(a), int(c)) for t, a, c in json.loads(raw)] if raw else []
        except (ValueError, TypeError):
            return []

    def _apply_refused(self, requests: list[Request]) -> list[Request]:
        out: list[Request] = []
        todo = list(requests)
        while todo:
            req = todo.pop(0)
            if (req.table, req.address, req.count) in self.refused and len(req.field_index) > 1:
                todo[:0] = self._split(req)
            else:
                out.append(req)
        return out

    def _split(self, req: Request) -> list[Request]:
        """Runs of adjacent fields first; one read per field if ``req`` is already such a run."""
        fields = [self.profile.fields[i] for i in req.field_index]
        runs = plan_requests(fields, self.profile.max_registers_per_request, max_gap=0)
        if len(runs) > 1:
            for run in runs:
                run.field_index = [req.field_index[i] for i in run.field_index]
            return runs
        return split_request(req, self.profile.fields)

    def _refuse(self, req: Request, reply: ReadReply) -> list[Request]:
        where = (req.table, req.address, req.count)
        self.refused.append(where)
        if self.state is not None:
            self.state.put_state(self._state_key, json.dumps(self.refused))
        parts = self._split(req)
        log.warning(
            "%s: %s answered %s; reading its %d fields as %d smaller reads from now on (remembered in the "
            "local store). Hint: if the device has unmapped registers between fields, set max_gap: 0 in "
            "profile %r.",
            self.name,
            span(*where),
            reply.exception_name,
            len(req.field_index),
            len(parts),
            self.profile.name,
        )
        i = self.requests.index(req)
        self.requests[i : i + 1] = parts
        self._index[i : i + 1] = [np.asarray(r.field_index, np.intp) for r in parts]
        return parts

    # -- polling ---------------------------------------------------------------------------------
    @property
    def bounds_its_waits(self) -> bool:
        """Whether every wait of a poll is bounded by the link itself (the poller then adds none)."""
        return bool(getattr(self.link, "bounds_its_waits", False))

    async def connect(self) -> None:
        await self.link.connect()

    async def collect(self) -> Batch:
        n = len(self.profile.fields)
        values = np.full(n, np.nan)
        quality = np.zeros(n, np.uint8)
        errors: list[str] = []
        todo: list[tuple[Request, np.ndarray]] = []
        for req, index in list(zip(self.requests, self._index, strict=True)):  # a refusal edits the plan
            todo += await self._read(req, index, values, quality, errors)
        while todo:  # the parts of a read refused in this poll
            req, index = todo.pop(0)
            todo[:0] = await self._read(req, index, values, quality, errors)
        bad_number = ~np.isfinite(values) & (quality == 0)
        quality[bad_number] = QUALITY_BAD_DECODE
        self.last_error = "; ".join(errors) or None
        return Batch(np.full(n, self.now_ns(), np.int64), self._signals, values, quality)

    async def _read(
        self, req: Request, index: np.ndarray, values: np.ndarray, quality: np.ndarray, errors: list[str]
    ) -> list[tuple[Request, np.ndarray]]:
        """One read into ``values``; the smaller reads to make instead if the device refused it."""
        reply = await self.link.read(req.table, req.address, req.count, self.unit_id)
        words = reply.words
        if words is None:
            if reply.exception in UNIT_DOWN:
                raise DeviceUnreachable(
                    f"unit {self.unit_id} behind {self.link.where}: {reply.exception_name}", link_ok=True
                )
            if reply.exception in REFUSED_RANGE and len(req.field_index) > 1:
                return [(part, np.asarray(part.field_index, np.intp)) for part in self._refuse(req, reply)]
            quality[index] = QUALITY_BAD_DEVICE
            errors.append(self._field_error(req, reply.exception_name))
        elif words.shape[0] < req.count:
            quality[index] = QUALITY_BAD_DEVICE
            errors.append(f"{span(req.table, req.address, req.count)}: {words.shape[0]} answered")
        else:
            self._last_words[(req.table, req.address)] = words
            values[index] = req.plan.decode(words)
            if req.plan.text_index:
                self._texts(req, reply, values, quality)
        return []

    def _field_error(self, req: Request, what: str) -> str:
        names = ", ".join(self.profile.fields[i].name for i in req.field_index)
        hint = ""
        if "illegal data address" in what:
            hint = ": the device has no such register; check the address (0-based) in the profile"
        return f"{span(req.table, req.address, req.count)} ({names}): {what}{hint}"

    def _texts(self, req: Request, reply: ReadReply, values: np.ndarray, quality: np.ndarray) -> None:
        assert reply.words is not None
        for k, text in zip(req.plan.text_index, req.plan.texts(reply.words), strict=True):
            i = req.field_index[k]
            ids = self._text_ids.setdefault(i, {})
            code = ids.get(text)
            if code is None and self.intern_text is not None and len(ids) < MAX_TEXTS_PER_FIELD:
                code = ids[text] = self.intern_text(text)
            if code is None:
                quality[i] = QUALITY_BAD_DECODE
                self._say_once(
                    f"texts:{i}",
                    f"{self.name}: field {self.profile.fields[i].name!r} has produced {len(ids)} different texts; "
                    "new ones are marked bad (is it really a text? a number type may be meant)",
                )
                continue
            values[i] = float(code)

    def _say_once(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            log.warning("%s", message)

    def describe(self, index: int) -> str:
        """Where field ``index`` comes from, with the raw words of the latest poll (``--test``)."""
        f = self.profile.fields[index]
        place = span(f.table, f.address, f.width)
        words: list[int] = []
        for (table, first), read in self._last_words.items():
            if table == f.table and first <= f.address and f.address + f.width <= first + read.shape[0]:
                words = [int(w) for w in read[f.address - first : f.address - first + f.width].tolist()]
                break
        if not words:
            return f"{place} unit {self.unit_id}"
        if f.table in ("coil", "discrete"):
            return f"{place} unit {self.unit_id} = {words[0]}"
        shown = " ".join(f"{w:#06x}" for w in words)
        order = f" {f.byte_order}" if f.width > 1 else ""
        return f"{place} unit {self.unit_id} = {shown} ({f.type}{order})"

    def health(self) -> dict[str, Any]:
        return {
            "unit_id": self.unit_id,
            "reads": [span(r.table, r.address, r.count) for r in self.requests],
            "refused": [span(*r) for r in self.refused],
        }

    async def close(self) -> None:
        self.link.close()
