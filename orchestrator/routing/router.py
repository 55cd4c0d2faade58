"""The policy router: hard constraints, CEL rules, then a score; every loser gets a reason.

A decision runs in four passes over the deployments a request may use (the alias's, the
named deployment, or all):

1. CEL rules of the policy are evaluated over the request; each that holds may exclude
   deployments, allow only some, require a region or add a bonus. A rule's result is
   cached per value of the variables it reads (found by static analysis), so a rule over
   `tenant` costs one evaluation per tenant, not per decision.
2. Hard constraints: a failed deployment in this step (failover), capabilities, context
   window, region, data classification, rule exclusions. A deployment that fails one never
   wins, whatever else happens.
3. Soft constraints: cooldown (live metrics) and the step's quality floor (its difficulty).
   If no deployment passes them, the least bad one that passes every hard constraint
   wins, and the reason says so.
4. A score: quality for the task type, cost and latency (normalised over the eligible
   set), recent error rate, rule bonuses, and a small bonus for the deployment already
   pinned so near-ties do not flap. With `keep_for_session`, the pinned deployment stays
   whenever it passes 2 and 3. The cost is `scoring.expected_cost`: the calls the decision
   binds (`expected_calls`), prompt-cache reads and writes at the declared prices, the
   pinned deployment's warm prefix (`warm_input_tokens`) read from its cache, so a switch
   pays for the cache it loses. A request that says how many steps the session has left
   (`horizon_steps`) and its prefix has the cost priced per step over them
   (`scoring.session_cost`: the pin binds the session's cache); one that also says what
   they are likely to be (`later_steps`) has the pin weighed over them instead
   (`orchestrator.routing.horizon`). The latency term reads each latency at the low end of
   its live spread (`scoring.optimistic_latencies`): a lead within it is a tie.

Whole decisions are cached too, keyed by everything they read, until the live metrics
change materially (`LiveMetrics.version`) or a cooldown they depend on ends.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING

import cel

from orchestrator.exceptions import ConfigError, RoutingError
from orchestrator.routing.complexity import DifficultyEstimate, estimate_difficulty
from orchestrator.routing.horizon import forced_odds, horizon_values
from orchestrator.routing.learning import Estimate, LearnedQuality, estimate
from orchestrator.routing.metrics import LiveMetrics
from orchestrator.routing.policy import Difficulty, Policy, Rule
from orchestrator.routing.scoring import MIN_CACHED_TOKENS, expected_cost, score_eligible
from orchestrator.routing.types import Candidate, RouteRequest, RoutingDecision, ScoreTerms

if TYPE_CHECKING:
    from orchestrator.providers.registry import ModelEntry, ModelRegistry

__all__ = ["REQUEST_VARIABLES", "Router"]

REQUEST_VARIABLES = (
    "tenant",
    "team",
    "task_type",
    "tokens_so_far",
    "headers",
    "tags",
    "data_class",
    "difficulty",
    "step",
    "budget_used",
    "boundary",
)
"""Names a rule expression may read."""

_DOWNGRADE_FACTOR = 3.0
_CACHE_LIMIT = 50_000


@dataclass(frozen=True)
class _CompiledRule:
    rule: Rule
    program: cel.Program
    variables: tuple[str, ...]
    exclude: frozenset[str]
    only: frozenset[str]
    prefer: tuple[tuple[str, float], ...]
    pick: Callable[[dict[str, object]], object]
    """Reads the values of this rule's variables from a mapping, in one C call."""


@dataclass(frozen=True)
class _Effects:
    fired: tuple[str, ...]
    exclude: dict[str, str]
    only: frozenset[str] | None
    only_rule: str | None
    region: str | None
    bonus: dict[str, float]


_NO_EFFECTS = _Effects((), {}, None, None, None, {})


def _nothing(_: dict[str, object]) -> object:
    return None


@dataclass
class _Ranked:
    """A scored pool for one kind of request, before the session's pin is applied."""

    eligible: list[str]
    scores: dict[str, float]
    costs: dict[str, float]
    """Expected cost of the request on each eligible deployment."""
    terms: dict[str, ScoreTerms]
    """How each eligible deployment's score was made up."""
    top: str
    lost: list[Candidate]
    note: str
    valid_until: float
    version: int
    finals: dict[tuple[str, str, bool], RoutingDecision] = field(default_factory=dict)
    """Decisions by (winner, why it won: `_winner`'s kind, whether it was pinned)."""


def _context_value(req: RouteRequest, name: str, budget_used: float) -> object:
    match name:
        case "tenant":
            return req.tenant
        case "team":
            return req.team
        case "task_type":
            return req.task_type
        case "tokens_so_far":
            return req.tokens_so_far
        case "headers":
            return req.headers
        case "tags":
            return req.tags
        case "data_class":
            return req.data_class
        case "difficulty":
            return _level(req).value
        case "step":
            return req.step_id
        case "budget_used":
            return budget_used
        case _:
            return req.boundary


def _level(req: RouteRequest) -> Difficulty:
    """The request's difficulty (`decide` has filled in an estimate where it was None)."""
    return req.difficulty or Difficulty.MEDIUM


def _combine(rules: list[_CompiledRule]) -> _Effects:
    """The joint effect of the rules that hold, in policy order."""
    exclude: dict[str, str] = {}
    only: frozenset[str] | None = None
    only_rule: str | None = None
    region: str | None = None
    bonus: dict[str, float] = {}
    for compiled in rules:
        rule = compiled.rule
        for d in compiled.exclude:
            exclude.setdefault(d, rule.name)
        if compiled.only:
            only = compiled.only if only is None else only & compiled.only
            only_rule = rule.name
        if rule.require_region:
            region = rule.require_region
        for d, b in compiled.prefer:
            bonus[d] = bonus.get(d, 0.0) + b
    fired = tuple(c.rule.name for c in rules)
    return _Effects(fired, exclude, only, only_rule, region, bonus)


@dataclass(frozen=True)
class _RuleGroups:
    """A policy's rules split by whether what they read moves with every call."""

    rules: list[_CompiledRule]
    fixed: list[tuple[int, _CompiledRule]]
    fixed_vars: tuple[str, ...]
    moving: list[tuple[int, _CompiledRule]]
    moving_vars: tuple[str, ...]

    @classmethod
    def of(cls, rules: list[_CompiledRule]) -> _RuleGroups:
        fixed = [(i, c) for i, c in enumerate(rules) if not set(c.variables) & _MOVING]
        moving = [(i, c) for i, c in enumerate(rules) if set(c.variables) & _MOVING]
        return cls(
            rules=rules,
            fixed=fixed,
            fixed_vars=tuple(sorted({v for _, c in fixed for v in c.variables})),
            moving=moving,
            moving_vars=tuple(sorted({v for _, c in moving for v in c.variables})),
        )


_MOVING = frozenset({"tokens_so_far", "budget_used"})


_KEYS: dict[str, Callable[[RouteRequest], object]] = {
    "tenant": attrgetter("tenant"),
    "team": attrgetter("team"),
    "task_type": attrgetter("task_type"),
    "data_class": attrgetter("data_class"),
    "difficulty": attrgetter("difficulty"),
    "step": attrgetter("step_id"),
    "boundary": attrgetter("boundary"),
    "tags": lambda req: tuple(req.tags),
    "headers": lambda req: tuple(sorted(req.headers.items())),
}
"""Hashable forms of the request attributes that rules read and that do not move per call."""


class Router:
    """Chooses a deployment for a request under the models file's policies.

    Args:
        registry: The models file.
        metrics: Live metrics to read; a fresh empty one when not given.
        learned: Outcome tallies to learn quality from; a fresh empty one when not given
            (the route activity loads them from the store before each decision).

    Raises:
        ConfigError: a rule's expression does not compile or reads an unknown variable.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        metrics: LiveMetrics | None = None,
        learned: LearnedQuality | None = None,
    ) -> None:
        self.registry = registry
        self.metrics = metrics if metrics is not None else LiveMetrics()
        self.learned = learned if learned is not None else LearnedQuality()
        self._all = list(registry.models)
        self._rules: dict[str, list[_CompiledRule]] = {
            name: [self._compile(name, rule) for rule in policy.rules]
            for name, policy in registry.routing.policies.items()
        }
        self._groups = {name: _RuleGroups.of(rules) for name, rules in self._rules.items()}
        self._fixed_fired: dict[tuple[object, ...], bool] = {}
        self._combined: dict[tuple[str, tuple[int, ...]], _Effects] = {}
        self._windows = sorted({d.context_window for d in registry.models.values()})
        self._ranked: dict[tuple[object, ...], _Ranked] = {}

    def _expand(self, names: Iterable[str]) -> frozenset[str]:
        out: set[str] = set()
        for name in names:
            out.update(self.registry.deployments_for(name))
        return frozenset(out)

    def _compile(self, policy: str, rule: Rule) -> _CompiledRule:
        where = f"routing.policies.{policy} rule {rule.name!r}"
        try:
            program = cel.compile(rule.when)
        except ValueError as exc:
            raise ConfigError(f"{where}: expression does not compile: {exc}") from None
        variables = tuple(program.variables())
        unknown = [v for v in variables if v not in REQUEST_VARIABLES]
        # Names bound by comprehension macros are listed too; only plain unknowns fail.
        if unknown and not any(m in rule.when for m in (".all(", ".exists(", ".map(", ".filter(")):
            raise ConfigError(
                f"{where}: unknown variable(s) {', '.join(unknown)}"
                f" (known: {', '.join(REQUEST_VARIABLES)})"
            )
        known = tuple(v for v in variables if v in REQUEST_VARIABLES)
        return _CompiledRule(
            rule=rule,
            program=program,
            variables=known,
            pick=itemgetter(*known) if known else _nothing,
            exclude=self._expand(rule.exclude),
            only=self._expand(rule.only),
            prefer=tuple(
                (d, bonus) for name, bonus in rule.prefer.items() for d in self._expand([name])
            ),
        )

    def policy(self, name: str | None) -> tuple[str, Policy]:
        """The named policy, or the default one.

        Raises:
            RoutingError: no policy has that name.
        """
        key = name or self.registry.routing.default_policy
        found = self.registry.routing.policies.get(key)
        if found is None:
            known = ", ".join(sorted(self.registry.routing.policies))
            raise RoutingError(f"unknown routing policy {key!r} (known: {known})")
        return key, found

    # ---- rules ---------------------------------------------------------------------------

    def _holds(self, compiled: _CompiledRule, values: dict[str, object]) -> bool:
        try:
            result = compiled.program.execute(values)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise RoutingError(f"rule {compiled.rule.name!r} failed to evaluate: {exc}") from None
        if not isinstance(result, bool):
            raise RoutingError(
                f"rule {compiled.rule.name!r} must give a bool, gave {type(result).__name__}"
            )
        return result

    def _effects(self, policy: str, req: RouteRequest, used: float) -> _Effects:
        """What the policy's rules do to this request.

        A rule over request attributes only (tenant, team, tags, ...) is evaluated once per
        combination of the attributes it reads and remembered; rules that read a number that moves
        with every call (`tokens_so_far`, `budget_used`) are evaluated every time.
        """
        group = self._groups[policy]
        if not group.rules:
            return _NO_EFFECTS
        keys = {v: _KEYS[v](req) for v in group.fixed_vars}
        cache = self._fixed_fired
        fired: tuple[int, ...] = ()
        for i, c in group.fixed:
            key = (policy, i, c.pick(keys))
            holds = cache.get(key)
            if holds is None:
                holds = self._holds(c, {v: _context_value(req, v, used) for v in c.variables})
                if len(cache) > _CACHE_LIMIT:
                    cache.clear()
                cache[key] = holds
            if holds:
                fired = (*fired, i)
        if group.moving:
            values = {v: _context_value(req, v, used) for v in group.moving_vars}
            more = [
                i for i, c in group.moving if self._holds(c, {v: values[v] for v in c.variables})
            ]
            if more:
                fired = tuple(sorted((*fired, *more)))
        fx = self._combined.get((policy, fired))
        if fx is None:
            fx = self._combined[(policy, fired)] = _combine([group.rules[i] for i in fired])
        return fx

    # ---- constraints ---------------------------------------------------------------------

    @staticmethod
    def _hard(name: str, d: ModelEntry, req: RouteRequest, fx: _Effects) -> str | None:
        """Why the deployment may never serve this request, or None."""
        if name in req.exclude:
            return f"failed in this step: {req.exclude[name]}"
        missing = [c for c in req.needs if c not in d.capabilities]
        if missing:
            return f"lacks capability {', '.join(missing)}"
        # A step's conversation starts fresh (or is handed over, counted in the expected
        # input): what the session spent in earlier steps takes no room in this one.
        tokens = req.expected_input_tokens + req.expected_output_tokens
        if tokens > d.context_window:
            return f"context {d.context_window} < {tokens} tokens needed"
        for region in (req.region, fx.region):
            if region and d.region != region:
                return f"region {d.region} is not {region}"
        if req.data_class not in d.data_classes:
            return f"may not receive {req.data_class} data"
        if name in fx.exclude:
            return f"excluded by rule {fx.exclude[name]!r}"
        if fx.only is not None and name not in fx.only:
            return f"not allowed by rule {fx.only_rule!r}"
        return None

    # ---- decision ------------------------------------------------------------------------

    def decide(
        self,
        req: RouteRequest,
        *,
        budget_used: float = 0.0,
        difficulty_estimate: DifficultyEstimate | None = None,
    ) -> RoutingDecision:
        """Choose a deployment for `req`.

        Args:
            req: The request.
            budget_used: Share (0..1) of the tightest budget that applies, already in use.
            difficulty_estimate: For a request without a difficulty, an estimate made
                elsewhere (the classifier deployment's, `orchestrator.routing.classifier`);
                ignored when the request declares its difficulty.

        A request without a difficulty gets one from `difficulty_estimate` or else
        `estimate_difficulty`, and is then routed exactly like a request that declared that
        level; the decision records the estimate and what drove it.

        Raises:
            RoutingError: no deployment satisfies the hard constraints, or a name, policy or
                rule is unknown or broken.
        """
        if req.difficulty is None:
            guess = difficulty_estimate or estimate_difficulty(
                req.prompt, tools=req.tools, output_schema=req.output_schema
            )
            decision = self._decide(
                req.model_copy(update={"difficulty": guess.difficulty}), budget_used
            )
            # A copy: the cached decision is shared by requests with other prompts.
            return decision.model_copy(update={"difficulty_estimate": guess})
        return self._decide(req, budget_used)

    def _decide(self, req: RouteRequest, budget_used: float) -> RoutingDecision:
        policy_name, policy = self.policy(req.policy)
        fx = self._effects(policy_name, req, budget_used)
        total = req.expected_input_tokens + req.expected_output_tokens
        # Without odds of the later steps, the steps left price the cost term
        # (`scoring.session_cost`); with them, `_over_horizon` weighs the steps instead.
        steps = 1.0 if req.later_steps else req.horizon_steps
        # Everything the ranking reads, coarsened only where the outcome cannot differ: the
        # context check depends on which windows the total exceeds, the cost terms on the
        # expected token counts to within 512. The pinned deployment is applied afterwards.
        key = (
            policy_name,
            req.name,
            req.task_type,
            req.data_class,
            req.difficulty,
            tuple(req.needs),
            req.region,
            bisect_left(self._windows, total),
            req.expected_input_tokens >> 9,
            req.expected_output_tokens >> 9,
            req.boundary == "session_start",
            tuple(sorted(req.exclude.items())) if req.exclude else (),
            fx.fired,
            budget_used >= policy.downgrade_at,
            self.learned.key(req.tenant, req.task_type) if policy.learning.enabled else None,
            req.expected_calls,
            # A warm pin is priced apart from the others: such a ranking is the session's own.
            (req.current, req.warm_input_tokens) if req.warm_input_tokens else None,
            # So is one priced over the session's steps left.
            (steps, req.session_prefix_tokens) if steps > 1.0 else None,
        )
        ranked = self._ranked.get(key)
        now = self.metrics.clock()
        if ranked is None or ranked.version != self.metrics.version or now >= ranked.valid_until:
            ranked = self._rank(req, policy_name, policy, fx, budget_used, now, steps)
            if len(self._ranked) > _CACHE_LIMIT:
                self._ranked.clear()
            self._ranked[key] = ranked
        if req.horizon_steps > 1.0 and req.later_steps and not policy.keep_for_session:
            winner, kind = self._over_horizon(ranked, req, policy)
        else:
            winner, kind = self._winner(ranked, req.current, policy)
        final = (winner, kind, winner == req.current)
        cached = ranked.finals.get(final)
        if cached is not None:
            return cached
        decision = self._explain(ranked, req, policy_name, policy, fx, budget_used, final)
        ranked.finals[final] = RoutingDecision.model_construct(
            **{**decision.__dict__, "cached": True}
        )
        return decision

    @staticmethod
    def _winner(ranked: _Ranked, current: str | None, policy: Policy) -> tuple[str, str]:
        """The winner given the pin, and why it won: `best`, or `sticky` (the pin's bonus)."""
        top = ranked.top
        if current is None or current == top or current not in ranked.scores:
            return top, "best"
        if policy.keep_for_session:
            return current, "sticky"
        close = ranked.scores[current] + policy.stickiness >= ranked.scores[top]
        limit = policy.max_sticky_cost_ratio
        if close and (limit is None or ranked.costs[current] <= ranked.costs[top] * limit):
            return current, "sticky"
        return top, "best"

    def _later_worth(
        self, ranked: _Ranked, req: RouteRequest, policy: Policy
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Each eligible candidate's worth on a later step, and its risk of being forced off.

        A later step's worth is this step's score with two terms taken over the session's
        later steps: the quality, as the mean over the later steps (`later_steps`) whose
        floor the candidate meets, and the cost, with the session's prefix
        (`session_prefix_tokens`) read from the candidate's cache, as it is for whichever
        deployment serves the session's steps after this one.
        """
        later: dict[str, float] = {}
        risks: dict[str, float] = {}
        odds = req.later_steps
        floors = policy.quality_floor
        tasks = {o.task_type for o in odds}
        prefix = req.session_prefix_tokens if req.session_prefix_tokens >= MIN_CACHED_TOKENS else 0
        for name in ranked.eligible:
            d = self.registry.models[name]
            terms = ranked.terms[name]
            quality_term = terms.quality
            if odds:
                quality = {
                    t: estimate(
                        d.quality_for(t), self.learned.tally(req.tenant, t, name), policy.learning
                    ).learned
                    for t in tasks
                }
                risks[name] = forced_odds(quality, odds, floors)
                served = [o for o in odds if quality[o.task_type] >= floors.get(o.difficulty, 0.0)]
                share = sum(o.share for o in served)
                if share > 0:
                    mean = sum(o.share * quality[o.task_type] for o in served) / share
                    quality_term = policy.weights.quality * mean
            cost_term = terms.cost
            if prefix and terms.cost_usd > 0:
                warm = expected_cost(
                    d,
                    req.expected_input_tokens,
                    req.expected_output_tokens,
                    warm_tokens=prefix,
                    calls=req.expected_calls,
                )
                # The same normalisation as this step's cost term (weight over the dearest).
                cost_term = terms.cost * warm / terms.cost_usd
            later[name] = terms.total - terms.quality - terms.cost + quality_term + cost_term
        return later, risks

    def _over_horizon(self, ranked: _Ranked, req: RouteRequest, policy: Policy) -> tuple[str, str]:
        """The winner by `horizon_values` over the steps the session has left.

        Each candidate's risk of being forced off reads its quality for each later step's
        task type as the floor does (the learned mean), and the policy's floors. The pin
        wins ties; `max_sticky_cost_ratio` still bounds what keeping it may cost.
        """
        current = req.current if req.current in ranked.scores else None
        later, risks = self._later_worth(ranked, req, policy)
        values = horizon_values(
            ranked.scores,
            later,
            risks,
            current=current,
            stickiness=policy.stickiness,
            steps=req.horizon_steps,
        )
        order = ranked.eligible
        best = max(order, key=lambda n: (values[n], n == current, -order.index(n)))
        limit = policy.max_sticky_cost_ratio
        if (
            best == current
            and current != ranked.top
            and limit is not None
            and ranked.costs[current] > ranked.costs[ranked.top] * limit
        ):
            return ranked.top, "best"
        if best == ranked.top:
            return best, "best"
        return best, "horizon"

    def _pool(self, req: RouteRequest) -> list[str]:
        if req.name is None:
            return self._all
        try:
            return self.registry.deployments_for(req.name)
        except ConfigError as exc:
            raise RoutingError(str(exc)) from None

    def _rank(
        self,
        req: RouteRequest,
        policy_name: str,
        policy: Policy,
        fx: _Effects,
        budget_used: float,
        now: float,
        steps: float,
    ) -> _Ranked:
        models = self.registry.models
        level = _level(req)
        floor = policy.quality_floor.get(level, 0.0)
        lost: dict[str, str] = {}
        eligible: list[str] = []
        soft: list[tuple[float, str]] = []
        valid_until = float("inf")
        learned: dict[str, Estimate] = {}
        for name in self._pool(req):
            d = models[name]
            why = self._hard(name, d, req, fx)
            if why is not None:
                lost[name] = why
                continue
            cooling = self.metrics.cooldown_left(name)
            if cooling > 0:
                valid_until = min(valid_until, now + cooling)
                cause = self.metrics.stats(name).cooldown_cause or "failure"
                lost[name] = f"cooling down for {cooling:.0f}s after {cause}"
                soft.append((cooling, name))
                continue
            est = learned[name] = estimate(
                d.quality_for(req.task_type),
                self.learned.tally(req.tenant, req.task_type, name),
                policy.learning,
            )
            # The floor reads the learned mean, never the exploration bonus: exploring
            # does not let a deployment below a hard step's floor serve it.
            quality = est.learned
            if quality < floor:
                lost[name] = f"quality {quality:.2f} below {level.value} floor {floor:.2f}"
                soft.append((1e9 + floor - quality, name))
                continue
            eligible.append(name)
        note = ""
        if not eligible:
            if not soft:
                detail = "; ".join(f"{n}: {why}" for n, why in lost.items()) or "none named"
                raise RoutingError(
                    f"no deployment can serve step {req.step_id!r}"
                    f" (policy {policy_name}, {req.name or 'any model'}): {detail}"
                )
            best = min(soft)[1]
            note = f"; every deployment is cooling down or below the floor: {lost[best]}"
            eligible = [best]
            del lost[best]
        terms = self._scores(eligible, req, policy, fx, budget_used, learned, steps)
        scores = {name: t.total for name, t in terms.items()}
        top = max(eligible, key=lambda n: (scores[n], -eligible.index(n)))
        return _Ranked(
            eligible=eligible,
            scores=scores,
            costs={name: t.cost_usd for name, t in terms.items()},
            terms=terms,
            top=top,
            lost=[Candidate(deployment=n, eligible=False, reason=r) for n, r in lost.items()],
            note=note,
            valid_until=valid_until,
            version=self.metrics.version,
        )

    @staticmethod
    def _explain(
        ranked: _Ranked,
        req: RouteRequest,
        policy_name: str,
        policy: Policy,
        fx: _Effects,
        budget_used: float,
        final: tuple[str, str, bool],
    ) -> RoutingDecision:
        winner, kind, pinned = final
        sticky = kind != "best"
        scores = ranked.scores
        top = scores[winner]
        if sticky and policy.keep_for_session:
            why = "kept for the session (policy keep_for_session)"
        elif kind == "horizon":
            # Shared by requests with other horizons: the reason names no figure of one.
            why = (
                f"score {top:.3f}, {'kept' if pinned else 'chosen'} over the steps the session"
                " has left: worth more than the best score once later steps' floors and"
                " switches are counted"
            )
        elif sticky:
            why = f"already pinned, score {top:.3f} within {policy.stickiness} of the best"
        else:
            why = f"best score {top:.3f}"
            if pinned and req.boundary != "session_start":
                why += " (already pinned)"
        why += ranked.note
        terms = ranked.terms
        candidates = [
            Candidate(deployment=winner, eligible=True, score=top, terms=terms[winner], reason=why)
        ]
        for name in ranked.eligible:
            if name == winner:
                continue
            s = scores[name]
            reason = (
                f"score {s:.3f} < {top:.3f}"
                if s < top or not sticky
                else f"score {s:.3f}, but {winner} is worth more over the session's later steps"
                if kind == "horizon"
                else f"score {s:.3f}, but {winner} is pinned and close enough"
            )
            candidates.append(
                Candidate(deployment=name, eligible=True, score=s, terms=terms[name], reason=reason)
            )
        candidates.extend(ranked.lost)
        return RoutingDecision.model_construct(
            deployment=winner,
            name=req.name,
            policy=policy_name,
            reason=why,
            candidates=candidates,
            rules_fired=list(fx.fired),
            budget_used=budget_used,
            failover=policy.failover,
            cached=False,
        )

    def _scores(
        self,
        eligible: list[str],
        req: RouteRequest,
        policy: Policy,
        fx: _Effects,
        budget_used: float,
        learned: dict[str, Estimate],
        steps: float,
    ) -> dict[str, ScoreTerms]:
        downgraded = budget_used >= policy.downgrade_at
        return score_eligible(
            eligible,
            self.registry.models,
            self.metrics,
            task_type=req.task_type,
            input_tokens=req.expected_input_tokens,
            output_tokens=req.expected_output_tokens,
            weights=policy.weights,
            cost_weight=policy.weights.cost * (_DOWNGRADE_FACTOR if downgraded else 1.0),
            bonus=fx.bonus,
            learned=learned,
            warm={req.current: req.warm_input_tokens} if req.current is not None else None,
            calls=req.expected_calls,
            steps=steps,
            prefix_tokens=req.session_prefix_tokens,
        )
