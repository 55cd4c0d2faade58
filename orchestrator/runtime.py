"""Everything a worker's activities need, opened once per process.

A `Runtime` holds the store, the model registry with one HTTP client per provider, the
router with its live metrics, the project's skills, and the publisher that sends model
answers' deltas to watchers while they stream. Activities get it injected; nothing
reaches for globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.cache.sessions import SessionCache
from orchestrator.connectors.pool import close_connector_pool
from orchestrator.events.publisher import DeltaPublisher
from orchestrator.logs import register_secret
from orchestrator.providers.adapters import ChatProvider, adapter_for
from orchestrator.providers.keys import warn_missing_keys
from orchestrator.providers.registry import (
    ModelEntry,
    ModelRegistry,
    ProviderEntry,
    load_model_registry,
)
from orchestrator.routing.metrics import LiveMetrics
from orchestrator.routing.router import Router
from orchestrator.settings import Settings
from orchestrator.skills.registry import SkillRegistry
from orchestrator.store.store import Store

__all__ = ["Runtime"]


@dataclass
class Runtime:
    """Process-wide dependencies of the session activities."""

    settings: Settings
    store: Store
    models: ModelRegistry
    skills: SkillRegistry
    metrics: LiveMetrics = field(default_factory=LiveMetrics)
    """Latency, errors and cooldowns of each deployment, learnt from this worker's calls."""
    deltas: DeltaPublisher | None = None
    """Where model calls send their deltas (`DeltaPublisher.for_store`); None: nowhere."""
    router: Router = field(init=False)
    _providers: dict[str, ChatProvider] = field(default_factory=dict)
    _cache: SessionCache | None = None

    def __post_init__(self) -> None:
        self.router = Router(self.models, self.metrics)

    @classmethod
    async def open(cls, settings: Settings) -> Runtime:
        """Load the project's models and skills and open (and migrate) the store.

        Raises:
            ConfigError: the models file is missing or invalid.
            SkillDefinitionError: a skill module is invalid.
        """
        models = load_model_registry(settings.resolved_models_file)
        for provider in models.providers.values():
            register_secret(provider.api_key())
        warn_missing_keys(models, settings.resolved_models_file, "worker")
        skills = SkillRegistry.load_directory(settings.project_dir / "skills")
        settings.resolved_state_dir.mkdir(parents=True, exist_ok=True)
        store = await Store.open(settings.resolved_database_url)
        deltas = DeltaPublisher.for_store(store, settings.resolved_state_dir)
        return cls(settings=settings, store=store, models=models, skills=skills, deltas=deltas)

    @property
    def skill_state_dir(self) -> Path:
        """Where skills keep their own state (their effects, for the demo)."""
        path = self.settings.resolved_state_dir / "skills"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def response_cache(self) -> SessionCache:
        """The response cache of the models file (`orchestrator.cache`), made on first use."""
        if self._cache is None:
            self._cache = SessionCache(self.models, self.store)
        return self._cache

    def model(self, name: str) -> tuple[ModelEntry, ChatProvider]:
        """The registry entry of a model and a client for its provider.

        Raises:
            ConfigError: no model has that name.
        """
        _key, entry, provider_entry = self.models.resolve(name)
        return entry, self._provider(entry.provider, provider_entry)

    def _provider(self, name: str, entry: ProviderEntry) -> ChatProvider:
        client = self._providers.get(name)
        if client is None:
            self._providers[name] = client = adapter_for(entry)
        return client

    async def close(self) -> None:
        """Close provider clients, connector servers, the delta publisher and the store."""
        await close_connector_pool()
        if self.deltas is not None:
            await self.deltas.close()
        for client in self._providers.values():
            await client.aclose()
        self._providers.clear()
        if self._cache is not None:
            await self._cache.aclose()
            self._cache = None
        await self.store.close()
