"""Registers the OPC UA collector: profiles with ``protocol: opcua``, endpoints ``opc.tcp://host:port/path``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from edge_agent.collectors import Collector, CollectorContext, CollectorPlugin, DeviceOptions, DeviceSpec, register
from edge_agent.collectors.durations import Duration
from edge_agent.collectors.opcua.profile import OpcUaProfile
from edge_agent.collectors.opcua.security import DEPRECATED, Security


class OpcUaDeviceOptions(DeviceOptions):
    """What ``agent.yaml`` says about one OPC UA device besides the common fields (security:
    :mod:`collectors.opcua.security`)."""

    params: dict[str, str] = Field(default_factory=dict, description="fills {placeholders} in node ids")
    publishing_interval: Annotated[
        Duration, Field(ge=0.01, le=60, description="how often the server sends subscribed changes")
    ] = 0.1
    security: Security = Field(default_factory=Security)
    """how the session is secured"""
    username: str | None = None
    """user to log in as (anonymous when none)"""
    password: str = Field("", description="${VAR} from the environment, or password_file: PATH")
    certificate: str | None = Field(None, description="our certificate (DER); generated when absent")
    private_key: str | None = Field(None, description="its private key (PEM)")
    server_certificate: str | None = Field(
        None, description="pin this server certificate (DER) instead of trusting on first use"
    )


def _make(profile: Any, device: DeviceSpec, context: CollectorContext) -> Collector:
    # asyncua costs ~27 MB of memory: imported only when an OPC UA device is configured.
    from edge_agent.collectors.opcua.client import Access, OpcUaCollector  # noqa: PLC0415

    options = device.options
    assert isinstance(profile, OpcUaProfile)
    assert isinstance(options, OpcUaDeviceOptions)
    access = Access(
        options.security,
        options.username,
        options.password,
        options.certificate,
        options.private_key,
        options.server_certificate,
        Path(context.data_dir) / "pki",
    )
    return OpcUaCollector(
        profile,
        device.endpoint,
        options.params,
        context.now_ns,
        device.timeout,
        options.publishing_interval * 1000,
        access=access,
        deliver=context.deliver,
        count_drop=context.count_drop,
    )


def _check(profile: Any, device: DeviceSpec) -> list[tuple[tuple[str | int, ...], str]]:
    options = device.options
    assert isinstance(profile, OpcUaProfile)
    assert isinstance(options, OpcUaDeviceOptions)
    problems: list[tuple[tuple[str | int, ...], str]] = []
    missing = profile.placeholders() - set(options.params)
    if missing:
        problems.append((("params",), f"profile {profile.name!r} needs params {sorted(missing)}"))
    security = options.security
    if security.mode != "None" and security.policy in DEPRECATED and not security.allow_deprecated:
        problems.append(
            (
                ("security", "policy"),
                f"{security.policy} is deprecated and broken: use Basic256Sha256, Aes128_Sha256_RsaOaep or "
                "Aes256_Sha256_RsaPss, or set security.allow_deprecated: true if the server offers nothing else",
            )
        )
    if (options.certificate is None) != (options.private_key is None):
        problems.append((("certificate",), "give certificate and private_key together (or neither: generated)"))
    if options.password and not options.username:
        problems.append((("password",), "a password needs a username"))
    for key in ("certificate", "private_key", "server_certificate"):
        path = getattr(options, key)
        if path is not None and not Path(path).is_file():
            problems.append(((key,), f"no file {path}: check the path"))
    return problems


register(
    CollectorPlugin(
        protocol="opcua",
        profile_model=OpcUaProfile,
        schemes=("opc.tcp",),
        device_options=OpcUaDeviceOptions,
        factory=_make,
        check_device=_check,
        endpoint_example="opc.tcp://10.0.0.7:4840/path",
    )
)
