"""OPC UA security: the device options, our client certificate, and trust in the server's.

* ``security: {mode: None | Sign | SignAndEncrypt, policy: ...}`` (default ``{mode: None}``).
  Policies Basic256Sha256 (default), Aes128_Sha256_RsaOaep and Aes256_Sha256_RsaPss; the
  deprecated Basic128Rsa15 and Basic256 only with ``allow_deprecated: true``. The agent connects
  to exactly the configured endpoint (mode and policy) or not at all: it never picks a weaker one.
* ``username`` and ``password`` (``${VAR}`` or ``password_file``, see the README); a user name and
  password in the endpoint URL are taken out of it and used the same way. Over ``mode: None`` a
  password is sent only when the server's user-name token policy encrypts it (with the server's
  certificate, pinned as below); a server that would take it in clear text is refused, unless
  ``allow_plaintext_password: true`` says the network is trusted.
* ``certificate`` and ``private_key``: our application instance certificate (DER) and key (PEM).
  When absent, both are generated on first start (RSA 2048, one year, the application URI
  ``urn:<host>:edge-monitor:agent`` the server sees) under ``<data dir>/pki/own/``.
* The server's certificate is trusted on first use: pinned under ``<data dir>/pki/trusted/`` and
  logged once with its SHA-256 fingerprint. A different certificate later is refused, naming both
  fingerprints (delete the pinned file to accept a replaced one). ``server_certificate: FILE``
  pins a given certificate instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from edge_agent.collectors.profile import Strict

log = logging.getLogger(__name__)

Mode = Literal["None", "Sign", "SignAndEncrypt"]
Policy = Literal["Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss", "Basic128Rsa15", "Basic256"]
DEPRECATED = frozenset({"Basic128Rsa15", "Basic256"})
#: Policy URIs (OPC UA Part 7).
POLICY_URI = {
    "None": "http://opcfoundation.org/UA/SecurityPolicy#None",
    "Basic256Sha256": "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256",
    "Aes128_Sha256_RsaOaep": "http://opcfoundation.org/UA/SecurityPolicy#Aes128_Sha256_RsaOaep",
    "Aes256_Sha256_RsaPss": "http://opcfoundation.org/UA/SecurityPolicy#Aes256_Sha256_RsaPss",
    "Basic128Rsa15": "http://opcfoundation.org/UA/SecurityPolicy#Basic128Rsa15",
    "Basic256": "http://opcfoundation.org/UA/SecurityPolicy#Basic256",
}
MODE_CODE = {"None": 1, "Sign": 2, "SignAndEncrypt": 3}


class Security(Strict):
    """How to secure the session with one OPC UA server."""

    mode: Mode = "None"
    """None, Sign or SignAndEncrypt"""
    policy: Policy = "Basic256Sha256"
    """the security policy when mode is not None"""
    allow_deprecated: bool = Field(False, description="permit Basic128Rsa15 and Basic256 (broken, avoid)")
    allow_plaintext_password: bool = Field(
        False, description="mode None: send a password the server does not encrypt (a trusted network only)"
    )


class UntrustedServer(ConnectionError):
    """The server's certificate, endpoints or security do not match what is configured."""


def application_uri() -> str:
    return f"urn:{socket.gethostname()}:edge-monitor:agent"


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, as colon-separated hex pairs."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


async def own_certificate(pki: Path, certificate: str | None, private_key: str | None) -> tuple[Path, Path]:
    """Our certificate and key: the configured ones, or generated once under ``pki/own/``."""
    if certificate and private_key:
        return Path(certificate), Path(private_key)
    from asyncua.crypto.cert_gen import setup_self_signed_certificate  # noqa: PLC0415
    from cryptography.x509.oid import ExtendedKeyUsageOID  # noqa: PLC0415

    own = pki / "own"
    own.mkdir(parents=True, exist_ok=True)
    cert, key = own / "cert.der", own / "key.pem"
    created = not cert.exists()
    old_umask = os.umask(0o077)
    try:
        await setup_self_signed_certificate(
            key,
            cert,
            application_uri(),
            socket.gethostname(),
            [ExtendedKeyUsageOID.CLIENT_AUTH],
            {"commonName": "edge-monitor agent", "organizationName": "edge-monitor"},
        )
    finally:
        os.umask(old_umask)
    key.chmod(0o600)
    if created:
        log.info("OPC UA client certificate created: %s (SHA-256 %s)", cert, fingerprint(cert.read_bytes()))
    return cert, key


def check_server_certificate(pki: Path, where: str, der: bytes, pinned_file: str | None) -> None:
    """Trust on first use (or the configured ``server_certificate``); raise UntrustedServer on a change."""
    if pinned_file:
        expected = Path(pinned_file).read_bytes()
        if expected != der:
            raise UntrustedServer(
                f"{where}: the server's certificate (SHA-256 {fingerprint(der)}) is not the configured "
                f"server_certificate {pinned_file} ({fingerprint(expected)}): refusing to connect"
            )
        return
    trusted = pki / "trusted"
    trusted.mkdir(parents=True, exist_ok=True)
    path = trusted / (re.sub(r"[^A-Za-z0-9.-]+", "_", where) + ".der")
    if not path.exists():
        path.write_bytes(der)
        log.warning(
            "%s: trusting the server's certificate on first use (SHA-256 %s), pinned in %s",
            where,
            fingerprint(der),
            path,
        )
        return
    known = path.read_bytes()
    if known != der:
        raise UntrustedServer(
            f"{where}: the server's certificate changed: pinned SHA-256 {fingerprint(known)}, now "
            f"{fingerprint(der)}; refusing to connect. If the server's certificate was replaced on "
            f"purpose, delete {path} (or set server_certificate:)"
        )


def choose_endpoint(endpoints: list[Any], where: str, security: Security) -> Any:
    """The endpoint with exactly the configured mode and policy (never a weaker one)."""
    want_uri = POLICY_URI["None" if security.mode == "None" else security.policy]
    want_mode = MODE_CODE[security.mode]
    for e in endpoints:
        if int(e.SecurityMode) == want_mode and e.SecurityPolicyUri == want_uri:
            return e
    offers = sorted(
        {
            f"{{mode: {_mode_name(int(e.SecurityMode))}, policy: {e.SecurityPolicyUri.rsplit('#', 1)[-1]}}}"
            for e in endpoints
        }
    )
    wanted = "{mode: None}" if security.mode == "None" else f"{{mode: {security.mode}, policy: {security.policy}}}"
    raise UntrustedServer(
        f"{where} offers no endpoint with security {wanted}; it offers {', '.join(offers) or 'none'}: "
        "set the device's security: to one of those"
    )


def user_token_policy(endpoint: Any) -> Any | None:
    """The endpoint's user-name token policy (None: it takes no user name)."""
    for token in endpoint.UserIdentityTokens or []:
        if int(token.TokenType) == 1:  # UserTokenType.UserName
            return token
    return None


def password_in_clear(endpoint: Any) -> bool | None:
    """Whether a password given on ``endpoint`` (mode None) would travel in clear text; None when
    the endpoint takes no user name at all."""
    token = user_token_policy(endpoint)
    if token is None:
        return None
    uri = token.SecurityPolicyUri or ""
    return uri in ("", POLICY_URI["None"])


def _mode_name(code: int) -> str:
    return {v: k for k, v in MODE_CODE.items()}.get(code, str(code))
