"""Subcommands that plugins add to ``edge-agent`` (the demo workshop adds ``demo`` and ``plant``).

A command is a name, a one-line help, a function that declares its arguments and one that runs it
(returning the exit code). Its module registers it with :func:`register` and is named by an entry
point of the group ``edge_agent.commands``, like every other plugin (:mod:`edge_agent.registry`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.registry import Registry


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


#: Every command a plugin adds, by name.
COMMANDS: Registry[Command] = Registry("command", "edge_agent.commands", lambda c: c.name)


def register(command: Command) -> Command:
    return COMMANDS.register(command)


__all__ = ["COMMANDS", "Command", "register"]
