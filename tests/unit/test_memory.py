"""The allocator settings the agent makes at start-up (glibc's mallopt)."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys

import pytest

CODE = "from edge_agent.runtime.memory import return_freed_memory as r; print(r())"


@pytest.mark.skipif(ctypes.util.find_library("c") is None, reason="no C library to ask")
def test_the_settings_are_made_unless_the_environment_gives_its_own() -> None:
    made = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    assert made.stdout.strip() == "True"
    env = {"MALLOC_ARENA_MAX": "4", "PATH": "/usr/bin:/bin", "PYTHONPATH": "."}
    left = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True, env=env)
    assert left.stdout.strip() == "False"
