"""The skill catalog over HTTP, read-only: a Starlette app to mount on the API process.

```python
Mount("/skills", app=catalog_app(registry))
```

`GET /` is the whole catalog; `GET /{ref}` is the contract a reference such as
`payments.refund@^1.0` resolves to, or 404 with the reason.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orchestrator.exceptions import UnknownSkillError
from orchestrator.skills.catalog import catalog, describe
from orchestrator.skills.registry import SkillRegistry

__all__ = ["catalog_app"]


def catalog_app(registry: SkillRegistry) -> Starlette:
    """The catalog of `registry` as JSON endpoints."""

    async def index(request: Request) -> Response:
        registry.refresh()  # synced contracts written since the process started
        return JSONResponse(catalog(registry))

    async def show(request: Request) -> Response:
        ref = str(request.path_params["ref"])
        registry.refresh()
        try:
            spec = registry.resolve(ref).spec
        except UnknownSkillError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse(describe(spec))

    return Starlette(routes=[Route("/", index), Route("/{ref}", show)])
