"""Secrets in ``agent.yaml``: ``${VAR}`` from the environment, ``*_file`` options, and redaction.

* ``${VAR}`` (or ``${VAR:-default}``) anywhere in a string value is replaced by the environment
  variable; a missing variable without a default is a config error naming the line. ``$${`` is a
  literal ``${``.
* ``password_file: PATH`` and ``token_file: PATH`` (any ``<key>_file`` whose key holds a secret)
  read the secret from a file, which must not be readable by group or others (``chmod 600``);
  trailing newlines are dropped. Files that Docker (``/run/secrets/``) and systemd
  (``$CREDENTIALS_DIRECTORY``, ``LoadCredential=``) hand over are taken as they come: those
  folders belong to the container or the service alone, whatever the files' modes (Docker's are
  0444 and owned by root).
* Every secret value met while loading (keys ``password``, ``token``, ``secret``, ``*_password``,
  ``*_token``, and the password of a URL's user info) is remembered by :data:`REDACTOR`, which
  the agent applies to every log line, error text and ``/health`` answer.

>>> import os
>>> os.environ["EDGE_DOCTEST_PW"] = "s3cret"
>>> data = {"sinks": [{"password": "${EDGE_DOCTEST_PW}", "url": "http://h:8086"}]}
>>> substitute(data, os.environ)
[]
>>> data["sinks"][0]["password"], REDACTOR.redact("login failed for s3cret")
('s3cret', 'login failed for ***')
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

#: A path into a YAML document (keys and list indexes).
Loc = tuple[str | int, ...]

_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
SECRET_KEYS = frozenset({"password", "token", "secret"})
#: Shorter values are not redacted (they would blank out ordinary words).
MIN_SECRET_LENGTH = 4


def is_secret_key(key: object) -> bool:
    return isinstance(key, str) and (key in SECRET_KEYS or key.endswith(("_password", "_token", "_secret")))


class Redactor:
    """Secret values known to this process, and their removal from text. Any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def add(self, value: str) -> None:
        if len(value) >= MIN_SECRET_LENGTH:
            with self._lock:
                if value not in self._secrets:
                    # Longest first, so a secret that contains another is removed whole.
                    self._secrets = tuple(sorted((*self._secrets, value), key=len, reverse=True))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text


REDACTOR = Redactor()


class RedactingFilter(logging.Filter):
    """Removes known secrets from a log record's message and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = REDACTOR.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = REDACTOR.redact(record.exc_text)
        return True


def install_log_redaction() -> None:
    """Redact secrets on every handler of the root logger (call after configuring logging)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def hide_url_password(text: str) -> str:
    """``text`` (a URL, or something meant to be one) with the password of its user info as ``***``.

    >>> hide_url_password("htp://admin:s3cret@influx:8086/db")
    'htp://admin:***@influx:8086/db'
    """
    return re.sub(r"(://[^/@:\s]*:)[^/@\s]*@", r"\1***@", text)


def substitute(
    data: Any, env: Mapping[str, str], loc: Loc = (), problems: list[tuple[Loc, str]] | None = None
) -> list[tuple[Loc, str]]:
    """Replace ``${VAR}`` in every string of ``data`` (in place); remember secrets. Returns
    ``(location, message)`` of each missing variable."""
    problems = [] if problems is None else problems
    items: list[tuple[Any, Any]] = (
        list(data.items()) if isinstance(data, dict) else list(enumerate(data)) if isinstance(data, list) else []
    )
    for key, value in items:
        here = (*loc, key)
        if isinstance(value, str):
            expanded = data[key] = _expand(value, env, here, problems)
            if is_secret_key(key):
                REDACTOR.add(expanded)
            elif "://" in expanded:
                with contextlib.suppress(ValueError):
                    password = urlsplit(expanded).password
                    if password:
                        REDACTOR.add(password)
        elif is_secret_key(key) and isinstance(value, int | float) and not isinstance(value, bool):
            REDACTOR.add(str(value))  # a numeric password is a secret too (and the model refuses it)
        else:
            substitute(value, env, here, problems)
    return problems


def _expand(value: str, env: Mapping[str, str], loc: Loc, problems: list[tuple[Loc, str]]) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        problems.append((loc, f"environment variable {name} is not set: export it, or write ${{{name}:-default}}"))
        return ""

    return _VAR.sub(one, value)


def read_secret_files(data: Any, base: Path, loc: Loc = ()) -> list[tuple[Loc, str]]:
    """Replace each ``<secret key>_file: PATH`` by ``<secret key>: <file content>`` (in place)."""
    problems: list[tuple[Loc, str]] = []
    if isinstance(data, dict):
        for key in list(data):
            value = data[key]
            if isinstance(key, str) and key.endswith("_file") and is_secret_key(key.removesuffix("_file")):
                target = key.removesuffix("_file")
                if target in data:
                    problems.append(((*loc, key), f"give {target} or {key}, not both"))
                    continue
                secret, problem = _read_secret(base, value, key)
                if problem:
                    problems.append(((*loc, key), problem))
                    continue
                del data[key]
                data[target] = secret
                REDACTOR.add(secret)
            else:
                problems += read_secret_files(value, base, (*loc, key))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            problems += read_secret_files(item, base, (*loc, i))
    return problems


#: Folders whose files a container engine or a service manager hands to this process alone.
HANDED_OVER = ("/run/secrets",)


def _handed_over(path: Path) -> bool:
    """Whether ``path`` lies in Docker's secrets folder or the service's credentials folder."""
    folders = [*HANDED_OVER, os.environ.get("CREDENTIALS_DIRECTORY", "")]
    resolved = path.resolve()
    return any(folder and resolved.is_relative_to(Path(folder).resolve()) for folder in folders)


def read_secret_file(path: Path, option: str) -> str:
    """The secret in ``path`` (a command's ``--token-file``), under the rules of ``*_file`` in
    agent.yaml: readable by its owner only, unless Docker or systemd handed it over.

    Raises ValueError naming ``option``, the file and the fix.
    """
    secret, problem = _read_secret(Path.cwd(), str(path), option)
    if problem:
        raise ValueError(f"{option}: {problem}")
    REDACTOR.add(secret)
    return secret


def _read_secret(base: Path, value: object, key: str) -> tuple[str, str]:
    if not isinstance(value, str) or not value:
        return "", f"{key} is the path of a file holding the secret"
    path = Path(value) if Path(value).is_absolute() else base / value
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return "", f"cannot read {path}: {exc.strerror or exc}: check the path and that the agent's user may read it"
    if mode & (stat.S_IRWXG | stat.S_IRWXO) and os.name == "posix" and not _handed_over(path):
        return "", f"{path} is readable by other users (mode {stat.S_IMODE(mode):o}): run chmod 600 {path}"
    secret = text.rstrip("\r\n")
    if not secret:
        return "", f"{path} is empty: put the secret in it"
    return secret, ""


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
