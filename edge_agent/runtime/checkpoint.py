"""The analytics checkpoint: open OEE windows and what the analytics learnt, kept across restarts.

On stop the agent writes the OEE engines (open windows, held states, counter baselines, open
stop episodes) and the anomaly scorer (every signal's model, sums and alarms) into the local
store; on start it takes them back when the configuration that shaped them is unchanged (a
fingerprint of the analytics section, the devices' OEE sections and the scored signals), so the
windows continue instead of starting blind. The time the agent was away is an outage: unknown,
and each counter re-baselines at its first reading after it, so the parts made meanwhile count in
no window (they are unattributed).

The agent writes a checkpoint every ``analytics.checkpoint_every`` and at every stop. After a
crash (kill -9, a power cut) it continues from the latest one; OEE windows that the crashed run
had already written after that checkpoint are not written again (the store keeps, with the points,
how far each window grid has been written), so what was right stays right.

The checkpoint is stored in a format that cannot run code when read (:mod:`.state_file`, not
pickle), in the agent's own store.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import numpy as np

from edge_agent.config import LoadedConfig
from edge_agent.runtime import state_file
from edge_agent.store.state import SmallState

log = logging.getLogger(__name__)

KEY = "analytics-checkpoint"
#: Where the store keeps how far each OEE window grid has been written (UTC ns, JSON).
WRITTEN_KEY = "oee-written-until"
VERSION = 3  # 3: the scorer holds conditions and machine scores


def fingerprint(loaded: LoadedConfig, signal_keys: list[str]) -> str:
    """What the saved state depends on: analytics settings, machines' OEE sections, scored signals."""
    cfg = loaded.config
    shape = {
        "analytics": cfg.analytics.model_dump(mode="json", exclude={"checkpoint_every"}),
        "machines": [
            (d.name, d.machine_name, d.poll_interval, None if d.oee is None else d.oee.model_dump(mode="json"))
            for d in cfg.devices
        ],
        "signals": signal_keys,
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()


def save(state: SmallState, pipeline: Any, taken_ns: int) -> None:
    """Write the pipeline's analytics state (in the tick's thread, between two ticks)."""
    point = {
        "version": VERSION,
        "fingerprint": pipeline.fingerprint,
        "taken_ns": int(taken_ns),
        "engines": pipeline.oee.engines,
        "scorer": pipeline.anomaly.scorer,
        "state_code": pipeline.anomaly.state_code,
    }
    state.put_blob(KEY, state_file.dumps(point))
    log.debug(
        "analytics checkpoint written: %d OEE machines, %d scored signals",
        len(pipeline.machines),
        pipeline.anomaly.scorer.n_signals,
    )


def restore(state: SmallState, pipeline: Any) -> bool:
    """Take back the last checkpoint when it fits this configuration; True if it was used."""
    blob = state.get_blob(KEY)
    if blob is None:
        return False
    try:
        point = state_file.loads(blob)
        fits = isinstance(point, dict) and point.get("version") == VERSION
    except state_file.StateFormatError as exc:  # an older release's checkpoint, a damaged blob
        log.warning("analytics checkpoint unreadable (%s): windows and models start afresh", exc)
        return False
    if not fits or point.get("fingerprint") != pipeline.fingerprint:
        log.info("analytics checkpoint is for another configuration: windows and models start afresh")
        return False
    pipeline.oee.engines = point["engines"]
    pipeline.anomaly.scorer = point["scorer"]
    pipeline.anomaly.state_code = point["state_code"]
    taken_ns = int(point["taken_ns"])
    machines = np.arange(len(pipeline.machines), dtype=np.intp)
    for engine in pipeline.oee.engines.values():
        # The time the agent was away is an outage: unknown, counters re-baseline.
        engine.add_states(machines, np.full(machines.shape[0], taken_ns, np.int64), np.full(machines.shape[0], np.nan))
    written = state.get_state(WRITTEN_KEY)
    if written:
        # Windows written after this checkpoint was taken (the run before crashed) stay as written.
        pipeline.oee.written_until = {k: int(v) for k, v in json.loads(written).items()}
        pipeline.oee.keep_written = dict(pipeline.oee.written_until)
    log.info("analytics checkpoint restored: open OEE windows and models continue")
    return True
