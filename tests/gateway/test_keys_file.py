"""The keys file: hashed tokens, validated with errors that name the field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REPO

import orchestrator.gateway
from orchestrator.audit import build_inventory
from orchestrator.exceptions import ConfigError
from orchestrator.gateway import GatewayKeys
from orchestrator.settings import Settings


def test_public_api_is_exactly_exported() -> None:
    assert sorted(orchestrator.gateway.__all__) == [
        "AUTO",
        "Boundary",
        "Gateway",
        "GatewayKey",
        "GatewayKeys",
        "GatewaySettings",
        "SESSION_HEADERS",
        "gateway_app",
        "gateway_routes",
        "identify",
        "in_tool_loop",
    ]


def test_example_file_loads_and_finds_its_demo_token() -> None:
    keys = GatewayKeys.load(REPO / "gateway_keys.example.yaml")
    key = keys.find("sk-gw-readme-demo")
    assert key is not None and (key.id, key.tenant) == ("readme-demo", "acme")
    assert keys.find("sk-gw-other") is None


def test_bad_file_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "gateway_keys.yaml"
    path.write_text("keys:\n  - id: a\n    token_sha256: plain-token\n")
    with pytest.raises(
        ConfigError,
        match=r"gateway_keys.yaml: line 3, column 19: keys.0.token_sha256: String should",
    ):
        GatewayKeys.load(path)
    digest = "0" * 64
    path.write_text(
        f"keys:\n  - {{id: a, token_sha256: '{digest}'}}\n  - {{id: a, token_sha256: '{digest}'}}\n"
    )
    with pytest.raises(ConfigError, match="id 'a' appears twice"):
        GatewayKeys.load(path)


def test_inventory_lists_the_gateway_keys(tmp_path: Path) -> None:
    shutil.copy(REPO / "models.yaml", tmp_path / "models.yaml")
    shutil.copy(REPO / "gateway_keys.example.yaml", tmp_path / "gateway_keys.yaml")
    assets = build_inventory(Settings(project_dir=tmp_path, state_dir=tmp_path / "state"))
    [key] = [a for a in assets if a.kind == "gateway_key"]
    assert (key.name, key.owner) == ("readme-demo", "acme/support")
    assert key.details["budgets"] == "day: $5.0"
    assert key.details["rate_limit"] == "600 rpm, 2000000 tpm"
