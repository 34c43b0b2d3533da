"""``edge-agent config show FILE``: the effective configuration, as the agent will run it.

Every default is filled in (``docker compose config`` and ``nginx -T`` do the same), environment
variables and secret files are substituted, durations are written with their unit, and every
secret (a key that holds one, a URL's password) is ``***``. The output is itself a valid
``agent.yaml`` apart from the secrets.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from edge_agent.config import load_config
from edge_agent.secrets import hidden


def show(path: Path) -> str:
    """The effective configuration of ``path`` as YAML (raises ConfigError when it is invalid)."""
    loaded = load_config(path)
    data = hidden(loaded.config.model_dump(mode="json"))
    head = f"# The effective configuration of {path}: every default filled in, secrets hidden.\n"
    return head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)


__all__ = ["hidden", "show"]
