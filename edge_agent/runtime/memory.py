"""How the agent's process asks the C allocator to give memory back.

The agent's hot path makes short-lived numpy arrays of a few hundred kB to a few MB per tick
and per write, from several threads (the event loop, the tick, one sender per sink). With glibc's
defaults each thread may get its own heap arena, and the threshold above which a block is
mapped (and unmapped when freed) rises to the largest block freed so far, up to 32 MB. Freed
arrays then stay in the arenas: on the Node-RED peer's workload (1,250 signals at 10 ms) the
resident size reached 140-170 MB for about 55 MB of Python, numpy and the store. A fixed map
threshold of 1 MB and two arenas kept it at 105-125 MB in runs side by side with the defaults
(``../shared/peers/edge-agent/run_agent.sh``, 30 s each), for a few percent more CPU (page faults).

Settings given in the environment (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_ARENA_MAX``) win: they
are left as they are. On a C library other than glibc nothing is changed.

Blocks under the threshold (a 50,000-signal row of float64 is 400 kB) stay in the heap when freed,
and the heap keeps the pages of its largest moment. :func:`give_back` returns the free pages
inside the heap (glibc's ``malloc_trim``); the agent calls it once it is built and every
``GIVE_BACK_EVERY_S`` from the tick's thread. Built for 1,000 devices x 50 registers on a new
store, the agent's resident size went from 185 to 169 MB; at that plant shape running, the
periodic call kept the resident size a few MB lower (310-318 against 315-327 MB in two runs of an
earlier build), at no measurable CPU cost. A lower map threshold (128 kB) took it to about 265 MB, for 37 % more
CPU per value (page faults), and is not used.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
from typing import Any

log = logging.getLogger(__name__)

#: mallopt parameters (glibc's malloc.h).
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
#: Blocks at least this large are mapped and returned to the system when freed (bytes).
MMAP_THRESHOLD = 1024 * 1024
#: Heap arenas shared by all threads.
ARENA_MAX = 2
#: How often the tick's thread returns the heap's free pages (s).
GIVE_BACK_EVERY_S = 30.0


def return_freed_memory() -> bool:
    """Fix glibc's map threshold and arena count for this process; True when it was done.

    Call it at start-up, before threads are started (arenas are made per thread on first use).
    """
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    mallopt = _libc_call("mallopt", (ctypes.c_int, ctypes.c_int))
    if mallopt is None:
        return False  # not glibc (musl has no mallopt)
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_ARENA_MAX, ARENA_MAX))
    if not done:
        log.debug("mallopt refused the memory settings; the allocator keeps its defaults")
    return done


def give_back() -> bool:
    """Return the heap's free pages to the system (glibc's ``malloc_trim``); False where there is
    no such call (another C library). Takes a few milliseconds on a heap of a few hundred MB."""
    trim = _libc_call("malloc_trim", (ctypes.c_size_t,))
    return trim is not None and bool(trim(0))


@functools.cache
def _libc_call(name: str, argtypes: tuple[Any, ...]) -> Any:
    """The C library's function ``name`` returning an int (None where there is none), looked up
    once: finding the library runs ``ldconfig``, not to be done every ``GIVE_BACK_EVERY_S``."""
    path = ctypes.util.find_library("c")
    if path is None:
        return None
    try:
        call = getattr(ctypes.CDLL(path), name)
    except (OSError, AttributeError):
        return None
    call.argtypes, call.restype = list(argtypes), ctypes.c_int
    return call
