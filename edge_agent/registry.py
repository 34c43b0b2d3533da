"""Plugins of every kind (protocols, sinks, detectors, commands): one small registry helper.

A plugin module registers its plugin with one call, ``REGISTRY.register(plugin)``, the same way
whether it ships inside this package or in a pip package of its own (Telegraf's ``inputs.Add``,
benthos-umh's registration call). The agent finds the modules through Python entry points, one
group per kind (``edge_agent.collectors``, ``edge_agent.sinks``, ``edge_agent.detectors``,
``edge_agent.commands``); the built-in plugins are declared in this project's ``pyproject.toml``
like any other. An entry point names either the module that registers (``pkg.module``) or the
plugin object itself (``pkg.module:PLUGIN``), which is then registered for it.

The registry is a read-only mapping from name to plugin; the entry points are loaded on the first
read, once. A plugin whose module fails to import is reported (:attr:`Registry.broken`, and by name
when it is asked for), never fatal for the others. This module imports nothing of the agent: the
collectors and the analytics use it too.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Greeter:
...     name: str
>>> greeters = Registry("greeter", "edge_agent.doctest.greeters", lambda g: g.name)
>>> hello = greeters.register(Greeter("hello"))
>>> sorted(greeters), greeters["hello"] is hello
(['hello'], True)
>>> greeters.require("bye")
Traceback (most recent call last):
...
LookupError: unknown greeter 'bye': known are hello
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Plugins of one ``kind``, by name; their modules are found through entry point ``group``.

    ``name_of`` gives a plugin's name; ``check(plugin, registered)`` may refuse a plugin that
    clashes with those registered (raise ValueError).
    """

    def __init__(
        self,
        kind: str,
        group: str,
        name_of: Callable[[T], str],
        check: Callable[[T, Mapping[str, T]], None] | None = None,
    ) -> None:
        self.kind, self.group, self.name_of, self.check = kind, group, name_of, check
        self._plugins: dict[str, T] = {}
        self._lock = threading.RLock()
        self._loaded = False
        #: Entry points whose module failed to load: name -> the error, in one line.
        self.broken: dict[str, str] = {}

    def register(self, plugin: T) -> T:
        """Add ``plugin`` (a second one of the same name replaces the first); returns it, so it
        also serves as a class decorator."""
        name = self.name_of(plugin)
        if not name:
            raise ValueError(f"a {self.kind} needs a name")
        with self._lock:
            if self.check is not None:
                self.check(plugin, {k: v for k, v in self._plugins.items() if k != name})
            self._plugins[name] = plugin
        return plugin

    def unregister(self, name: str) -> None:
        with self._lock:
            self._plugins.pop(name, None)

    def _all(self) -> dict[str, T]:
        with self._lock:
            if not self._loaded:
                self._loaded = True
                self._load_entry_points()
            return dict(self._plugins)

    def _load_entry_points(self) -> None:
        for entry in importlib.metadata.entry_points(group=self.group):
            try:
                loaded = entry.load()
            except Exception as exc:  # one broken package must not take the others down
                self.broken[entry.name] = f"{entry.value}: {exc.__class__.__name__}: {exc}"
                log.warning("%s %r (entry point %s) did not load: %s", self.kind, entry.name, entry.value, exc)
                continue
            if not isinstance(loaded, types.ModuleType) and loaded not in self._plugins.values():
                self.register(loaded)

    def __getitem__(self, name: str) -> T:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def require(self, name: str) -> T:
        """The plugin ``name``, or a LookupError that says what is known (and what failed to load)."""
        found = self._all().get(name)
        if found is not None:
            return found
        if name in self.broken:
            raise LookupError(f"{self.kind} {name!r} is installed but did not load: {self.broken[name]}")
        known = ", ".join(sorted(self._all())) or "none"
        raise LookupError(f"unknown {self.kind} {name!r}: known are {known}")


__all__ = ["Registry"]
