"""Every provider kind of `models.yaml` has one adapter, and every adapter keeps `Model`."""

from __future__ import annotations

import typing

from orchestrator.providers.adapters import ADAPTERS, Model, adapter_for
from orchestrator.providers.registry import ProviderEntry


def test_each_kind_of_the_models_file_has_one_adapter() -> None:
    kinds = typing.get_args(ProviderEntry.model_fields["kind"].annotation)
    assert set(kinds) == set(ADAPTERS)


async def test_every_adapter_keeps_the_model_contract() -> None:
    for kind in ADAPTERS:
        adapter = adapter_for(ProviderEntry(kind=kind, base_url="http://127.0.0.1:9/v1"))
        try:
            assert isinstance(adapter, Model), kind
        finally:
            await adapter.aclose()
    assert not isinstance(object(), Model)
