"""``edge-agent config show FILE``: the effective configuration, as the agent will run it.

Every default is filled in (``docker compose config`` and ``nginx -T`` do the same), environment
variables and secret files are substituted, durations are written with their unit, and every
secret (a key that holds one, a URL's password) is ``***``. The output is itself a valid
``agent.yaml`` apart from the secrets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from edge_agent.config import load_config
from edge_agent.secrets import hide_url_password, is_secret_key

HIDDEN = "***"


def hidden(value: Any, key: object = None) -> Any:
    """``value`` with every secret replaced by ``***`` (secret-bearing keys, URL passwords).

    >>> hidden({"sinks": [{"url": "http://u:pw@h:8086", "password": "pw", "token": 7}], "name": "x"})
    {'sinks': [{'url': 'http://u:***@h:8086', 'password': '***', 'token': '***'}], 'name': 'x'}
    """
    if is_secret_key(key) and value not in (None, ""):
        return HIDDEN
    if isinstance(value, dict):
        return {k: hidden(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [hidden(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return hide_url_password(value)
    return value


def show(path: Path) -> str:
    """The effective configuration of ``path`` as YAML (raises ConfigError when it is invalid)."""
    loaded = load_config(path)
    data = hidden(loaded.config.model_dump(mode="json"))
    head = f"# The effective configuration of {path}: every default filled in, secrets hidden.\n"
    return head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)


__all__ = ["hidden", "show"]
