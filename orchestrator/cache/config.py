"""The `cache:` section of the models file: which answers may be served from the cache.

The cache is opt-in per model name: only requests naming one of `models` (an alias or a
deployment, as the client or step wrote it) are looked up and stored, because whether a
remembered answer is good enough is a property of the use, not of the endpoint. Tool
results count as writes unless their tool is listed in `read_only_tools` (plans also
take a skill's own read-only flag), and nothing is cached after a write.

```yaml
cache:
  models: [support-answers]       # names whose answers may be reused; empty: cache off
  ttl_seconds: 3600
  similarity: 0.9                 # cosine of the question embeddings for a semantic hit
  embeddings: embed-small         # a deployment or alias serving /v1/embeddings; none: exact only
  read_only_tools: [get_order]
```
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CacheConfig"]


class CacheConfig(BaseModel):
    """Which names the cache serves, for how long, and how close a paraphrase must be."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: frozenset[str] = frozenset()
    """Aliases or deployments whose answers may be stored and reused; empty: cache off."""
    ttl_seconds: float = Field(default=3600.0, gt=0)
    similarity: float = Field(default=0.9, gt=0, le=1)
    """Least cosine similarity of two questions' embeddings for a semantic hit."""
    embeddings: str | None = None
    """The deployment or alias that embeds questions; None: exact matches only."""
    read_only_tools: frozenset[str] = frozenset()
    """Tools whose results are reads; any other tool result in a conversation is a write."""
    max_candidates: int = Field(default=256, ge=1)
    """Most recent entries of the same context compared for a semantic hit."""

    @property
    def enabled(self) -> bool:
        """Whether any name is cached at all."""
        return bool(self.models)
