"""Policy engine: YAML rules, loaded once, compiled, evaluated without I/O.

Rules are tried in file order and the **first matching rule wins**; a later rule never
overrides an earlier one, so put narrow rules (deny, four-eyes) before broad ones. A kind
that no rule names is denied. Every :class:`Decision` carries the rule id, the policy
version (the declared version, if any, plus a hash of the content) and an explanation:
which rule fired and why, which rules were skipped and why.

The autonomy level is an input: rules may match on it, and after the rule it caps the
effect: ``shadow`` turns everything into a recorded denial ("would have ..."), ``suggest``
turns ``allow`` into ``require_approval`` with the default approval, ``auto_with_undo``
keeps ``allow`` and the executor holds the action at least the undo window, ``auto`` keeps
the rule's effect.
"""

import fnmatch
import hashlib
import json
import re
import time as time_module
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from assistant.core.errors import ConfigurationError
from assistant.core.principal import Role
from assistant.core.settings import OwnerSettings
from assistant.core.yaml_loading import safe_load

log = structlog.stdlib.get_logger(__name__)


class Autonomy(StrEnum):
    SHADOW = "shadow"
    SUGGEST = "suggest"
    AUTO_WITH_UNDO = "auto_with_undo"
    AUTO = "auto"


class Effect(StrEnum):
    ALLOW = "allow"
    REQUIRE_APPROVAL = "require_approval"
    DENY = "deny"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_duration(value: Any) -> timedelta:
    """``90``, ``"90s"``, ``"15m"``, ``"4h"``, ``"2d"`` -> timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError("a duration is a number of seconds or a string like 90s, 15m, 4h, 2d")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


# --------------------------------------------------------------------------- file schema


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CountRange(_Strict):
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)


class AmountRange(_Strict):
    min: Decimal | None = None
    max: Decimal | None = None


class TimeWindow(_Strict):
    """Inside [after, before) local time on ``days``; wraps midnight when after > before."""

    after: time = time(0, 0)
    before: time = time(23, 59, 59, 999999)
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = None
    outside: bool = Field(default=False, description="Match outside the window instead.")


class Approval(_Strict):
    roles: list[Role] = Field(min_length=1, description="Roles that may approve.")
    approvals: int = Field(default=1, ge=1, le=5, description="Distinct approvers needed.")
    ttl: timedelta = Field(default=timedelta(hours=24), description="Expiry of the review.")

    @field_validator("ttl", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return parse_duration(value)

    @field_validator("roles")
    @classmethod
    def _no_auditor(cls, value: list[Role]) -> list[Role]:
        if Role.AUDITOR in value:
            raise ValueError("auditors approve nothing")
        return value


class When(_Strict):
    kinds: list[str] = Field(min_length=1, description="Action kinds, globs allowed (email.*).")
    connectors: list[str] | None = None
    tenants: list[str] | None = None
    actors: list[str] | None = None
    on_behalf_of: list[str] | None = None
    recipients: Literal["any", "internal", "external"] = Field(
        default="any",
        description="internal: every recipient internal; external: at least "
        "one recipient outside the internal domains (unknown recipients count as external).",
    )
    recipient_count: CountRange | None = None
    amount: AmountRange | None = None
    time_of_day: TimeWindow | None = None
    autonomy: list[Autonomy] | None = None


class RuleModel(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")
    description: str = ""
    when: When
    decision: Effect
    approval: Approval | None = None
    reason: str | None = None


class Defaults(_Strict):
    autonomy: Autonomy = Autonomy.SUGGEST
    approval: Approval = Approval(roles=[Role.EXECUTIVE, Role.DELEGATE])


class PolicyDocument(_Strict):
    version: str | None = Field(default=None, description="Declared version label.")
    owner: OwnerSettings | None = Field(
        default=None, description="Who owns the policy: person, role, contact."
    )
    internal_domains: list[str] = Field(default_factory=list)
    default_timezone: str = "UTC"
    timezones: dict[str, str] = Field(
        default_factory=dict, description="IANA zone per executive address or tenant id."
    )
    defaults: Defaults = Defaults()
    rules: list[RuleModel] = Field(default_factory=list)


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True, slots=True)
class PolicyInput:
    """What a decision depends on. Built by the caller; evaluation does no I/O."""

    kind: str
    tenant: str
    actor: str
    at: datetime
    capability: str = ""
    connector: str | None = None
    on_behalf_of: str | None = None
    recipients: tuple[str, ...] | None = ()
    amount: Decimal | None = None
    autonomy: Autonomy = Autonomy.SUGGEST
    #: Every name of the executive (governance.aliases.executive_aliases: user id, e-mail,
    #: user name, mailbox addresses), so a rule or zone may name her by any of them.
    on_behalf_of_aliases: tuple[str, ...] = ()

    @property
    def executive_names(self) -> tuple[str, ...]:
        """``on_behalf_of`` first, then its aliases (a caller may pass either or both)."""
        first = (self.on_behalf_of,) if self.on_behalf_of else ()
        return tuple(dict.fromkeys((*first, *self.on_behalf_of_aliases)))


@dataclass(frozen=True, slots=True)
class RuleTrace:
    rule_id: str
    outcome: Literal["matched", "skipped", "not_evaluated"]
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule_id, "outcome": self.outcome, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class ApprovalSpec:
    roles: frozenset[Role]
    approvals: int
    ttl_seconds: float


@dataclass(frozen=True, slots=True)
class Decision:
    effect: Effect
    rule_id: str | None
    policy_version: str
    reason: str
    explanation: tuple[RuleTrace, ...]
    approval: ApprovalSpec | None = None
    autonomy: Autonomy = Autonomy.SUGGEST
    capped: bool = False

    def explanation_dicts(self) -> list[dict[str, str]]:
        return [trace.as_dict() for trace in self.explanation]


#: Kinds whose rule traces a policy keeps (Policy._kind_skips).
_KIND_CACHE_SIZE = 256

# A check returns None when the condition holds, else why it does not.
_Check = Callable[[PolicyInput], str | None]


def _glob(patterns: Sequence[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{fnmatch.translate(p.lower())})" for p in patterns))


@dataclass(slots=True)
class _Rule:
    id: str
    effect: Effect
    approval: ApprovalSpec | None
    reason: str
    kinds: re.Pattern[str]
    checks: tuple[_Check, ...]
    matched_reason: str


@dataclass
class Policy:
    """A loaded, compiled policy. :meth:`evaluate` is pure and fast."""

    document: PolicyDocument
    content_hash: str
    source: str = "<memory>"
    _rules: list[_Rule] = field(default_factory=list, repr=False)
    _internal: frozenset[str] = frozenset()
    _zones: dict[str, ZoneInfo] = field(default_factory=dict, repr=False)
    _default_zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"), repr=False)
    _default_approval: ApprovalSpec | None = None
    #: Per rule index, the traces of the rules after it, which a match there leaves
    #: unevaluated: the same for every decision, so built once (a decision builds a trace
    #: per rule, and building them was a sixth of its time).
    _unevaluated: tuple[tuple[RuleTrace, ...], ...] = ()
    #: Per kind as asked (:meth:`_kind_skips`), each rule's trace when it does not name the
    #: kind, None when it does.
    _kind_skips_by_kind: dict[str, tuple[RuleTrace | None, ...]] = field(
        default_factory=dict, repr=False
    )

    @property
    def version(self) -> str:
        """Declared version (if any) and content hash, e.g. ``2026.11@sha256:0123...``."""
        declared = self.document.version
        return f"{declared}@{self.content_hash}" if declared else self.content_hash

    @property
    def default_autonomy(self) -> Autonomy:
        return self.document.defaults.autonomy

    @property
    def rule_ids(self) -> list[str]:
        return [rule.id for rule in self._rules]

    def timezone_for(self, on_behalf_of: str | Sequence[str] | None, tenant: str) -> ZoneInfo:
        """The executive's zone: the first of her names (one, or her aliases in
        executive_aliases' order) that ``timezones:`` lists, else the tenant's, else the
        default."""
        names = (on_behalf_of,) if isinstance(on_behalf_of, str) else (on_behalf_of or ())
        for name in names:
            if name and name.lower() in self._zones:
                return self._zones[name.lower()]
        return self._zones.get(tenant.lower(), self._default_zone)

    def is_internal(self, address: str) -> bool:
        """Whether the address's domain, or a domain it is under, is internal."""
        domain = address.rpartition("@")[2].lower()
        internal = self._internal
        # The domain, then each suffix after a dot (a.b.example, b.example, example).
        while domain not in internal:
            dot = domain.find(".")
            if dot < 0:
                return False
            domain = domain[dot + 1 :]
        return True

    def _kind_skips(self, kind: str) -> tuple[RuleTrace | None, ...]:
        """Each rule's "kind not named" trace for ``kind`` (None: the rule names it),
        worked out once per kind: the kinds are few (the registry's), and a decision
        otherwise matches every rule's pattern and builds a trace per rule skipped. Kinds
        beyond the first few hundred are worked out each time (the cache stays small)."""
        skips = self._kind_skips_by_kind.get(kind)
        if skips is None:
            lowered = kind.lower()
            skips = tuple(
                None
                if rule.kinds.fullmatch(lowered)
                else RuleTrace(rule.id, "skipped", f"kind {kind} not named")
                for rule in self._rules
            )
            if len(self._kind_skips_by_kind) < _KIND_CACHE_SIZE:
                self._kind_skips_by_kind[kind] = skips
        return skips

    def evaluate(self, request: PolicyInput) -> Decision:
        """Decide: the first rule whose conditions all hold wins; none -> deny."""
        traces: list[RuleTrace] = []
        chosen: _Rule | None = None
        for index, (rule, kind_skip) in enumerate(
            zip(self._rules, self._kind_skips(request.kind), strict=True)
        ):
            if kind_skip is not None:
                traces.append(kind_skip)
                continue
            failure = None
            for check in rule.checks:
                failure = check(request)
                if failure is not None:
                    break
            if failure is not None:
                traces.append(RuleTrace(rule.id, "skipped", failure))
                continue
            chosen = rule
            traces.append(RuleTrace(rule.id, "matched", rule.matched_reason))
            traces.extend(self._unevaluated[index])
            break
        if chosen is None:
            reason = f"no rule matches kind {request.kind}: denied by default"
            return Decision(
                Effect.DENY, None, self.version, reason, tuple(traces), autonomy=request.autonomy
            )
        return self._cap(chosen, request, tuple(traces))

    def _cap(self, rule: _Rule, request: PolicyInput, traces: tuple[RuleTrace, ...]) -> Decision:
        effect, approval, reason = rule.effect, rule.approval, rule.reason
        autonomy = request.autonomy
        if autonomy is Autonomy.SHADOW and effect is not Effect.DENY:
            return Decision(
                Effect.DENY,
                rule.id,
                self.version,
                f"shadow mode: rule {rule.id!r} would have decided {effect.value}",
                traces,
                autonomy=autonomy,
                capped=True,
            )
        if autonomy is Autonomy.SUGGEST and effect is Effect.ALLOW:
            return Decision(
                Effect.REQUIRE_APPROVAL,
                rule.id,
                self.version,
                f"suggest mode: rule {rule.id!r} allows, a person approves",
                traces,
                approval=self._default_approval,
                autonomy=autonomy,
                capped=True,
            )
        return Decision(
            effect, rule.id, self.version, reason, traces, approval=approval, autonomy=autonomy
        )

    # ------------------------------------------------------------------ compilation

    def _compile(self) -> None:
        doc = self.document
        self._internal = frozenset(d.lower().lstrip("@") for d in doc.internal_domains)
        self._zones = {k.lower(): ZoneInfo(v) for k, v in doc.timezones.items()}
        self._default_zone = ZoneInfo(doc.default_timezone)
        self._default_approval = _approval_spec(doc.defaults.approval)
        self._rules = [self._compile_rule(rule) for rule in doc.rules]
        self._unevaluated = tuple(
            tuple(
                RuleTrace(later.id, "not_evaluated", f"rule {rule.id!r} matched first")
                for later in self._rules[index + 1 :]
            )
            for index, rule in enumerate(self._rules)
        )
        self._kind_skips_by_kind = {}

    def _compile_rule(self, rule: RuleModel) -> _Rule:
        when = rule.when
        checks: list[_Check] = []
        said: list[str] = [f"kind matches {', '.join(when.kinds)}"]

        def by_glob(
            patterns: list[str] | None,
            name: str,
            get: Callable[[PolicyInput], Sequence[str | None]],
        ) -> None:
            if not patterns:
                return
            pattern = _glob(patterns)
            listed = ", ".join(patterns)

            def check(request: PolicyInput) -> str | None:
                for value in get(request):
                    if value is not None and pattern.fullmatch(value.lower()):
                        return None
                return f"{name} not in {listed}"

            checks.append(check)
            said.append(f"{name} in {listed}")

        by_glob(when.tenants, "tenant", lambda r: (r.tenant,))
        by_glob(when.connectors, "connector", lambda r: (r.connector, r.capability))
        by_glob(when.actors, "actor", lambda r: (r.actor,))
        by_glob(when.on_behalf_of, "on_behalf_of", lambda r: r.executive_names)

        if when.autonomy:
            levels = frozenset(when.autonomy)
            listed_levels = ", ".join(a.value for a in when.autonomy)

            def autonomy_check(request: PolicyInput) -> str | None:
                return (
                    None
                    if request.autonomy in levels
                    else f"autonomy {request.autonomy.value} not in {listed_levels}"
                )

            checks.append(autonomy_check)
            said.append(f"autonomy in {listed_levels}")

        if when.recipients == "internal":

            def internal_check(request: PolicyInput) -> str | None:
                if request.recipients is None:
                    return "recipients unknown"
                outside = [a for a in request.recipients if not self.is_internal(a)]
                return f"{len(outside)} external recipient(s)" if outside else None

            checks.append(internal_check)
            said.append("every recipient internal")
        elif when.recipients == "external":

            def external_check(request: PolicyInput) -> str | None:
                if request.recipients is None:
                    return None
                if any(not self.is_internal(a) for a in request.recipients):
                    return None
                return "no external recipient"

            checks.append(external_check)
            said.append("an external recipient")

        if when.recipient_count is not None:
            low, high = when.recipient_count.min, when.recipient_count.max

            def count_check(request: PolicyInput) -> str | None:
                if request.recipients is None:
                    return "recipients unknown"
                n = len(request.recipients)
                if low is not None and n < low:
                    return f"{n} recipient(s) < {low}"
                if high is not None and n > high:
                    return f"{n} recipient(s) > {high}"
                return None

            checks.append(count_check)
            said.append(
                f"recipients in [{low if low is not None else 0}, "
                f"{high if high is not None else 'any'}]"
            )

        if when.amount is not None:
            amount_low, amount_high = when.amount.min, when.amount.max

            def amount_check(request: PolicyInput) -> str | None:
                if request.amount is None:
                    return "no amount"
                if amount_low is not None and request.amount < amount_low:
                    return f"amount {request.amount} < {amount_low}"
                if amount_high is not None and request.amount > amount_high:
                    return f"amount {request.amount} > {amount_high}"
                return None

            checks.append(amount_check)
            said.append("amount in range")

        if when.time_of_day is not None:
            window = when.time_of_day
            days = frozenset(_WEEKDAYS.index(d) for d in window.days) if window.days else None
            after, before, outside = window.after, window.before, window.outside
            wraps = after > before

            def time_check(request: PolicyInput) -> str | None:
                local = request.at.astimezone(
                    self.timezone_for(request.executive_names, request.tenant)
                )
                clock = local.time()
                inside = (clock >= after or clock < before) if wraps else (after <= clock < before)
                if days is not None and local.weekday() not in days:
                    inside = False
                if inside != outside:
                    return None
                where = "inside" if inside else "outside"
                return f"local time {local:%a %H:%M} {local.tzname()} is {where} the window"

            checks.append(time_check)
            said.append(
                ("outside" if outside else "inside")
                + f" {after:%H:%M}-{before:%H:%M}"
                + (f" on {','.join(window.days)}" if window.days else "")
            )

        approval = None
        if rule.decision is Effect.REQUIRE_APPROVAL:
            approval = _approval_spec(rule.approval or self.document.defaults.approval)
        reason = rule.reason or rule.description or f"rule {rule.id}: {rule.decision.value}"
        return _Rule(
            id=rule.id,
            effect=rule.decision,
            approval=approval,
            reason=reason,
            kinds=_glob(when.kinds),
            checks=tuple(checks),
            matched_reason="; ".join(said),
        )


def _approval_spec(approval: Approval) -> ApprovalSpec:
    return ApprovalSpec(
        roles=frozenset(approval.roles),
        approvals=approval.approvals,
        ttl_seconds=approval.ttl.total_seconds(),
    )


# --------------------------------------------------------------------------- loading


def content_hash(document: Any) -> str:
    """Hash of the parsed content: comments and layout do not change the version."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _semantic_problems(raw: dict[str, Any], known_kinds: set[str] | None) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    rules = raw.get("rules") or []
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict):
            continue
        rule_id = rule.get("id")
        where = f"rules[{index}]" + (f" ({rule_id})" if rule_id else "")
        if isinstance(rule_id, str):
            if rule_id in seen:
                problems.append(f"{where}.id: duplicate rule id {rule_id!r}")
            seen.add(rule_id)
        when_raw = rule.get("when")
        when: dict[str, Any] = when_raw if isinstance(when_raw, dict) else {}
        kinds_raw = when.get("kinds")
        kinds: list[Any] = kinds_raw if isinstance(kinds_raw, list) else []
        if rule.get("decision") == Effect.ALLOW and any(k in {"*", "*.*"} for k in kinds):
            problems.append(
                f"{where}.when.kinds: an allow rule must name kinds "
                "(a bare '*' would allow kinds nobody reviewed)"
            )
        if known_kinds is not None:
            for pattern in kinds:
                if isinstance(pattern, str) and not any(
                    fnmatch.fnmatchcase(k, pattern.lower()) for k in known_kinds
                ):
                    problems.append(f"{where}.when.kinds: {pattern!r} names no known kind")
        if rule.get("decision") != Effect.REQUIRE_APPROVAL and rule.get("approval"):
            problems.append(f"{where}.approval: only require_approval rules take approval")
    zones = [("default_timezone", raw.get("default_timezone"))]
    timezones = raw.get("timezones")
    if isinstance(timezones, dict):
        zones.extend((f"timezones.{k}", v) for k, v in timezones.items())
    for where, zone in zones:
        if isinstance(zone, str):
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                problems.append(f"{where}: unknown time zone {zone!r}")
    return problems


def parse_policy(
    text: str, *, source: str = "<memory>", known_kinds: set[str] | None = None
) -> Policy:
    """Parse and compile; one :class:`ConfigurationError` lists every problem found."""
    try:
        raw = safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(
            f"{source}: not valid YAML", problems=[f"{source}: {exc}"]
        ) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigurationError(
            f"{source}: the policy file must hold a mapping",
            problems=[f"{source}: top level is not a mapping"],
        )
    problems: list[str] = []
    document: PolicyDocument | None = None
    try:
        document = PolicyDocument.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "(root)"
            problems.append(f"{where}: {error['msg']}")
    problems.extend(_semantic_problems(raw, known_kinds))
    if problems or document is None:
        raise ConfigurationError(
            f"{source}: {len(problems)} policy error(s)",
            problems=[f"{source}: {p}" for p in problems],
        )
    policy = Policy(document=document, content_hash=content_hash(raw), source=source)
    policy._compile()
    return policy


def load_policy(path: Path, *, known_kinds: set[str] | None = None) -> Policy:
    """Read, validate and compile a policy file."""
    if not path.is_file():
        raise ConfigurationError(
            f"policy file not found: {path}", problems=[f"policy file not found: {path}"]
        )
    return parse_policy(path.read_text(encoding="utf-8"), source=str(path), known_kinds=known_kinds)


def default_policy_path() -> Path:
    """config/policies.yaml, else config/policies.example.yaml (cwd, then source tree)."""
    roots = [Path("config"), Path(__file__).resolve().parents[1] / "config"]
    for name in ("policies.yaml", "policies.example.yaml"):
        for root in roots:
            candidate = root / name
            if candidate.is_file():
                return candidate
    return roots[-1] / "policies.example.yaml"


class PolicyStore:
    """The deployment's current policy: loaded on first use, then kept in step with its file.

    ``current()`` looks at the file's size and modification time at most once every
    ``check_interval_s``; when they changed (an admin's edit, `assistant rollback config`)
    the file is loaded again. A file that no longer parses is refused: the policy in force
    stays, and the failure is logged, so a bad edit never leaves the service without one.
    A store given a ``policy`` object (no file) never reloads.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        policy: Policy | None = None,
        known_kinds: set[str] | None = None,
        check_interval_s: float = 1.0,
        monotonic: Callable[[], float] = time_module.monotonic,
    ) -> None:
        self.path = path
        self.known_kinds = known_kinds
        self._policy = policy
        self._watch = policy is None
        self._check_interval_s = check_interval_s
        self._monotonic = monotonic
        self._signature: tuple[int, int] | None = None
        self._checked_at = 0.0

    def _file(self) -> Path:
        return self.path or default_policy_path()

    def _stat(self) -> tuple[int, int] | None:
        try:
            stat = self._file().stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def current(self) -> Policy:
        if self._policy is None:
            signature = self._stat()
            self._policy = load_policy(self._file(), known_kinds=self.known_kinds)
            self._signature, self._checked_at = signature, self._monotonic()
            return self._policy
        if self._watch and self._monotonic() - self._checked_at >= self._check_interval_s:
            self._checked_at = self._monotonic()
            signature = self._stat()
            if signature is not None and signature != self._signature:
                self._signature = signature
                self._reload_changed_file()
        return self._policy

    def _reload_changed_file(self) -> None:
        previous = self._policy
        try:
            loaded = load_policy(self._file(), known_kinds=self.known_kinds)
        except ConfigurationError as exc:
            log.error(
                "policy.reload_refused",
                source=str(self._file()),
                kept=previous.version if previous else None,
                problems=exc.problems[:5],
            )
            return
        self._policy = loaded
        if previous is None or loaded.version != previous.version:
            log.warning(
                "policy.reloaded",
                source=loaded.source,
                version=loaded.version,
                previous=previous.version if previous else None,
            )

    def reload(self) -> Policy:
        self._policy = None
        return self.current()
