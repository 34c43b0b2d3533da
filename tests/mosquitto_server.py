"""A real Mosquitto broker on free loopback ports: plain (with a password file and an ACL) and
TLS (a CA and a server certificate made for the test), and a subscriber that keeps every
message it receives."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.influx_server import free_port

USERS = {"edge": "edge-pw-1", "reader": "reader-pw-2"}
#: edge may publish under plant/ and read it; reader reads everything.
ACL = """user edge
topic readwrite plant/#

user reader
topic read #
"""


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 signed by it: (ca.pem, server.pem, server.key)."""
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edge-agent test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


class Mosquitto:
    """Debian's mosquitto with its own config, password file, ACL and TLS listener."""

    def __init__(self, root: Path, persistence: bool = False) -> None:
        """``persistence``: sessions and their queued messages survive a restart of the broker."""
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        if not Path(binary).exists():
            raise RuntimeError("mosquitto is not installed: run 'make servers' (or apt-get install mosquitto)")
        self.binary, self.root = binary, root
        self.port, self.tls_port = free_port(), free_port()
        self.ca, cert, key = make_certificates(root)
        passwords = root / "passwords"
        passwords.touch()
        for user, password in USERS.items():
            subprocess.run([passwd, "-b", str(passwords), user, password], check=True, capture_output=True)
        (root / "acl").write_text(ACL, encoding="utf-8")
        run_as = "user root\n" if os.geteuid() == 0 else ""
        self.config = root / "mosquitto.conf"
        self.config.write_text(
            f"""{run_as}per_listener_settings false
allow_anonymous false
password_file {passwords}
acl_file {root / "acl"}
{"persistence true" if persistence else "persistence false"}
persistence_location {root}/
autosave_interval 1
# The test subscriber may be away (reconnecting) while a backlog is sent: queue all for it.
max_queued_messages 0
log_dest stderr
log_type error
log_type warning
listener {self.port} 127.0.0.1
listener {self.tls_port} 127.0.0.1
cafile {self.ca}
certfile {cert}
keyfile {key}
""",
            encoding="utf-8",
        )
        for path in (passwords, root / "acl", key):
            path.chmod(0o600)
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root / "mosquitto.log"

    def start(self, timeout_s: float = 60.0) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text(encoding="utf-8")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)  # polling readiness
        raise AssertionError(f"mosquitto did not listen within {timeout_s} s: {self.log.read_text(encoding='utf-8')}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        self.process = None


@dataclass
class Subscriber:
    """An independent paho client subscribed to a filter, keeping (topic, payload) pairs."""

    broker: Mosquitto
    topic: str = "#"
    #: A persistent session (3.1.1, clean_session false): what is published while this subscriber
    #: is away (the broker restarting) is kept for it.
    persistent: bool = False
    received: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    client: Any = None

    def start(self) -> Subscriber:
        from paho.mqtt import client as mqtt  # noqa: PLC0415
        from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

        subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-reader-{self.topic.replace('/', '-').replace('#', 'all').replace('+', 'any')}",
            clean_session=not self.persistent,
        )
        self.client.username_pw_set("reader", USERS["reader"])

        def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
            client.subscribe(self.topic, qos=1)

        def on_subscribe(*args: Any) -> None:
            subscribed.set()

        def on_message(client: Any, userdata: Any, message: Any) -> None:
            with self.lock:
                self.received.append((message.topic, message.payload))

        self.client.on_connect, self.client.on_subscribe, self.client.on_message = on_connect, on_subscribe, on_message
        self.client.connect("127.0.0.1", self.broker.port)
        self.client.loop_start()
        assert subscribed.wait(30), "the test subscriber could not subscribe"
        return self

    def messages(self) -> list[tuple[str, bytes]]:
        with self.lock:
            return list(self.received)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
