"""The compose file: valid against the Compose specification's schema, and everything it mounts exists.

No Docker engine runs here; the schema comes from the check-jsonschema package, which ships the
compose-spec project's schema (Apache-2.0), loaded at test time.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).parents[2]
COMPOSE = REPO / "docker" / "compose.yaml"


def compose_schema() -> dict[str, object]:
    text = (
        resources.files("check_jsonschema")
        .joinpath("builtin_schemas/vendor/compose-spec.json")
        .read_text(encoding="utf-8")
    )
    return json.loads(text)  # type: ignore[no-any-return]


def test_compose_file_is_valid() -> None:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    jsonschema.validate(document, compose_schema())
    assert set(document["services"]) == {"influxdb", "grafana", "plant", "agent"}


def test_schema_catches_a_broken_compose_file() -> None:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    document["services"]["agent"]["restart_policy"] = "always"
    with pytest.raises(jsonschema.ValidationError, match="restart_policy"):
        jsonschema.validate(document, compose_schema())


def test_mounted_files_and_build_context_exist() -> None:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    for service in document["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{volume}: {source} does not exist"
        build = service.get("build")
        if build:
            assert (COMPOSE.parent / build["context"] / build["dockerfile"]).exists()


def test_dockerfile_runs_as_non_root_with_a_health_check() -> None:
    text = (REPO / "docker" / "Dockerfile").read_text(encoding="utf-8")
    assert "\nUSER edge\n" in text and "HEALTHCHECK" in text and "slim" in text
    for copied in ("pyproject.toml", "collectors", "analytics", "edge_agent"):
        assert f"COPY {copied}" in text
