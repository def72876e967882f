"""Settings: one `Settings` object, from defaults < YAML file < environment (prefix ASSISTANT_).

Nested sections are plain models addressed with ``__`` in environment names, for example
``ASSISTANT_DATABASE__URL``. Nothing here is read at import time: call :func:`get_settings`.
"""

import os
import re
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from assistant.core.errors import ConfigurationError
from assistant.core.tenancy import tenant_name_problem
from assistant.core.yaml_loading import safe_load

CONFIG_FILE_ENV = "ASSISTANT_CONFIG_FILE"
#: Marker of the development secret; production refuses to start with it.
INSECURE_SECRET = "insecure-development-secret-change-me"  # noqa: S105


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class DatabaseSettings(BaseModel):
    url: str | None = Field(
        default=None,
        title="Database URL",
        description="SQLAlchemy async URL. Default: SQLite at <data_dir>/assistant.db. "
        "PostgreSQL: postgresql+asyncpg://user@host/db.",
    )
    migration_url: str | None = Field(
        default=None,
        description="URL `assistant db upgrade|downgrade` use: the schema owner's. Default: "
        "url. On PostgreSQL the service's url then names a member of assistant_app, which "
        "may append audit rows but never rewrite them.",
    )
    echo: bool = Field(default=False, description="Log every SQL statement (development only).")
    pool_size: int = Field(
        default=15,
        ge=1,
        le=100,
        description="Connections kept per process, on PostgreSQL and on a SQLite file alike "
        "(up to 10 more open while busy, closed once idle for 10 s). Keep it at the requests "
        "in flight per process: group-committed proposals finish together. On SQLite each "
        "connection is a thread of its own (aiosqlite); WAL readers never wait for the writer.",
    )


class ServerSettings(BaseModel):
    host: str = Field(default="127.0.0.1", description="Address `assistant serve` binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `assistant serve` binds to.")
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Server processes `assistant serve` starts on the port (uvicorn workers); "
        "about one per core. Caches and pools are per process.",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="URL by which users and providers reach the service (issuer, callbacks).",
    )
    cors_origins: list[str] = Field(default_factory=list, description="Allowed browser origins.")
    readiness_timeout_seconds: float = Field(
        default=1.0,
        gt=0,
        le=30,
        description="Longest wait for each /readyz check (database, each connector).",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=1024**3,
        description="Largest request body; a larger one answers 413 before authentication.",
    )
    max_header_bytes: int = Field(
        default=32 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Largest request line plus headers; more answers 431 (and h11's own limit).",
    )
    max_json_depth: int = Field(
        default=32,
        ge=2,
        le=1000,
        description="Deepest nesting of arrays and objects in a JSON body; deeper answers 422.",
    )
    max_notifications: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Most change notifications in one webhook call; more answers 413.",
    )


class LogSettings(BaseModel):
    level: str = Field(default="INFO", description="Root log level.")
    format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: JSON in production, console in development."
    )

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return upper


class LLMProvider(StrEnum):
    NONE = "none"
    OPENAI = "openai"
    AZURE_OPENAI = "azure_openai"
    OPENAI_COMPATIBLE = "openai_compatible"


class LLMTaskSettings(BaseModel):
    """Overrides for one task; unset fields fall back to the llm section."""

    model: str | None = Field(default=None, description="Model or deployment name.")
    max_output_tokens: int | None = Field(default=None, ge=1, description="Output limit.")
    temperature: float | None = Field(default=None, ge=0, le=2, description="Temperature.")


class ModelPrice(BaseModel):
    """Price of a model in USD per 1M tokens."""

    input: float = Field(ge=0, description="Uncached input tokens.")
    cached_input: float | None = Field(
        default=None, ge=0, description="Cached input tokens (default: the input price)."
    )
    output: float = Field(ge=0, description="Output tokens.")


def _default_prices() -> dict[str, Any]:
    # Plain data, validated into ModelPrice, so that the README table shows it as JSON.
    return {"gpt-4o-mini": {"input": 0.15, "cached_input": 0.075, "output": 0.60}}


class LLMSettings(BaseModel):
    model_config = ConfigDict(validate_default=True)

    provider: LLMProvider = Field(
        default=LLMProvider.NONE,
        description="none (rules only), openai, azure_openai or "
        "openai_compatible (vLLM, Ollama, llama.cpp, LM Studio).",
    )
    api_key: SecretStr | None = Field(default=None, description="API key of the provider.")
    base_url: str | None = Field(default=None, description="Base URL (openai_compatible).")
    azure_endpoint: str | None = Field(default=None, description="Azure OpenAI endpoint.")
    api_version: str | None = Field(default=None, description="Azure OpenAI API version.")
    model: str = Field(default="gpt-4o-mini", description="Default model or deployment name.")
    timeout_s: float = Field(default=30.0, gt=0, description="Per-request timeout in seconds.")
    max_retries: int = Field(default=3, ge=0, le=10, description="Retries on 429/5xx/timeouts.")
    retry_initial_s: float = Field(
        default=1.0,
        gt=0,
        description="First retry delay; doubles per attempt. A Retry-After "
        "from the provider replaces it.",
    )
    retry_max_s: float = Field(
        default=60.0, gt=0, description="Longest wait between retries, Retry-After included."
    )
    max_output_tokens: int = Field(
        default=1024,
        ge=1,
        description="Output-token limit of a call (tasks may override "
        "it); answers whose reported usage exceeds it are rejected.",
    )
    output_token_param: Literal["auto", "max_tokens", "max_completion_tokens"] = Field(
        default="auto",
        description="Request field carrying the limit. auto: "
        "max_completion_tokens for openai and azure_openai, max_tokens for openai_compatible "
        "(llama.cpp and others ignore max_completion_tokens).",
    )
    structured_output: Literal["auto", "function_calling", "json_schema"] = Field(
        default="auto",
        description="How structured answers are requested. auto: json_schema "
        "for openai and azure_openai, function_calling for openai_compatible.",
    )
    temperature: float = Field(default=0.0, ge=0, le=2, description="Sampling temperature.")
    concurrency: int = Field(
        default=4, ge=1, le=256, description="Requests in flight at once per provider."
    )
    malformed_retries: int = Field(
        default=1,
        ge=0,
        le=5,
        description="Re-asks after an answer that does not fit the "
        "schema, before the item goes to a person.",
    )
    tasks: dict[str, LLMTaskSettings] = Field(
        default_factory=dict,
        description="Per task (triage, drafting): model, "
        "max_output_tokens, temperature overrides, e.g. ASSISTANT_LLM__TASKS__TRIAGE__MODEL.",
    )
    prices: dict[str, ModelPrice] = Field(
        default_factory=_default_prices,
        description="USD per 1M tokens by model: input, cached_input, output. Models not "
        "listed are metered at cost 0 and logged.",
    )

    def for_task(self, task: str) -> LLMTaskSettings:
        """The task's overrides resolved against the defaults above."""
        own = self.tasks.get(task) or LLMTaskSettings()
        return LLMTaskSettings(
            model=own.model or self.model,
            max_output_tokens=own.max_output_tokens or self.max_output_tokens,
            temperature=self.temperature if own.temperature is None else own.temperature,
        )


def _tenant_name(value: str) -> str:
    """Refuse names reserved for chains of no tenant (assistant.core.tenancy)."""
    problem = tenant_name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


class SandboxSettings(BaseModel):
    seed_dir: Path | None = Field(
        default=None, description="Folder of the sandbox seed files. Default: config/sandbox."
    )
    tenant: str = Field(default="default", description="Tenant that owns the sandbox data.")

    _tenant_allowed = field_validator("tenant")(_tenant_name)


class DraftingSettings(BaseModel):
    """Reply drafts: the executive's voice, and whether the pipeline proposes drafts."""

    enabled: bool = Field(
        default=True,
        description="Propose a reply draft for `respond` mail and the meeting "
        "flow for `schedule` mail after triage (every draft is a governed action).",
    )
    signature: str = Field(
        default="",
        max_length=500,
        description="Closing and name the drafts end with (empty: none).",
    )
    tone: str = Field(
        default="warm, concise and professional",
        max_length=200,
        description="How the executive writes, in a few words (given to the model).",
    )
    language: str = Field(
        default="en",
        max_length=35,
        description="Language of the drafts (BCP 47 code or name, e.g. en, de, fr).",
    )
    reply_all: bool = Field(
        default=False, description="Reply to everyone on the thread, not only the sender."
    )
    max_body_chars: int = Field(
        default=4000,
        ge=200,
        le=50_000,
        description="Longest draft body kept; longer model output is cut.",
    )


class TriageLearningSettings(BaseModel):
    """The learned triage stage between the rules and the model (per tenant)."""

    enabled: bool = Field(
        default=True,
        description="Train the tenant's learned stage from reviewed corrections at each "
        "triage run, and let it decide before the model.",
    )
    min_examples: int = Field(
        default=20,
        ge=4,
        le=100_000,
        description="Fewest reviewed examples before the stage is trained at all.",
    )
    target_precision: float = Field(
        default=0.9,
        gt=0.0,
        le=1.0,
        description="The stage decides only above the confidence at which its held-out "
        "decisions on the tenant's own examples are this precise (95% Wilson lower bound).",
    )


class AgentSettings(BaseModel):
    """The chat agent: its prompt and the budget of one turn (one question and its work)."""

    prompt: str = Field(
        default="agent@1", description="Versioned prompt of the agent (name@version)."
    )
    max_tool_calls: int = Field(
        default=8, ge=1, le=50, description="Most tool calls in one turn; then the turn stops."
    )
    max_model_calls: int = Field(
        default=6, ge=1, le=50, description="Most model calls in one turn; then the turn stops."
    )
    max_tokens: int = Field(
        default=24_000,
        ge=500,
        le=1_000_000,
        description="Most tokens (input + output, as the provider reports) in one turn.",
    )
    max_message_chars: int = Field(
        default=4000, ge=10, le=100_000, description="Longest question accepted."
    )
    max_tool_result_chars: int = Field(
        default=6000,
        ge=200,
        le=200_000,
        description="Longest tool result given to the model; longer ones are cut.",
    )
    history_turns: int = Field(
        default=6, ge=0, le=50, description="Earlier questions and answers sent with a new one."
    )
    tool_protocol: Literal["native", "step"] = Field(
        default="native",
        description="native: the provider's tool calling (the model chooses); step: every "
        "step is one forced `agent_step` call naming the tool (for servers that ignore "
        "tool_choice auto, such as llama-cpp-python).",
    )
    stream_answer: bool = Field(
        default=True,
        description="Stream the answer as the model writes it (native tool protocol only). "
        "Turn it off for a server whose streams carry no usage (llama-cpp-python's): its "
        "streamed calls are metered with output tokens counted from the chunks and no input "
        "tokens, so the turn's token budget sees less than was used.",
    )


class QualitySettings(BaseModel):
    """Quality monitoring: spot checks of auto-approved actions and drift alerts."""

    spot_check_share: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="Share of auto-approved actions sampled "
        "into the spot-check queue (by a hash of the action id, so the sample is "
        "reproducible).",
    )
    window_days: int = Field(
        default=7,
        ge=1,
        le=365,
        description="Rolling window (days) over which drift alerts measure each rate.",
    )
    min_samples: int = Field(
        default=20,
        ge=1,
        description="Fewest decisions in the window before a rate can "
        "raise an alert (fewer: too noisy to judge).",
    )
    max_rejection_rate: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="Alert when the share of reviewed "
        "actions of a kind that people reject exceeds this.",
    )
    max_edit_rate: float = Field(
        default=0.4,
        ge=0.0,
        le=1.0,
        description="Alert when the share of reviewed "
        "actions of a kind that people edit before approving exceeds this.",
    )
    max_triage_correction_rate: float = Field(
        default=0.15,
        ge=0.0,
        le=1.0,
        description="Alert when the share of triage results people correct exceeds this.",
    )
    max_error_rate: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Alert when the share of executed actions that fail exceeds this.",
    )


class CostSettings(BaseModel):
    """Total cost of running the assistant, and the time it saves (amounts in USD)."""

    infrastructure_monthly: float = Field(
        default=0.0, ge=0.0, description="Hosting, database, storage and network per month."
    )
    support_monthly: float = Field(
        default=0.0, ge=0.0, description="People time for support and operations per month."
    )
    maintenance_monthly: float = Field(
        default=0.0, ge=0.0, description="Upgrades, connector and policy upkeep per month."
    )
    model_updates_monthly: float = Field(
        default=0.0, ge=0.0, description="Prompt and model evaluation and updates per month."
    )
    target_monthly_items: int = Field(
        default=1000,
        ge=0,
        description="Items a month the production deployment is "
        "expected to handle (the projection's volume).",
    )
    minutes_saved_per_item: float = Field(
        default=2.0, ge=0.0, description="Minutes of a person's time one handled item saves."
    )
    loaded_hourly_cost: float = Field(
        default=100.0, ge=0.0, description="Loaded cost of one hour of that person's time."
    )

    @property
    def fixed_monthly(self) -> float:
        return (
            self.infrastructure_monthly
            + self.support_monthly
            + self.maintenance_monthly
            + self.model_updates_monthly
        )


#: The decision gate's criteria, in report order.
GATE_CRITERIA = (
    "volume",
    "triage_accuracy",
    "action_acceptance",
    "error_rate",
    "exception_rate",
    "cost_per_item",
    "monthly_run_rate",
    "roi",
    "owners_named",
    "rollback_drill",
    "audit_chain",
)


class GateSettings(BaseModel):
    """The go / no-go decision gate: each criterion's threshold, and which are hard.

    A hard criterion that fails answers NO-GO; a soft one that fails (or any criterion
    without data) answers REVISE; all passing answers GO.
    """

    min_volume: int = Field(
        default=200,
        ge=0,
        description="Fewest items handled (triaged messages plus proposed actions) in the period.",
    )
    min_triage_accuracy: float = Field(
        default=0.9,
        ge=0.0,
        le=1.0,
        description="Least share of triage results people did not correct.",
    )
    min_action_acceptance: float = Field(
        default=0.8,
        ge=0.0,
        le=1.0,
        description="Least share of reviewed actions people approved (edited or not).",
    )
    max_error_rate: float = Field(
        default=0.02, ge=0.0, le=1.0, description="Most share of executed actions that failed."
    )
    max_exception_rate: float = Field(
        default=0.02,
        ge=0.0,
        le=1.0,
        description="Most exceptions (failed actions and compensations) per proposed action.",
    )
    max_cost_per_item: float = Field(
        default=0.5,
        ge=0.0,
        description="Most total cost (LLM plus prorated fixed costs) per handled item.",
    )
    max_monthly_run_rate: float = Field(
        default=5000.0, ge=0.0, description="Most projected monthly cost at the target volume."
    )
    min_roi: float = Field(
        default=0.0,
        description="Least return on investment at the target volume "
        "((value of time saved - cost) / cost; 0 = break even).",
    )
    drill_max_age_days: int = Field(
        default=30,
        ge=1,
        description="The last rollback drill must have passed within this many days.",
    )
    hard: list[str] = Field(
        default_factory=lambda: [
            "triage_accuracy",
            "action_acceptance",
            "error_rate",
            "owners_named",
            "rollback_drill",
            "audit_chain",
        ],
        description="Criteria whose failure answers NO-GO (the others answer REVISE).",
    )

    @field_validator("hard")
    @classmethod
    def _known_criteria(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(GATE_CRITERIA))
        if unknown:
            raise ValueError(f"unknown gate criteria {unknown}; known: {list(GATE_CRITERIA)}")
        return value


class GovernanceSettings(BaseModel):
    """Governed actions: policy file, hold windows, retries, background runner."""

    policy_file: Path | None = Field(
        default=None,
        description="Policy YAML. Default: config/policies.yaml, else "
        "config/policies.example.yaml.",
    )
    hold_window_seconds: dict[str, float] = Field(
        default_factory=lambda: {"email.send": 30.0},
        description="Hold window per action kind (undo is possible inside it).",
    )
    hold_irreversible_seconds: float = Field(
        default=30.0, ge=0, description="Hold window of irreversible kinds not listed above."
    )
    hold_compensable_seconds: float = Field(
        default=0.0, ge=0, description="Hold window of compensable kinds not listed above."
    )
    hold_reversible_seconds: float = Field(
        default=0.0, ge=0, description="Hold window of reversible kinds not listed above."
    )
    auto_with_undo_seconds: float = Field(
        default=30.0, ge=0, description="Least hold window under autonomy auto_with_undo."
    )
    max_attempts: int = Field(default=5, ge=1, le=100, description="Executions before FAILED.")
    backoff_initial_seconds: float = Field(default=2.0, gt=0, description="First retry delay.")
    backoff_max_seconds: float = Field(default=300.0, gt=0, description="Longest retry delay.")
    lease_seconds: float = Field(
        default=120.0,
        gt=0,
        description="A claimed action whose worker is silent this long "
        "is recovered by another worker.",
    )
    runner: Literal["auto", "inprocess", "procrastinate", "off"] = Field(
        default="auto",
        description="Background work: auto (procrastinate on PostgreSQL, "
        "in-process otherwise), inprocess, procrastinate, or off (tests).",
    )
    poll_interval_seconds: float = Field(default=1.0, gt=0, description="Runner poll period.")
    expiry_interval_seconds: float = Field(
        default=30.0, gt=0, description="How often expired reviews are closed."
    )
    worker_concurrency: int = Field(
        default=8, ge=1, le=64, description="Actions one worker process executes at once."
    )
    propose_batch_max: int = Field(
        default=64,
        ge=1,
        le=1000,
        description="Most proposals of the API one server process stores in one "
        "transaction (group commit: those that arrive while the previous batch commits "
        "wait for the next; a lone proposal is stored at once). 1 stores each alone.",
    )
    connector_concurrency: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Actions executing at once per connector instance in one worker: "
        "a slow peer holds up only its own actions.",
    )
    embedded_worker: bool = Field(
        default=True,
        description="`assistant serve` executes actions itself (on PostgreSQL too). Set "
        "false when separate `assistant worker` processes do it.",
    )
    heartbeat_seconds: float = Field(
        default=5.0, gt=0, description="How often a worker records that it is alive (/readyz)."
    )


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class OwnerSettings(BaseModel):
    """Who answers for something: a person, their role, and how to reach them."""

    model_config = ConfigDict(extra="forbid")

    person: str = Field(min_length=1, max_length=200, description="The owner's name.")
    role: str = Field(min_length=1, max_length=200, description="Their role, e.g. IT lead.")
    contact: str = Field(
        min_length=3,
        max_length=500,
        description="An email address (notified through the "
        "tenant's own email connector) or an http(s) webhook URL.",
    )

    @field_validator("contact")
    @classmethod
    def _email_or_url(cls, value: str) -> str:
        value = value.strip()
        if _EMAIL.match(value) or value.startswith(("https://", "http://")):
            return value
        raise ValueError("contact must be an email address or an http(s) URL")


class OwnersSettings(BaseModel):
    """Owners of the deployment and of the exception queue (connectors and the policy name
    their own: `connectors[].owner`, the policy file's `owner:` block)."""

    deployment: OwnerSettings | None = Field(
        default=None,
        description="Owner of the deployment as a whole (JSON: person, role, contact).",
    )
    exceptions: OwnerSettings | None = Field(
        default=None,
        description="Owner of the exception queue: failed actions and failed "
        "compensations are routed to them (JSON: person, role, contact).",
    )
    notify_timeout_s: float = Field(
        default=10.0, gt=0, description="Timeout of one webhook call to an owner."
    )
    notify_attempts: int = Field(
        default=4, ge=1, le=10, description="Webhook attempts (429, 5xx and timeouts retry)."
    )
    notify_max_wait_s: float = Field(
        default=30.0,
        ge=0,
        description="Longest wait between webhook attempts, Retry-After included.",
    )


class AutonomySettings(BaseModel):
    """The bar an action kind's measured record must meet before its autonomy is raised."""

    window_days: int = Field(
        default=90, ge=1, le=3650, description="Decisions counted over this many days."
    )
    min_decisions: int = Field(
        default=50,
        ge=0,
        description="Fewest human decisions (approved or rejected) on the kind before a promotion.",
    )
    min_accepted_unedited: float = Field(
        default=0.9,
        ge=0.0,
        le=1.0,
        description="Least share of those decisions approved without an edit.",
    )


class AuditAnchorSettings(BaseModel):
    """Where signed checkpoints are copied outside the database (append-only)."""

    kind: Literal["file", "http", "none"] = Field(
        default="file",
        description="file: a local JSON-lines file opened O_APPEND; http: a witness server; "
        "none: no anchor (verify then cannot see a rewrite behind deleted checkpoints).",
    )
    file: Path | None = Field(
        default=None,
        description="The anchor file (kind file). Default: <data_dir>/audit_anchor.jsonl; "
        "in production put it where the database's users cannot write, and chattr +a it.",
    )
    url: str | None = Field(default=None, description="Base URL of the witness (kind http).")
    token: SecretStr | None = Field(
        default=None, description="Bearer token for the witness (kind http)."
    )
    timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="Timeout of one call to the witness."
    )

    @model_validator(mode="after")
    def _url_for_http(self) -> "AuditAnchorSettings":
        if self.kind == "http" and not self.url:
            raise ValueError("audit.anchor.url is required when audit.anchor.kind is http")
        return self


class AuditSettings(BaseModel):
    """The tamper-evident audit log: signed checkpoints of each tenant's hash chain."""

    checkpoint_key_file: Path | None = Field(
        default=None,
        description="Ed25519 private key (PEM) that signs checkpoints; kept "
        "outside the database, created with mode 0600 on first use. Default: "
        "<data_dir>/audit_ed25519.pem.",
    )
    checkpoint_every_events: int = Field(
        default=100,
        ge=0,
        description="Sign and anchor a checkpoint every N events of a tenant (0: off). "
        "Bounds the unanchored tail.",
    )
    checkpoint_every_seconds: int = Field(
        default=60,
        ge=0,
        description="Sign and anchor a checkpoint of a chain whose oldest unanchored event "
        "is older than this (background runner; 0: off). Bounds the unanchored tail.",
    )
    anchor: AuditAnchorSettings = Field(default_factory=AuditAnchorSettings)
    auth_failure_rate: float = Field(
        default=1.0,
        ge=0,
        description="Failed authentications recorded per second in the system chain "
        "(beyond the burst, the rest are counted, not recorded one by one).",
    )
    auth_failure_burst: int = Field(
        default=20,
        ge=1,
        description="Failed authentications recorded at once before the rate applies.",
    )


class ConnectorInstanceSettings(BaseModel):
    name: str = Field(description="Instance name, unique in its tenant.")
    slug: str = Field(description="Connector slug, e.g. sandbox.email or msgraph.email.")
    tenant: str = Field(default="default", description="Tenant the instance belongs to.")
    config: dict[str, Any] = Field(default_factory=dict, description="Connector's own settings.")
    owner: OwnerSettings | None = Field(
        default=None, description="Who owns this instance (person, role, contact)."
    )
    executives: list[str] = Field(
        default_factory=list,
        description="User ids of the executives this instance serves (a shared mailbox "
        "names each). Also bound by `assistant connectors bind` or `sandbox seed --executive`.",
    )

    _tenant_allowed = field_validator("tenant")(_tenant_name)


#: JWS algorithms a deployment may allow: asymmetric only (never "none", never HMAC).
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class TenantAuthSettings(BaseModel):
    tid: str | None = Field(
        default=None,
        description="Value of the tokens' `tid` claim for this tenant (the Entra "
        "directory id). Default: the tenant's own name.",
    )
    allowed_issuers: list[str] = Field(
        default_factory=list,
        description="Token issuers trusted for this tenant. Default: the "
        "local issuer (local mode) or <entra.authority_host>/<tid>/v2.0 (entra mode).",
    )


class EntraSettings(BaseModel):
    client_id: str | None = Field(default=None, description="Application (client) id.")
    client_secret: SecretStr | None = Field(default=None, description="Client secret.")
    authority_host: str = Field(
        default="https://login.microsoftonline.com",
        description="Entra authority host (sovereign clouds: their own host).",
    )
    instance_discovery: bool = Field(
        default=True,
        description="Let msal check the authority host with Microsoft; false for "
        "hosts Microsoft does not know (private clouds, test issuers).",
    )
    login_tenant: str | None = Field(
        default=None,
        description="Directory used for web sign-in: a tid, or 'organizations' "
        "for a multi-tenant app. Default: the default tenant's tid.",
    )
    scopes: list[str] = Field(
        default_factory=list,
        description="Scopes requested at sign-in besides openid and "
        "profile, e.g. api://<client-id>/access_as_user or Mail.Read.",
    )
    session_recheck_s: int = Field(
        default=300,
        ge=30,
        le=3600,
        description="A web session asks Entra again (msal's silent refresh with the "
        "session's refresh token) at most this many seconds after its last answer: roles "
        "removed in Entra apply by then, and a disabled or refused account ends the session. "
        "What the app controls (disabled, withdrawn roles) applies within auth.recheck_s.",
    )


class AuthSettings(BaseModel):
    mode: Literal["local", "entra"] = Field(
        default="local",
        description="local: built-in issuer and passwords; entra: Microsoft "
        "Entra ID sign-in and tokens.",
    )
    issuer: str | None = Field(
        default=None, description="URL of the local issuer. Default: server.public_url."
    )
    audiences: list[str] = Field(
        default_factory=lambda: ["executive-assistant"],
        description="Accepted `aud` values; local tokens carry the first. Entra mode also "
        "accepts the client id and api://<client id>.",
    )
    algorithms: list[str] = Field(
        default_factory=lambda: ["RS256"], description="Accepted JWS algorithms (asymmetric)."
    )
    leeway_s: int = Field(default=30, ge=0, le=300, description="Clock skew allowed on exp/nbf.")
    token_ttl_s: int = Field(
        default=900, ge=60, le=86400, description="Lifetime of local access tokens."
    )
    default_tenant: str = Field(default="default", description="Tenant of sign-in forms and CLI.")
    tenants: dict[str, TenantAuthSettings] = Field(
        default_factory=dict,
        description="Per tenant: its `tid` and its allowed issuers.",
    )
    jwks_cache_s: float = Field(default=300, gt=0, description="How long JWKS are cached.")
    jwks_refresh_cooldown_s: float = Field(
        default=30, ge=0, description="Minimum time between JWKS refreshes on an unknown kid."
    )
    ca_bundle: Path | None = Field(
        default=None, description="Extra CA bundle to trust for issuers (private PKI)."
    )
    http_timeout_s: float = Field(default=10, gt=0, description="Timeout of calls to issuers.")
    session_cookie: str = Field(default="ea_session", description="Web session cookie name.")
    cookie_secure: bool | None = Field(
        default=None,
        description="Secure cookies. Default: on, except plain-http development.",
    )
    cookie_samesite: Literal["lax", "strict"] = Field(
        default="lax", description="SameSite of the session cookie."
    )
    session_ttl_s: int = Field(default=28800, ge=300, description="Web session lifetime.")
    recheck_s: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="Every request rechecks its user's current state (disabled, roles) "
        "read at most this many seconds ago (0: on every request).",
    )
    lockout_threshold: int = Field(
        default=5, ge=1, description="Failed passwords in a row that lock an account."
    )
    lockout_s: int = Field(default=900, ge=1, description="How long a locked account stays so.")
    signin_rate_limit: int = Field(
        default=20, ge=1, description="Failed sign-ins allowed per source address per window."
    )
    signin_rate_window_s: int = Field(default=900, ge=1, description="Rate-limit window.")
    entra: EntraSettings = Field(default_factory=EntraSettings)

    _default_tenant_allowed = field_validator("default_tenant")(_tenant_name)

    @field_validator("tenants")
    @classmethod
    def _tenants_allowed(
        cls, value: dict[str, TenantAuthSettings]
    ) -> dict[str, TenantAuthSettings]:
        for name in value:
            _tenant_name(name)
        return value

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        bad = [alg for alg in value if alg not in ASYMMETRIC_ALGORITHMS]
        if bad or not value:
            raise ValueError(f"only asymmetric algorithms are allowed, not {bad or 'none'}")
        return value

    @model_validator(mode="after")
    def _entra_needs_client(self) -> "AuthSettings":
        if self.mode == "entra":
            missing = [
                name
                for name, value in (
                    ("entra.client_id", self.entra.client_id),
                    ("entra.client_secret", self.entra.client_secret),
                )
                if not value
            ]
            if not self.tenants:
                missing.append("tenants (each tenant with its tid)")
            if missing:
                raise ValueError(f"entra mode needs {', '.join(missing)}")
        return self


def _default_connectors() -> list[ConnectorInstanceSettings]:
    return [
        ConnectorInstanceSettings(name="sandbox-mail", slug="sandbox.email"),
        ConnectorInstanceSettings(name="sandbox-calendar", slug="sandbox.calendar"),
    ]


class Settings(BaseSettings):
    """All configuration of one deployment."""

    model_config = SettingsConfigDict(
        env_prefix="ASSISTANT_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    environment: Environment = Field(
        default=Environment.DEVELOPMENT, description="development or production."
    )
    data_dir: Path = Field(
        default=Path(".assistant"), description="Where the SQLite file, keys and caches live."
    )
    secret_key: SecretStr = Field(
        default=SecretStr(INSECURE_SECRET),
        description="Secret for sessions and encryption at rest; at least 32 characters.",
    )
    debug: bool = Field(default=False, description="Expose debugging aids (never in production).")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    governance: GovernanceSettings = Field(default_factory=GovernanceSettings)
    drafting: DraftingSettings = Field(default_factory=DraftingSettings)
    triage_learning: TriageLearningSettings = Field(default_factory=TriageLearningSettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    costs: CostSettings = Field(default_factory=CostSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    owners: OwnersSettings = Field(default_factory=OwnersSettings)
    autonomy: AutonomySettings = Field(default_factory=AutonomySettings)
    connectors: list[ConnectorInstanceSettings] = Field(
        default_factory=_default_connectors, description="Connector instances to build."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        sources.append(file_secret_settings)
        return tuple(sources)

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'assistant.db').resolve()}"

    @property
    def migration_database_url(self) -> str:
        """Where migrations run: as the schema's owner."""
        return self.database.migration_url or self.database_url

    @property
    def audit_key_file(self) -> Path:
        """Where the checkpoint signing key lives (outside the database)."""
        return self.audit.checkpoint_key_file or self.data_dir / "audit_ed25519.pem"

    @property
    def audit_anchor_file(self) -> Path:
        """The local anchor file (audit.anchor.kind file)."""
        return self.audit.anchor.file or self.data_dir / "audit_anchor.jsonl"

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    def _audit_placement_problems(self) -> list[str]:
        # Whoever can write the SQLite file can write beside it: a signing key or an anchor
        # there protects nothing against the attacker the checkpoints are for.
        data_dir = self.data_dir.expanduser().resolve()
        problems: list[str] = []
        if self.audit_key_file.expanduser().resolve().is_relative_to(data_dir):
            problems.append(
                "audit.checkpoint_key_file: lies in data_dir, beside the database; "
                "keep the signing key where the database's users cannot read it"
            )
        if self.audit.anchor.kind == "none":
            problems.append("audit.anchor.kind: none leaves checkpoints only in the database")
        elif self.audit.anchor.kind == "file" and (
            self.audit_anchor_file.expanduser().resolve().is_relative_to(data_dir)
        ):
            problems.append(
                "audit.anchor.file: lies in data_dir, beside the database; put it where "
                "the database's users cannot write (and chattr +a it), or use a witness"
            )
        return problems

    def insecure_defaults(self) -> list[str]:
        """What production refuses: every insecure default, listed together."""
        problems: list[str] = []
        secret = self.secret_key.get_secret_value()
        if secret == INSECURE_SECRET:
            problems.append(
                "secret_key: the development default is set; "
                "set ASSISTANT_SECRET_KEY to a random value of 32+ characters"
            )
        elif len(secret) < 32:
            problems.append("secret_key: shorter than 32 characters")
        if self.debug:
            problems.append("debug: must be false in production")
        problems.extend(self._audit_placement_problems())
        if self.database.echo:
            problems.append("database.echo: logs every statement; must be false in production")
        if "*" in self.server.cors_origins:
            problems.append("server.cors_origins: '*' allows any site")
        if self.auth.cookie_secure is False:
            problems.append("auth.cookie_secure: session cookies must be Secure in production")
        if (
            self.llm.provider is not LLMProvider.NONE
            and self.llm.provider in {LLMProvider.OPENAI, LLMProvider.AZURE_OPENAI}
            and self.llm.api_key is None
        ):
            problems.append(f"llm.api_key: required for provider {self.llm.provider.value}")
        return problems


def _format_validation_error(error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(root)"
        lines.append(f"{where}: {item['msg']}")
    return lines


def load_settings(**overrides: Any) -> Settings:
    """Build settings, raising one ConfigurationError that lists every problem."""
    problems: list[str] = []
    config_file = os.environ.get(CONFIG_FILE_ENV)
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigurationError(
                f"{CONFIG_FILE_ENV}: no such file: {config_file}",
                problems=[f"config file not found: {config_file}"],
            )
        try:
            loaded = safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigurationError(
                "the configuration file is not valid YAML", problems=[f"{config_file}: {exc}"]
            ) from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigurationError(
                "the configuration file must hold a mapping",
                problems=[f"{config_file}: top level is not a mapping"],
            )
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems.extend(_format_validation_error(exc))
        raise ConfigurationError(
            f"{len(problems)} configuration error(s)", problems=problems
        ) from None
    if settings.is_production:
        problems.extend(settings.insecure_defaults())
    if problems:
        raise ConfigurationError(
            "production refuses insecure defaults: " + "; ".join(problems), problems=problems
        )
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded on first use (never at import time)."""
    return load_settings()
