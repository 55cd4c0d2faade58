"""The gateway's core: one chat request from key check to answer, with the plans' invariants.

For each request: the key is checked (401) and its model (404, 403); the session is
identified and its pin read from the store; inside an open tool loop the pin answers, at a
safe boundary the router chooses again (keeping the pin when it is close enough); the
request is counted against the key's rate (429) and reserves its worst case in every
budget (402), in one transaction; the deployment is called, retried, and failed over if it
must be; then spend, pin and audit are written, those of concurrent requests together in
one transaction (group commit). The answer goes out once the pin is committed; a served
request that moves no pin commits its audit row and spend just after its answer. The
process keeps no session state, so any number of gateway processes can share a store.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import Connection

from orchestrator.cache import gateway as response_cache
from orchestrator.exceptions import (
    ConfigError,
    ProviderError,
    ProviderHTTPError,
    RoutingError,
    StoreError,
)
from orchestrator.gateway import audit
from orchestrator.gateway.budgets import (
    estimate_input_tokens,
    key_budgets,
    refusal,
    worst_case,
)
from orchestrator.gateway.budgets import holds as budget_holds
from orchestrator.gateway.calls import ChatCall
from orchestrator.gateway.config import GatewaySettings
from orchestrator.gateway.errors import (
    BadRequest,
    Dialect,
    GatewayError,
    ModelNotAllowed,
    Unauthorized,
    UnknownModel,
)
from orchestrator.gateway.http1 import LeanTransport, UpstreamClient
from orchestrator.gateway.keys import ALL_MODELS, GatewayKey, GatewayKeys, token_of
from orchestrator.gateway.metrics import GATEWAY_LATENCY, GATEWAY_REQUESTS, child
from orchestrator.gateway.ratelimit import RateLimiter
from orchestrator.gateway.recovery import Answered, answer
from orchestrator.gateway.relay import Relayed, asks_tools
from orchestrator.gateway.routed import Learned, Task, decision_record, task_by, task_of
from orchestrator.gateway.sessions import (
    Boundary,
    SessionIdentity,
    classify,
    identify,
    identify_by,
    in_tool_loop,
)
from orchestrator.gateway.turns import calls_per_turn, warm_prefix_tokens
from orchestrator.gateway.upstream import Upstreams
from orchestrator.logs import get_logger
from orchestrator.observability.metrics import METRICS, reason_label
from orchestrator.providers.messages import ModelResponse, Usage
from orchestrator.providers.params import asks, unsupported
from orchestrator.providers.registry import ModelRegistry
from orchestrator.providers.streaming import DeltaSink
from orchestrator.providers.usage import cache_counts
from orchestrator.routing.policy import Budget
from orchestrator.routing.router import Router
from orchestrator.routing.types import RouteRequest
from orchestrator.store.budgets import Reservation, Spend
from orchestrator.store.group_commit import GroupCommit, LedgerWrite, PutPin, Write
from orchestrator.store.pins import Phase, Pin
from orchestrator.store.store import Store
from orchestrator.types import JsonObject

__all__ = ["AUTO", "Admitted", "Gateway", "Outcome"]

log = get_logger(__name__)

AUTO = "auto"
"""The model name that lets the routing policy choose among everything the key may use."""

_MAX_KNOWN_TOKENS = 4096
_MAX_POOLS = 4096
_API_NAMES = {
    "openai": "OpenAI chat-completions API",
    "anthropic": "Anthropic Messages API",
    "openai_responses": "OpenAI Responses API",
}
_CLIENT_NAMES: dict[str, dict[str, str]] = {
    "openai": {"strict_tools": "tools[].function.strict"},
    "anthropic": {
        "stop": "stop_sequences",
        "user": "metadata.user_id",
        "parallel_tool_calls": "tool_choice.disable_parallel_tool_use",
        "strict_tools": "tools[].strict",
    },
}
"""`ModelRequest`'s parameter names as each client API spells them, where they differ."""
_PRIVATE_HEADERS = frozenset({"authorization", "x-api-key", "cookie", "proxy-authorization"})


@dataclass(frozen=True)
class Outcome:
    """A served chat request: the answer and what the response headers report."""

    answered: Answered
    session: SessionIdentity
    boundary: str
    request_id: str
    cache: str | None = None
    """`exact` or `semantic` when the response cache answered."""
    later: Callable[[], list[Write]] | None = field(default=None, compare=False)
    """The writes left for after the answer (`Gateway.run(defer=True)`, `Gateway.record`)."""

    def headers(self) -> dict[str, str]:
        """Response headers naming the deployment, the boundary and the session."""
        out = {
            "x-orchestrator-deployment": self.answered.deployment,
            "x-orchestrator-boundary": self.boundary,
            "x-orchestrator-session": self.session.session_id,
            "x-orchestrator-session-source": self.session.source,
            "x-request-id": self.request_id,
        }
        if self.answered.forced_from:
            out["x-orchestrator-failover-from"] = self.answered.forced_from
        if self.cache is not None:
            out["x-orchestrator-cache"] = self.cache
        return out


_PINNED = "pinned: the request continues an open tool loop"

_REFRESH_SHARE = 0.1
"""A pin that only ages is rewritten once a tenth of the idle time has passed, not per call."""


def _worth_writing(
    old: Pin | None, deployment: str, phase: str, now: datetime, idle_seconds: float
) -> bool:
    """Whether a pin must be written: new, moved, changed phase, or aging toward idle.

    `old` is the session's pin; `deployment` answered at `now`, leaving the conversation
    in `phase`.

    Most calls of a loop change nothing but the time; skipping those writes takes a
    database transaction off the request's path while idle detection stays within a tenth
    of its window.
    """
    if old is None or old.deployment != deployment or old.phase != phase:
        return True
    return (now - old.updated_at).total_seconds() > idle_seconds * _REFRESH_SHARE


@dataclass(frozen=True)
class Admitted:
    """A chat request that passed its checks and holds its budget: ready to be sent."""

    key: GatewayKey
    call: ChatCall
    api: Dialect
    session: SessionIdentity
    pin: Pin | None
    boundary: Boundary
    headers: Mapping[str, str]
    """The request's headers as received (the router's copy leaves the credentials out)."""
    task: Task
    pool: list[str]
    """The deployments the key may have answer this request."""
    route: RouteRequest | None
    """What the router was asked; None when the pin answered without asking it (built
    by `Gateway.route_of` should the pinned deployment fail)."""
    first: str
    """The deployment to try first: the pin inside a loop, else the router's choice."""
    reason: str
    routing: JsonObject | None
    """The router's decision as audited (task type, difficulty, learned quality); None
    when the pin answered without asking it."""
    ledger_id: str
    holds: list[Reservation]
    request_id: str
    started: float


class Gateway:
    """Serves chat and embeddings requests for the keys of one keys file.

    Args:
        registry: The models file (deployments, aliases, policies, budgets).
        keys: The virtual keys.
        store: Pins, budgets and audit, shared with other gateway processes.
        settings: Retries, deadlines, idle time.
        router: The router to use; a new one over `registry` when not given.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        keys: GatewayKeys,
        store: Store,
        settings: GatewaySettings | None = None,
        router: Router | None = None,
    ) -> None:
        self.registry = registry
        self.keys = keys
        self.store = store
        self.settings = settings or GatewaySettings()
        self.router = router or Router(registry)
        limits = httpx.Limits(max_connections=1000)
        self._client = UpstreamClient(
            LeanTransport(httpx.AsyncHTTPTransport(limits=limits)), limits=limits
        )
        self.upstreams = Upstreams(registry, self._client)
        self.learned = Learned(self.router, store, self.settings.learning_refresh_seconds)
        self.cache = response_cache.GatewayCache(registry, store, self.upstreams)
        # SQLite has one writer at a time, and a writer that finds the lock taken sleeps
        # in steps of up to 100 ms: queueing this process's writes is far faster.
        self._write_lock = asyncio.Lock() if store.url.startswith("sqlite") else None
        self.limiter = RateLimiter(store, self.writing)
        self.journal = GroupCommit(store, self._write_lock)
        """Pin reads, and each request's pin and audit writes, committed in batches."""
        self._idle = timedelta(seconds=self.settings.cache_idle_seconds)
        self._known_for: GatewayKeys | None = None
        self._known: dict[str, GatewayKey] = {}
        """Tokens found in `_known_for`, each once by digest (`authenticate`)."""
        self._pools_for: tuple[ModelRegistry, GatewayKeys] | None = None
        self._pools: dict[tuple[str, str], list[str]] = {}
        """`pool` of each key id and model name, for `_pools_for`."""
        self._budgets: dict[str, list[tuple[Budget, str]]] = {}
        """`key_budgets` of each key id, for `_pools_for`."""

    def writing(self) -> contextlib.AbstractAsyncContextManager[object]:
        """Where a request's store writes go: one at a time on SQLite, freely elsewhere."""
        return self._write_lock if self._write_lock is not None else contextlib.nullcontext()

    async def aclose(self) -> None:
        """Close the upstream connections; wait for queued writes."""
        await self._client.aclose()
        await self.journal.aclose()

    # ---- keys and models ----------------------------------------------------------------

    def authenticate(self, headers: Mapping[str, str]) -> GatewayKey:
        """The request's key.

        Raises:
            Unauthorized: no token, or one no key has.
        """
        token = token_of(headers)
        if token is None:
            raise Unauthorized("no API key: send Authorization: Bearer <key> or x-api-key: <key>")
        keys = self.keys
        if self._known_for is not keys:
            self._known_for, self._known = keys, {}
        key = self._known.get(token)
        if key is not None:
            return key
        key = keys.find(token)
        if key is None:
            raise Unauthorized("unknown API key: it is not in the gateway's keys file")
        if len(self._known) < _MAX_KNOWN_TOKENS:
            # Found once by digest, in constant time; a token the file does not hold is
            # never kept, so the cache holds no more than the file's keys.
            self._known[token] = key
        return key

    def names_for(self, key: GatewayKey) -> list[str]:
        """Every model name the key may send: `auto`, aliases and deployments."""
        every = [AUTO, *self.registry.aliases, *self.registry.models]
        return [name for name in every if key.may_use(name)]

    def pool(self, key: GatewayKey, requested: str) -> list[str]:
        """The deployments that may answer a request of `key` naming `requested`.

        Worked out once per key and name (the models and keys files do not change under
        a running gateway); refusals are not kept.

        Raises:
            UnknownModel: no alias or deployment has that name.
            ModelNotAllowed: the key may not name it.
        """
        self._files_seen()
        found = self._pools.get((key.id, requested))
        if found is None:
            found = self._pool(key, requested)
            if len(self._pools) < _MAX_POOLS:
                self._pools[(key.id, requested)] = found
        return list(found)

    def _files_seen(self) -> None:
        """Forget what was worked out of the models and keys files if either was replaced."""
        made_for = self._pools_for
        if made_for is None or made_for[0] is not self.registry or made_for[1] is not self.keys:
            self._pools_for, self._pools, self._budgets = (self.registry, self.keys), {}, {}

    def _budgets_of(self, key: GatewayKey) -> list[tuple[Budget, str]]:
        """`key_budgets` of `key`, worked out once."""
        self._files_seen()
        found = self._budgets.get(key.id)
        if found is None:
            found = self._budgets[key.id] = key_budgets(key, self.registry)
        return found

    def _pool(self, key: GatewayKey, requested: str) -> list[str]:
        registry = self.registry
        if (
            requested != AUTO
            and requested not in registry.models
            and requested not in registry.aliases
        ):
            raise UnknownModel(
                f"model {requested!r} does not exist; GET /v1/models lists those this key may use"
            )
        if not key.may_use(requested):
            raise ModelNotAllowed(
                f"key {key.id!r} may not use model {requested!r}"
                f" (it may use: {', '.join(self.names_for(key)) or 'nothing'})"
            )
        if requested != AUTO:
            return self.registry.deployments_for(requested)
        named = [n for n in key.models if n not in (AUTO, ALL_MODELS)]
        if ALL_MODELS in key.models or not named:
            return list(self.registry.models)
        out: list[str] = []
        for name in named:
            try:
                found = self.registry.deployments_for(name)
            except ConfigError:
                continue
            out.extend(d for d in found if d not in out)
        return out

    # ---- chat ---------------------------------------------------------------------------

    async def chat(self, call: ChatCall, headers: Mapping[str, str], api: Dialect) -> Outcome:
        """Answer one chat request whole; the caller renders it in the client's format.

        Raises:
            GatewayError: the request is refused or no deployment could answer it.
        """
        return await self.run(await self.admit(call, headers, api))

    async def admit(self, call: ChatCall, headers: Mapping[str, str], api: Dialect) -> Admitted:
        """Check, identify, route and reserve: everything before the first upstream byte.

        Inside an open tool loop the pin answers: the router's question (a copy of the
        headers, the conversation's estimates, the exclusions) is not built unless the
        pinned deployment fails; nor is the worst case priced for a key without budgets.
        The key's rate admission and its budget holds are one transaction, the last
        step: a request refused before it (a bad header, no deployment) counts against
        no limit, and one refused by a budget is not counted either.

        Raises:
            GatewayError: the request is refused (401, 403, 404, 402, 429, 400).
        """
        started = time.perf_counter()
        key = self.authenticate(headers)
        pool = self.pool(key, call.requested)
        request_id = secrets.token_hex(16)
        now = datetime.now(UTC)
        forward = call.forward
        if forward is not None:
            session = identify_by(headers, lambda: forward.opening, key.tenant)
            pin = await self.journal.read_pin(session.session_id)
            looping = forward.looping
            task = task_by(headers, lambda: forward.prompt)
        else:
            session = identify(headers, call.request.messages, key.tenant, call.user_id)
            pin = await self.journal.read_pin(session.session_id)
            looping = in_tool_loop(call.request.messages, call.previous_response_id)
            task = task_of(headers, call.request.messages)
        boundary = classify(pin, looping, now, self._idle)
        route: RouteRequest | None = None
        if boundary is Boundary.TOOL_LOOP and pin is not None and pin.deployment in pool:
            first, reason = pin.deployment, _PINNED
            routing: JsonObject | None = None
        else:
            route = self._route(key, call, session, boundary, task, pool, headers)
            first, reason, routing = await self._first(route, task, pin, boundary)
        if forward is None or not self.upstreams.forwards(first):
            self._takes(call, api, first, pool)
        ledger_id = f"{session.session_id}#{request_id}"
        budgets = self._budgets_of(key)
        holds: list[Reservation] = []
        if budgets:
            output_tokens = call.request.max_tokens or self.settings.default_max_tokens
            input_tokens = (
                route.expected_input_tokens
                if route is not None
                else estimate_input_tokens(call.request)
            )
            usd = worst_case(self.registry, pool, input_tokens, output_tokens)
            holds = budget_holds(budgets, usd, input_tokens + output_tokens, now)
            async with self.writing():
                await self._reserve(ledger_id, holds, self.limiter.admission(key))
        else:
            await self.limiter.admit(key)
        return Admitted(
            key=key,
            call=call,
            api=api,
            session=session,
            pin=pin,
            boundary=boundary,
            headers=headers,
            task=task,
            pool=pool,
            route=route,
            first=first,
            reason=reason,
            routing=routing,
            ledger_id=ledger_id,
            holds=holds,
            request_id=request_id,
            started=started,
        )

    def _kind(self, deployment: str) -> str:
        registry = self.registry
        return registry.providers[registry.models[deployment].provider].kind

    def _unfit(self, call: ChatCall, deployments: list[str]) -> dict[str, list[str]]:
        """Those of `deployments` whose API lacks a parameter the request sets, and which.

        As `params.unsupported` says; nothing is read of a request without any.
        """
        request = call.request
        if not asks(request):
            return {}
        out: dict[str, list[str]] = {}
        for deployment in deployments:
            names = unsupported(request, self._kind(deployment))
            if names:
                out[deployment] = names
        return out

    def _takes(self, call: ChatCall, api: Dialect, deployment: str, pool: list[str]) -> None:
        """Refuse a request `deployment` cannot be sent without dropping its parameters.

        Raises:
            BadRequest: naming the parameters, the deployment and its API, and the
                deployments of the request's pool that do take them.
        """
        unfit = self._unfit(call, [deployment, *pool])
        names = unfit.get(deployment)
        if not names:
            return
        said = ", ".join(_CLIENT_NAMES[api].get(n, n) for n in names)
        fit = [d for d in pool if d not in unfit]
        instead = (
            f"name a deployment that takes them ({', '.join(fit)})"
            if fit
            else "name a model whose deployment's API takes them"
        )
        raise BadRequest(
            f"deployment {deployment!r} speaks the {_API_NAMES[self._kind(deployment)]},"
            f" which has no equivalent of {said}: {instead}, or send the request without them"
        )

    def _route(
        self,
        key: GatewayKey,
        call: ChatCall,
        session: SessionIdentity,
        boundary: Boundary,
        task: Task,
        pool: list[str],
        headers: Mapping[str, str],
    ) -> RouteRequest:
        """What the router is asked for this request."""
        return RouteRequest(
            session_id=session.session_id,
            tenant=key.tenant,
            team=key.team,
            policy=key.policy,
            name=None if call.requested == AUTO else call.requested,
            step_id="gateway",
            task_type=task.task_type,
            difficulty=task.difficulty,
            prompt=task.prompt,
            tools=len(call.request.tools),
            needs=["tools"] if call.request.tools else [],
            expected_input_tokens=estimate_input_tokens(call.request),
            expected_output_tokens=call.request.max_tokens or self.settings.default_max_tokens,
            expected_calls=calls_per_turn(call.request),
            # A new user turn: the pin served the conversation before it, still warm.
            warm_input_tokens=(
                warm_prefix_tokens(call.request) if boundary is Boundary.USER_TURN else 0
            ),
            headers={k: v for k, v in headers.items() if k not in _PRIVATE_HEADERS},
            boundary=boundary.value,
            exclude={
                **{
                    d: f"key {key.id} may not use it" for d in self.registry.models if d not in pool
                },
                **self._unfit_reasons(call, pool),
            },
        )

    def _unfit_reasons(self, call: ChatCall, pool: list[str]) -> dict[str, str]:
        """Why the router must not choose those of `pool` that cannot take the parameters.

        Only when some other one can: else the first choice is refused by `_takes`, which
        names the parameters and the deployment.
        """
        unfit = self._unfit(call, pool)
        if not unfit or len(unfit) == len(pool):
            return {}
        return {d: f"its API has no equivalent of {', '.join(n)}" for d, n in unfit.items()}

    def route_of(self, a: Admitted) -> RouteRequest:
        """What the router was, or would have been, asked for an admitted request."""
        if a.route is not None:
            return a.route
        return self._route(a.key, a.call, a.session, a.boundary, a.task, a.pool, a.headers)

    async def run(
        self,
        admitted: Admitted,
        on_delta: Callable[[str], DeltaSink] | None = None,
        committed: Callable[[], bool] = lambda: False,
        on_cache_hit: Callable[[str], None] | None = None,
        defer: bool = False,
    ) -> Outcome:
        """Get the answer of an admitted request; write spend, pin and audit.

        The pin and the session row are committed before the answer: the loop's next call
        may come to any gateway process, and must find them. With `defer`, an answer that
        writes neither leaves its audit row and spend to `Outcome.later`, which the caller
        commits once the answer is written (`record`): the commit, a fifth of a request's
        time, is then off the answer's path. Its budget holds stay until then, so a budget
        is never overspent; the row of an answer sent just before a crash can be lost.

        Args:
            admitted: What `admit` returned.
            on_delta: For a streaming client: the sink of an attempt on a deployment.
            committed: Whether the client has been sent part of an answer; a failure after
                that ends the stream instead of failing over.
            on_cache_hit: Told the kind of hit (`exact`, `semantic`) before a cached answer's
                first delta, so a stream's headers can say it came from the cache.
            defer: Leave the writes that may wait to `Outcome.later` (above).

        Raises:
            GatewayError: no deployment could answer, or the stream was cut.
        """
        a = admitted

        async def call(deployment: str) -> ModelResponse | Relayed:
            began = time.perf_counter()
            sink = on_delta(deployment) if on_delta is not None else None
            if forward is not None and self.upstreams.forwards(deployment):
                response: ModelResponse | Relayed = await self.upstreams.relay(
                    deployment, forward.body, sink
                )
            else:
                request = a.call.request
                if on_delta is not None:
                    request = request.model_copy(update={"stream": True})
                response = await self.upstreams.complete(deployment, request, sink)
            seconds = time.perf_counter() - began
            # Counted once this turn of the loop is over: for a whole answer, after it was
            # written to the client, off the request's path.
            loop.call_soon(self._answered_in, a.call.requested, deployment, seconds)
            return response

        loop = asyncio.get_running_loop()
        label = a.boundary.value
        cached = await self.cache.lookup(a)
        # An answer no cache keeps: a chat-completions deployment is sent the client's own
        # body, and a whole answer is read only for what is needed (`relay`).
        forward = a.call.forward if cached.key is None else None
        if cached.hit is not None:
            if on_cache_hit is not None:
                on_cache_hit(cached.hit.kind)
            await self._give_back(a)
            hit, writes = await self.cache.serve(a, cached.hit, on_delta)
            await self.journal.commit(writes)
            return Outcome(hit, a.session, label, a.request_id, cache=cached.hit.kind)
        try:
            answered = await answer(
                a.first,
                call,
                lambda failed: self._failover(self.route_of(a), failed),
                self.settings,
                self.note_failure,
                committed,
            )
        except GatewayError as exc:
            await self._give_back(a)
            await self.journal.commit(
                [self._call(a, a.first, None, f"error {exc.status}", label, exc.message)]
            )
            child(GATEWAY_REQUESTS, a.api, label, str(exc.status)).inc()
            raise
        except asyncio.CancelledError:
            # The client went away: give the reservation back and say so, then stop.
            await asyncio.shield(self._cancelled(a, label))
            raise
        if answered.forced_from:
            label = Boundary.FAILOVER.value
        pinning = self._pin(a, answered, label)
        finished = time.perf_counter()

        def records() -> list[Write]:
            return [
                *self._settle(a, answered),
                *pinning,
                self._call(a, answered.deployment, answered, "ok", label, None, finished),
            ]

        later: Callable[[], list[Write]] | None = None
        if defer and not pinning:
            later = records
        else:
            await self.journal.commit(records())
        await self.cache.save(cached, answered, self.registry, self.writing)
        loop.call_soon(self._served, a.api, label, a.started)
        return Outcome(
            answered=answered,
            session=a.session,
            boundary=label,
            request_id=a.request_id,
            later=later,
        )

    async def record(self, outcome: Outcome) -> None:
        """Commit what `run(defer=True)` left for after the answer; never raises.

        The answer is out: a store that fails now is logged, as the client cannot be told.
        """
        if outcome.later is None:
            return
        try:
            await self.journal.commit(outcome.later())
        except StoreError as exc:
            log.error(
                "gateway: an answered request's audit row was not written",
                session_id=outcome.session.session_id,
                request_id=outcome.request_id,
                error=str(exc),
            )
        except Exception:
            # A ledger's write that failed otherwise: the batch is not written either.
            log.exception(
                "gateway: an answered request's audit row was not written",
                session_id=outcome.session.session_id,
                request_id=outcome.request_id,
            )

    def _answered_in(self, requested: str, deployment: str, seconds: float) -> None:
        """A deployment answered: its live latency (the router's next choice), its metric.

        As for plans, the latency measured feeds the router's next choice at a boundary.
        """
        self.router.metrics.record_success(deployment, seconds * 1000)
        child(METRICS.provider_latency, requested, deployment, "ok").observe(seconds)

    @staticmethod
    def _served(api: Dialect, boundary: str, started: float) -> None:
        """A request answered: its count, and its latency up to now.

        Run after the turn of the loop that scheduled it, in which the lean server wrote a
        whole answer: the latency is up to the answer's write.
        """
        child(GATEWAY_REQUESTS, api, boundary, "ok").inc()
        child(GATEWAY_LATENCY, api, "ok").observe(time.perf_counter() - started)

    async def _give_back(self, a: Admitted) -> None:
        if a.holds:
            async with self.writing():
                await self.store.budgets.settle(a.ledger_id)

    async def _cancelled(self, a: Admitted, label: str) -> None:
        await self._give_back(a)
        await self.journal.commit(
            [self._call(a, a.first, None, "cancelled", label, "the client disconnected")]
        )
        child(GATEWAY_REQUESTS, a.api, label, "cancelled").inc()

    def _call(
        self,
        a: Admitted,
        deployment: str,
        answered: Answered | None,
        outcome: str,
        label: str,
        cause: str | None,
        finished: float | None = None,
    ) -> Write:
        """The request's audit row; its latency up to `finished` (a `perf_counter`), or now."""
        usage = answered.response.usage if answered is not None else Usage()
        payload: JsonObject = {
            "key": a.key.id,
            "api": a.api,
            "boundary": label,
            "outcome": outcome,
            "requested": a.call.requested,
            "session_source": a.session.source,
            "stream": a.call.stream,
            **cache_counts(usage),
        }
        if cause is not None:
            payload["cause"] = cause
        if a.routing is not None:
            payload["routing"] = a.routing
        if answered is not None and answered.failures:
            payload["failures"] = [f"{d}: {c}" for d, c in answered.failures]
        return audit.call(
            a.session.session_id,
            a.request_id,
            datetime.now(UTC),
            deployment=deployment,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=self.registry.models[deployment].usage_cost(usage),
            duration_ms=((finished or time.perf_counter()) - a.started) * 1000,
            payload=payload,
        )

    async def _first(
        self, route: RouteRequest, task: Task, pin: Pin | None, boundary: Boundary
    ) -> tuple[str, str, JsonObject | None]:
        """The router's choice at a boundary, why, and the decision's audit record.

        This is the plans' decision path: learned quality from the outcomes recorded for
        the tenant's task type, and the difficulty declared or estimated.
        """
        current = pin.deployment if pin is not None and boundary is not Boundary.IDLE else None
        try:
            await self.learned.load(route.tenant, route.task_type, route.policy)
            decision = self.router.decide(route.model_copy(update={"current": current}))
        except RoutingError as exc:
            raise BadRequest(f"no deployment can serve this request: {exc}") from None
        child(METRICS.routing_decisions, decision.deployment, reason_label(decision.reason)).inc()
        record = decision_record(decision, task)
        record["expected_calls"] = route.expected_calls
        record["warm_input_tokens"] = route.warm_input_tokens
        return decision.deployment, decision.reason, record

    def _failover(self, route: RouteRequest, failed: dict[str, str]) -> str | None:
        try:
            decision = self.router.decide(
                route.model_copy(
                    update={
                        "exclude": {**route.exclude, **failed},
                        "boundary": Boundary.FAILOVER.value,
                        "current": None,
                        "warm_input_tokens": 0,
                    }
                )
            )
        except RoutingError:
            return None
        return decision.deployment

    def note_failure(self, deployment: str, error: ProviderError) -> None:
        """Tell the router's live metrics that a deployment failed (cooldown, error rate)."""
        http = error if isinstance(error, ProviderHTTPError) else None
        self.router.metrics.record_failure(
            deployment,
            str(error)[:200],
            rate_limited=http is not None and http.status_code == 429,
            retry_after=http.retry_after if http is not None else None,
        )

    async def _reserve(
        self,
        ledger_id: str,
        holds: list[Reservation],
        first: Callable[[Connection], None] | None = None,
    ) -> None:
        """Hold `holds`, after `first` (the key's rate admission) in the same transaction.

        Raises:
            RateLimited: from `first`; nothing is held.
            OverBudget: a hold did not fit; nothing is held, nor counted by `first`.
        """
        if not holds:
            return
        refused = await self.store.budgets.reserve(ledger_id, holds, first)
        if refused is not None:
            usage = await self.store.budgets.usage(refused.scope, refused.period)
            raise refusal(refused, usage)

    def _settle(self, a: Admitted, answered: Answered) -> list[Write]:
        """The answer's spend: its tokens and its cost, as writes of the request's batch.

        Its tokens count against the key's rate limit, its cost against the request's
        budget holds, settled at once (a request holds for its one call). Writes for the
        request's own batch, committed with its audit row: one transaction
        where these were one each.
        """
        usage = answered.response.usage
        writes: list[Write] = []
        used = self.limiter.used_write(a.key, usage.total_tokens)
        if used is not None:
            writes.append(used)
        if a.holds:
            spend = Spend(
                a.ledger_id,
                [(h.scope, h.period) for h in a.holds],
                self.registry.models[answered.deployment].usage_cost(usage),
                usage.total_tokens,
                f"{a.ledger_id}/spend",
            )
            budgets = self.store.budgets
            writes.append(LedgerWrite(lambda conn: budgets.spend_here(conn, spend, settle=True)))
        return writes

    def _pin(self, a: Admitted, answered: Answered, boundary: str) -> list[Write]:
        """The pin's writes: the pin when it is worth writing, the session, the switch."""
        now = datetime.now(UTC)
        writes: list[Write] = []
        pin = a.pin
        phase: Phase = "loop" if asks_tools(answered.response) else "final"
        if _worth_writing(pin, answered.deployment, phase, now, self.settings.cache_idle_seconds):
            wanted_pin = Pin(
                session_id=a.session.session_id,
                deployment=answered.deployment,
                key_id=a.key.id,
                tenant=a.key.tenant,
                team=a.key.team,
                phase=phase,
                version=0,
                updated_at=now,
            )
            writes.append(PutPin(wanted_pin, pin.version if pin else None))
        if pin is None:
            writes.append(audit.session_start(a.session.session_id, a.key, a.api, now))
        if pin is not None and pin.deployment == answered.deployment:
            return writes
        forced = answered.forced_from is not None
        payload: JsonObject = {
            "key": a.key.id,
            "boundary": boundary,
            "from": pin.deployment if pin else None,
            "to": answered.deployment,
            "forced": forced,
            "reason": "forced failover" if forced else a.reason,
        }
        if a.routing is not None:
            payload["routing"] = a.routing
        if forced:
            payload["cause"] = "; ".join(f"{d}: {c}" for d, c in answered.failures)
        writes.append(audit.pin(a.session.session_id, a.request_id, now, payload))
        if pin is not None:
            METRICS.model_switches.labels(boundary).inc()
        return writes
