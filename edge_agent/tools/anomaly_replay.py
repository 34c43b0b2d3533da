"""``edge-agent anomaly replay``: score recorded signals exactly as the running agent would."""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import numpy as np
from pydantic import ValidationError

from edge_agent.analytics.anomaly import AnomalyScorer
from edge_agent.config.anomaly import AnomalyBase, anomaly_section_model, anomaly_settings, unknown_signal_keys
from edge_agent.config.renamed import rename_anomaly_keys
from edge_agent.config.types import FROM_FILE
from edge_agent.config.yaml_source import ConfigError, load_yaml, validation_problems
from edge_agent.tools.signals_csv import read_signals, time_zone


def load_section(path: Path | None) -> AnomalyBase:
    """The ``anomaly:`` settings from a file holding that section alone (defaults without one)."""
    model = anomaly_section_model()
    if path is None:
        return model()
    doc = load_yaml(path)
    data = doc.data or {}
    for warning in rename_anomaly_keys(doc, data, ()):
        print(f"warning: {warning}", file=sys.stderr)
    try:
        return model.model_validate(data, context=FROM_FILE)
    except ValidationError as exc:
        raise ConfigError(validation_problems(doc, exc)) from None


def replay(
    csv_path: Path,
    config: Path | None,
    out: TextIO = sys.stdout,
    timezone: str | None = None,
    ignore: Sequence[str] = (),
) -> int:
    """Print ``time``, each signal's ``S_score`` and ``S_alarm`` (1 on every row while its alarm is
    active), then ``_machine_score`` (the columns scored together as one machine: 1 at its threshold)
    and ``_machine_alarm`` (1 while the machine is abnormal: its score in alarm, or any signal)."""
    section = load_section(config)
    table = read_signals(csv_path, time_zone(timezone), ignore)
    unknown = unknown_signal_keys(section, set(table.names))
    if unknown:
        raise ConfigError([f"{config}: signals {unknown} are not columns of {csv_path} (it has {table.names})"])
    n = len(table.names)
    settings = anomaly_settings(section, table.names)
    scorer = AnomalyScorer(n, settings, machines=np.zeros(n, np.intp))
    ts = np.repeat(table.ts[:, None], n, axis=1)
    scores, flags, _ = scorer.update(table.values, ts)
    machine = scorer.last_machines
    writer = csv.writer(out, lineterminator="\n")
    header = ["time", *[f"{name}_{part}" for name in table.names for part in ("score", "alarm")]]
    if scorer.n_machines:
        header += ["_machine_score", "_machine_alarm"]
    writer.writerow(header)
    for i, time_text in enumerate(table.time_text):
        cells: list[str] = [time_text]
        for c in range(n):
            s = scores[i, c]
            cells += ["" if np.isnan(s) else f"{s:.4f}", str(int(flags[i, c]))]
        if scorer.n_machines:
            cells += [f"{machine.scores[i, 0]:.4f}", str(int(machine.incident[i, 0]))]
        writer.writerow(cells)
    return 0


def params(out: TextIO | None = None) -> int:
    """Print every registered detector's parameters (``anomaly: <detector>: {...}``), default set first."""
    out = out or sys.stdout
    from edge_agent.analytics.detectors import DEFAULT_SET, REGISTRY  # noqa: PLC0415

    for name in sorted(REGISTRY, key=lambda n: (n not in DEFAULT_SET and n != "forecast", n)):
        cls = REGISTRY[name]
        where = "default set" if name in DEFAULT_SET else "shared model" if name == "forecast" else "optional"
        out.write(f"{name} ({where})\n")
        for key, p in cls.params.items():
            bounds = [
                f"{op} {v:g}" for op, v in ((">", p.gt), (">=", p.ge), ("<", p.lt), ("<=", p.le)) if v is not None
            ]
            kind = "whole number" if p.integer else "number"
            scope = "" if p.per_signal else "; one value for all signals"
            detail = ", ".join([kind, *bounds])
            out.write(f"  {key}: {p.default}  ({detail}{scope}) {p.doc}\n")
    return 0
