"""A response cache that is safe for agents: exact, then semantic, never after a write.

Keyed by tenant, model name, tools, system prompt and conversation (`keys`), stored in
the audit store's database with a TTL (`orchestrator.store.response_cache`), opt-in per
model name in the models file's `cache:` section (`config`); `service` holds lookup and
save, `gateway` the gateway's hook, `sessions` the model-call activity's. Only the
configuration is exported here: the models file (`orchestrator.providers.registry`)
imports it and must not pull in the rest.
"""

from orchestrator.cache.config import CacheConfig

__all__ = ["CacheConfig"]
