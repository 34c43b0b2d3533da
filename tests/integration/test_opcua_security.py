"""OPC UA security against asyncua's server on loopback, offering only SignAndEncrypt with
Basic256Sha256 and user names: the agent connects as configured (its certificate generated on
first start, the server's trusted on first use and pinned), refuses a weaker or absent endpoint
with the offers listed, refuses a changed server certificate naming both fingerprints, reports a
namespace the server lacks with the ones it has, and never shows the password."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from asyncua import Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager
from cryptography.x509.oid import ExtendedKeyUsageOID

from edge_agent.collectors.opcua.client import OpcUaCollector
from edge_agent.collectors.opcua.plugin import OpcUaDeviceOptions
from edge_agent.collectors.opcua.security import UntrustedServer
from edge_agent.collectors.plugin import CollectorContext, DeviceSpec, plugins
from edge_agent.config import load_profile
from tests.influx_server import free_port

NAMESPACE = "urn:test:secure-plant"
PASSWORD = "Opc-Secret-4417"  # noqa: S105 - a test secret to search for
PROFILE = f"""\
name: secure-cnc
protocol: opcua
nodes:
  - {{name: temp, node: "nsu={NAMESPACE};s=M1.Temp", unit: degC}}
  - {{name: parts, node: "nsu={NAMESPACE};s=M1.Parts", kind: counter}}
"""


class Operators(UserManager):
    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> User | None:
        return User(role=UserRole.User) if (username, password) == ("operator", PASSWORD) else None


async def server_certificate(folder: Path, name: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a test's set-up
    cert, key = folder / f"{name}.der", folder / f"{name}.pem"
    await setup_self_signed_certificate(
        key, cert, "urn:test:server", "127.0.0.1", [ExtendedKeyUsageOID.SERVER_AUTH], {"commonName": name}
    )
    return cert, key


async def secure_server(port: int, cert: Path, key: Path, policies: list[Any] | None = None) -> Server:
    """A server taking user names on ``policies`` (SignAndEncrypt with Basic256Sha256 by default)."""
    server = Server(user_manager=Operators())
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/secure")
    server.set_security_policy(policies or [ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
    server.set_security_IDs(["Username"])
    await server.load_certificate(str(cert))
    await server.load_private_key(str(key))
    ns = await server.register_namespace(NAMESPACE)
    machine = await server.nodes.objects.add_object(ua.NodeId("M1", ns), ua.QualifiedName("M1", ns))
    await machine.add_variable(ua.NodeId("M1.Temp", ns), ua.QualifiedName("Temp", ns), 21.5)
    await machine.add_variable(
        ua.NodeId("M1.Parts", ns), ua.QualifiedName("Parts", ns), ua.Variant(3_000_000_000, ua.VariantType.UInt32)
    )
    await server.start()
    return server


def collector(tmp_path: Path, port: int, profile_text: str = PROFILE, **options: Any) -> OpcUaCollector:
    (tmp_path / "secure.yaml").write_text(profile_text, encoding="utf-8")
    profile = load_profile(tmp_path / "secure.yaml")
    opts = OpcUaDeviceOptions.model_validate(options)
    spec = DeviceSpec("cnc", f"opc.tcp://127.0.0.1:{port}/secure", 1.0, 5.0, opts)
    context = CollectorContext(now_ns=time.time_ns, data_dir=str(tmp_path / "data"))
    made = plugins()["opcua"].factory(profile, spec, context)
    assert isinstance(made, OpcUaCollector)
    return made


SECURE = {
    "security": {"mode": "SignAndEncrypt", "policy": "Basic256Sha256"},
    "username": "operator",
    "password": PASSWORD,
}


def test_sign_and_encrypt_with_a_user_connects_and_pins_the_server(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()

    async def body() -> None:
        cert, key = await server_certificate(tmp_path / "server", "first")
        server = await secure_server(port, cert, key)
        try:
            c = collector(tmp_path, port, **SECURE)
            with caplog.at_level(logging.INFO):
                await c.connect()
                batch = await c.collect()
            assert batch.value.tolist() == [21.5, 3_000_000_000.0]
            assert batch.quality.tolist() == [0, 0]
            await c.close()
            assert (tmp_path / "data" / "pki" / "own" / "cert.der").is_file()
            assert (tmp_path / "data" / "pki" / "own" / "key.pem").stat().st_mode & 0o077 == 0
            (pinned,) = (tmp_path / "data" / "pki" / "trusted").iterdir()
            assert pinned.read_bytes() == cert.read_bytes()
            assert any("trusting the server's certificate on first use" in r.getMessage() for r in caplog.records)
            # A weaker configuration is refused, with what the server offers.
            weak = collector(tmp_path, port, username="operator", password=PASSWORD)
            with pytest.raises(
                UntrustedServer,
                match=r"security \{mode: None\}; it offers \{mode: SignAndEncrypt, policy: Basic256Sha256\}",
            ):
                await weak.connect()
            # A wrong password is refused; the message never holds a password.
            wrong = collector(tmp_path, port, **{**SECURE, "password": "not-" + PASSWORD})
            with pytest.raises(ConnectionError) as info:
                await wrong.connect()
            assert PASSWORD not in str(info.value)
            # A namespace the server lacks is named, with the ones it has.
            typo = collector(
                tmp_path, port, PROFILE.replace(NAMESPACE + ";s=M1.Parts", NAMESPACE + "x;s=M1.Parts"), **SECURE
            )
            with pytest.raises(LookupError, match=rf"no namespace '{NAMESPACE}x'; it has .*'{NAMESPACE}'"):
                await typo.connect()
        finally:
            await server.stop()
        # The server comes back with another certificate: refused, both fingerprints named.
        other_cert, other_key = await server_certificate(tmp_path / "server", "second")
        server = await secure_server(port, other_cert, other_key)
        try:
            c = collector(tmp_path, port, **SECURE)
            with pytest.raises(
                UntrustedServer, match=r"certificate changed: pinned SHA-256 [0-9A-F:]{95}, now [0-9A-F:]{95}"
            ):
                await c.connect()
        finally:
            await server.stop()
        assert all(PASSWORD not in r.getMessage() for r in caplog.records)

    asyncio.run(body())


def test_credentials_in_the_url_are_taken_out_of_it(tmp_path: Path) -> None:
    (tmp_path / "secure.yaml").write_text(PROFILE, encoding="utf-8")
    profile = load_profile(tmp_path / "secure.yaml")
    c = OpcUaCollector(profile, f"opc.tcp://operator:{PASSWORD}@127.0.0.1:4840/x", {}, time.time_ns)
    assert c.name == "opc.tcp://127.0.0.1:4840/x"
    assert (c.access.username, c.access.password) == ("operator", PASSWORD)
    assert PASSWORD not in repr(c.access)


def test_a_password_over_an_open_endpoint_is_refused_in_clear_text_unless_allowed(tmp_path: Path) -> None:
    """Security mode None, and a user-name token policy that does not encrypt: refused, naming the
    fix, the password never in the message; accepted with allow_plaintext_password."""
    port = free_port()

    async def body() -> None:
        cert, key = await server_certificate(tmp_path / "server", "open")
        server = await secure_server(port, cert, key, [ua.SecurityPolicyType.NoSecurity])
        try:
            (token,) = [t for t in await _offers(port) if int(t.TokenType) == 1]
            assert token.SecurityPolicyUri.endswith("#None")
            refused = collector(tmp_path, port, username="operator", password=PASSWORD)
            with pytest.raises(UntrustedServer, match="clear text") as info:
                await refused.connect()
            assert PASSWORD not in str(info.value)
            allowed = collector(
                tmp_path,
                port,
                username="operator",
                password=PASSWORD,
                security={"mode": "None", "allow_plaintext_password": True},
            )
            await allowed.connect()
            assert (await allowed.collect()).value.tolist() == [21.5, 3_000_000_000.0]
            await allowed.close()
        finally:
            await server.stop()

    asyncio.run(asyncio.wait_for(body(), 120))


def test_a_password_over_an_open_endpoint_travels_encrypted_when_the_token_policy_says_so(tmp_path: Path) -> None:
    """The server encrypts user-name tokens on its open endpoint (Basic256Sha256): the agent
    encrypts the password with the server's certificate, pinned on first use, and logs in."""
    port = free_port()

    async def body() -> None:
        cert, key = await server_certificate(tmp_path / "server", "open")
        policies = [ua.SecurityPolicyType.NoSecurity, ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt]
        server = await secure_server(port, cert, key, policies)
        try:
            tokens = [t for t in await _offers(port) if int(t.TokenType) == 1]
            assert any(t.SecurityPolicyUri.endswith("#Basic256Sha256") for t in tokens)
            c = collector(tmp_path, port, username="operator", password=PASSWORD)
            await c.connect()
            assert (await c.collect()).value.tolist() == [21.5, 3_000_000_000.0]
            await c.close()
            (pinned,) = (tmp_path / "data" / "pki" / "trusted").iterdir()
            assert pinned.read_bytes() == cert.read_bytes()
            wrong = collector(tmp_path, port, username="operator", password="not-" + PASSWORD)
            with pytest.raises(ConnectionError):
                await wrong.connect()
        finally:
            await server.stop()

    asyncio.run(asyncio.wait_for(body(), 120))


async def _offers(port: int) -> list[Any]:
    from asyncua import Client  # noqa: PLC0415

    probe = Client(f"opc.tcp://127.0.0.1:{port}/secure", timeout=5)
    endpoints = await probe.connect_and_get_server_endpoints()
    return [t for e in endpoints if int(e.SecurityMode) == 1 for t in e.UserIdentityTokens]
