"""The analytics checkpoint: open OEE windows and what the analytics learnt, kept across restarts.

On stop the agent writes the OEE engines (open windows, held states, counter baselines, open
stop episodes) and the anomaly scorer (every signal's model, sums and alarms) into the local
store; on start it takes them back when the configuration that shaped them is unchanged (a
fingerprint of the analytics section, the devices' OEE sections and the scored signals), so the
windows continue instead of starting blind. The time the agent was away is an outage: unknown,
and each counter re-baselines at its first reading after it, so the parts made meanwhile count in
no window (they are unattributed).

The checkpoint is a pickle in the agent's own store; it is read only back from that store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.config import LoadedConfig
from edge_agent.store.buffer import Buffer

log = logging.getLogger(__name__)

KEY = "analytics-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    version: int
    fingerprint: str
    #: When it was taken (clock UTC ns): the outage starts here.
    taken_ns: int
    engines: dict[str, Any]
    scorer: Any
    state_code: Any


def fingerprint(loaded: LoadedConfig, signal_keys: list[str]) -> str:
    """What the saved state depends on: analytics settings, machines' OEE sections, scored signals."""
    cfg = loaded.config
    shape = {
        "analytics": cfg.analytics.model_dump(mode="json"),
        "machines": [
            (d.name, d.machine_name, d.poll_interval, None if d.oee is None else d.oee.model_dump(mode="json"))
            for d in cfg.devices
        ],
        "signals": signal_keys,
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()


def save(buffer: Buffer, pipeline: Any, taken_ns: int) -> None:
    """Write the pipeline's analytics state (after its last tick)."""
    point = Checkpoint(
        VERSION,
        pipeline.fingerprint,
        taken_ns,
        pipeline.engines,
        pipeline.anomaly.scorer,
        pipeline._state_code,
    )
    buffer.put_blob(KEY, pickle.dumps(point, protocol=pickle.HIGHEST_PROTOCOL))
    log.info(
        "analytics checkpoint written: %d OEE machines, %d scored signals",
        len(pipeline.machines),
        pipeline.anomaly.scorer.n_signals,
    )


def restore(buffer: Buffer, pipeline: Any) -> bool:
    """Take back the last checkpoint when it fits this configuration; True if it was used."""
    blob = buffer.get_blob(KEY)
    if blob is None:
        return False
    try:
        point = pickle.loads(blob)  # noqa: S301 - our own store, written by save()
    except Exception as exc:  # an older release's checkpoint, a damaged blob: start afresh
        log.warning("analytics checkpoint unreadable (%s): windows and models start afresh", exc)
        return False
    if not isinstance(point, Checkpoint) or point.version != VERSION or point.fingerprint != pipeline.fingerprint:
        log.info("analytics checkpoint is for another configuration: windows and models start afresh")
        return False
    pipeline.engines = point.engines
    pipeline.anomaly.scorer = point.scorer
    pipeline._state_code = point.state_code
    machines = np.arange(len(pipeline.machines), dtype=np.intp)
    for engine in pipeline.engines.values():
        # The time the agent was away is an outage: unknown, counters re-baseline.
        engine.add_states(
            machines, np.full(machines.shape[0], point.taken_ns, np.int64), np.full(machines.shape[0], np.nan)
        )
    log.info("analytics checkpoint restored: open OEE windows and models continue")
    return True
