"""systemd's notification protocol (sd_notify), spoken directly over ``$NOTIFY_SOCKET``.

With ``Type=notify`` the agent says ``READY=1`` once its devices and sinks are set up,
``RELOADING=1`` while it re-reads its configuration, ``STOPPING=1`` when it stops, and, with
``WatchdogSec=``, ``WATCHDOG=1`` every half ``$WATCHDOG_USEC`` from its event loop: a stuck loop
stops the pings and systemd restarts the service. Outside systemd (no ``$NOTIFY_SOCKET``)
every call does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket


def notify(message: str) -> bool:
    """Send ``message`` (``READY=1``, ...) to systemd; False when not under systemd or on failure."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), target)
    except OSError:
        return False
    return True


def watchdog_interval_s() -> float | None:
    """Half the watchdog timeout systemd set for this process (seconds), or None."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6


async def watchdog(stop: asyncio.Event) -> None:
    """Ping systemd's watchdog from the event loop until ``stop`` is set."""
    interval = watchdog_interval_s()
    if interval is None:
        return
    while not stop.is_set():
        notify("WATCHDOG=1")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
