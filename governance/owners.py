"""Owners: the deployment, each connector instance, the policy and the exception queue.

Each names a person, their role and a contact (an email address or a webhook URL). The
configured owners (settings, a connector instance's ``owner``, the policy file's ``owner:``
block) may be replaced through the admin API; those rows take precedence. Production
refuses to start while any owner is missing (:func:`owner_problems`).

Failed actions and failed compensations are routed to an owner (the action's connector
instance's owner, else the exception queue's, else the deployment's), and so are quality
alerts (the exception queue's owner, else the deployment's): after the transaction that
queued the exception or raised the alert commits, :class:`OwnerRouter` emails them through
the tenant's own email connector or POSTs to their webhook (retrying 429, 5xx and
timeouts, honouring ``Retry-After``), and audits the routing, failed or not. A webhook URL
may carry a token, so the audit log keeps only its scheme and host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import structlog
from sqlalchemy import column, select, table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from assistant.core.clock import utcnow
from assistant.core.db import create_engine, create_session_factory
from assistant.core.errors import ConfigurationError, ValidationFailedError
from assistant.core.ids import new_id
from assistant.core.principal import Principal, system_principal
from assistant.core.settings import OwnerSettings, Settings
from governance.aftercommit import after_commit
from governance.audit import AuditAction, AuditEventIn, Outcome, record
from governance.models import Action, ActionException
from governance.policy import PolicyDocument, default_policy_path, load_policy
from governance.production_models import OwnerRecord
from integrations.base import Capability, DraftRequest, EmailAddress

if TYPE_CHECKING:
    import httpx

log = structlog.stdlib.get_logger(__name__)

Scope = Literal["deployment", "exceptions", "policy", "connector"]
SCOPES: tuple[Scope, ...] = ("deployment", "exceptions", "policy", "connector")
UNASSIGNED = "unassigned"

# Stored connector instances live in the app's table; governance reads only two columns
# (it never imports the app's models).
_STORED_CONNECTORS = table("connector_instances", column("tenant_id"), column("name"))


@dataclass(frozen=True, slots=True)
class OwnerEntry:
    """One thing that needs an owner, and the owner it has (None: missing)."""

    scope: Scope
    subject: str
    label: str
    owner: OwnerSettings | None
    source: str

    def public(self) -> dict[str, Any]:
        """For the API: a webhook shown as scheme and host only (its path may be a token)."""
        owner = None
        if self.owner is not None:
            owner = {
                **self.owner.model_dump(),
                "channel": channel(self.owner.contact),
                "contact": masked_contact(self.owner.contact),
            }
        return {
            "scope": self.scope,
            "subject": self.subject,
            "label": self.label,
            "source": self.source,
            "owner": owner,
        }


def channel(contact: str) -> Literal["email", "webhook"]:
    return "webhook" if contact.startswith(("http://", "https://")) else "email"


def contact_for_audit(contact: str) -> str:
    """An email address as is; a webhook URL reduced to scheme and host (paths and query
    strings of webhooks often hold tokens)."""
    if channel(contact) == "email":
        return contact
    parts = urlsplit(contact)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


def masked_contact(contact: str) -> str:
    """An email address as is; a webhook URL as ``scheme://host/********``."""
    return contact if channel(contact) == "email" else f"{contact_for_audit(contact)}/********"


def _policy_document(settings: Settings) -> tuple[str, PolicyDocument | None, str | None]:
    path = settings.governance.policy_file or default_policy_path()
    try:
        return str(path), load_policy(path).document, None
    except ConfigurationError as exc:
        return str(path), None, exc.detail


async def _stored(session: AsyncSession, tenant_id: str) -> dict[tuple[str, str], OwnerRecord]:
    try:
        async with session.begin_nested():
            rows = list(
                (
                    await session.execute(
                        select(OwnerRecord).where(OwnerRecord.tenant_id == tenant_id)
                    )
                ).scalars()
            )
    except Exception:  # before the migrations ran, only configured owners count
        log.warning("owners.stored_owners_unavailable", tenant=tenant_id)
        return {}
    return {(row.scope, row.subject): row for row in rows}


def _from_row(row: OwnerRecord) -> OwnerSettings:
    return OwnerSettings(person=row.person, role=row.role, contact=row.contact)


async def connector_names(session: AsyncSession, settings: Settings, tenant_id: str) -> list[str]:
    """Every connector instance of the tenant: from settings and from the database."""
    names = {c.name for c in settings.connectors if c.tenant == tenant_id}
    try:
        async with session.begin_nested():
            stored = (
                await session.execute(
                    select(_STORED_CONNECTORS.c.name).where(
                        _STORED_CONNECTORS.c.tenant_id == tenant_id
                    )
                )
            ).scalars()
            names.update(str(name) for name in stored)
    except Exception:  # the table may not exist before the migrations ran
        log.warning("owners.stored_connectors_unavailable", tenant=tenant_id)
    return sorted(names)


async def owner_entries(
    session: AsyncSession, settings: Settings, tenant_id: str
) -> list[OwnerEntry]:
    """Everything that needs an owner in the tenant, with its effective owner."""
    stored = await _stored(session, tenant_id)

    def pick(
        scope: Scope, subject: str, label: str, configured: OwnerSettings | None, where: str
    ) -> OwnerEntry:
        row = stored.get((scope, subject))
        if row is not None:
            return OwnerEntry(scope, subject, label, _from_row(row), "database")
        return OwnerEntry(
            scope, subject, label, configured, where if configured is not None else ""
        )

    entries = [
        pick("deployment", "", "deployment", settings.owners.deployment, "settings"),
        pick("exceptions", "", "exception queue", settings.owners.exceptions, "settings"),
    ]
    path, document, problem = _policy_document(settings)
    policy_label = (
        f"policy ({path})" if problem is None else f"policy ({path}: cannot be loaded: {problem})"
    )
    entries.append(
        pick(
            "policy",
            "",
            policy_label,
            document.owner if document is not None else None,
            "policy file",
        )
    )
    configured = {c.name: c.owner for c in settings.connectors if c.tenant == tenant_id}
    for name in await connector_names(session, settings, tenant_id):
        entries.append(
            pick("connector", name, f"connector {name}", configured.get(name), "settings")
        )
    return entries


async def missing_owners(session: AsyncSession, settings: Settings, tenant_id: str) -> list[str]:
    """Human-readable names of what has no owner (empty: every owner is named)."""
    return [
        entry.label
        for entry in await owner_entries(session, settings, tenant_id)
        if entry.owner is None
    ]


def deployment_tenants(settings: Settings) -> list[str]:
    """The tenants a deployment serves, as far as its settings tell."""
    tenants = {
        settings.auth.default_tenant,
        settings.sandbox.tenant,
        *(c.tenant for c in settings.connectors),
        *settings.auth.tenants,
    }
    return sorted(tenants)


async def owner_problems(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> list[str]:
    """Every missing owner of every tenant, one line each (what production refuses)."""
    problems: list[str] = []
    async with sessions() as session:
        for tenant in deployment_tenants(settings):
            problems.extend(
                f"owners: tenant {tenant}: {label} has no owner"
                for label in await missing_owners(session, settings, tenant)
            )
    return problems


def refuse_without_owners(problems: list[str]) -> None:
    """Raise the one error production start gives when owners are missing."""
    if problems:
        raise ConfigurationError(
            f"production refuses to start without owners ({len(problems)} missing); name "
            "them in settings (owners.deployment, owners.exceptions, connectors[].owner), "
            "the policy file's owner block, or PUT /api/v1/admin/owners",
            problems=problems,
        )


async def check_production_owners(settings: Settings) -> None:
    """For `assistant serve`: in production, refuse (ConfigurationError) without owners."""
    if not settings.is_production:
        return
    engine = create_engine(settings.database_url)
    try:
        problems = await owner_problems(create_session_factory(engine), settings)
    finally:
        await engine.dispose()
    refuse_without_owners(problems)


async def set_owner(
    session: AsyncSession, actor: Principal, scope: str, subject: str, owner: OwnerSettings
) -> OwnerRecord:
    """Name (or replace) the owner of one scope; audited (the webhook URL reduced)."""
    if scope not in SCOPES:
        raise ValidationFailedError(f"unknown owner scope {scope!r}; one of {list(SCOPES)}")
    if (scope == "connector") != bool(subject):
        raise ValidationFailedError(
            "a connector owner names its instance; other scopes take no subject"
        )
    now = utcnow()
    row = (
        await session.execute(
            select(OwnerRecord).where(
                OwnerRecord.tenant_id == actor.tenant_id,
                OwnerRecord.scope == scope,
                OwnerRecord.subject == subject,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        row = OwnerRecord(
            id=new_id(),
            tenant_id=actor.tenant_id,
            scope=scope,
            subject=subject,
            person=owner.person,
            role=owner.role,
            contact=owner.contact,
            updated_by=actor.user_id,
            updated_at=now,
        )
        session.add(row)
    else:
        row.person, row.role, row.contact = owner.person, owner.role, owner.contact
        row.updated_by, row.updated_at = actor.user_id, now
    await session.flush()
    await record(
        session,
        actor,
        AuditEventIn(
            action=AuditAction.OWNER_SET,
            resource_type="owner",
            resource_id=f"{scope}:{subject}" if subject else scope,
            payload={
                "scope": scope,
                "subject": subject,
                "person": owner.person,
                "role": owner.role,
                "channel": channel(owner.contact),
                "contact": contact_for_audit(owner.contact),
            },
        ),
    )
    return row


# --------------------------------------------------------------------------- routing


class NotifyError(Exception):
    """An owner could not be notified; ``retriable`` when trying again may help."""

    def __init__(
        self, detail: str, *, retriable: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(detail)
        self.retriable = retriable
        self.retry_after = retry_after


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class OwnerNotice:
    """Something an owner must hear about: a failed action, a drifting quality rate.

    ``key`` is the idempotency key (one notice per subject, kept across retries);
    ``document`` is the webhook's JSON body (the owner, subject and text are added);
    ``audit`` is what the ``owner.notified`` audit event records besides the routing.
    """

    tenant_id: str
    key: str
    subject: str
    body: str
    document: dict[str, Any]
    resource_type: str
    resource_id: str
    audit: dict[str, Any]
    connector: str | None = None
    correlation_id: str | None = None


class OwnerRouter:
    """Finds the owner of a failure or an alert and notifies them after commit (audited)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        resolver: Any = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.resolver = resolver
        self.transport = transport
        self.sleep = sleep

    async def resolve_owner(
        self, session: AsyncSession, tenant_id: str, connector: str | None = None
    ) -> tuple[OwnerEntry | None, OwnerSettings | None]:
        """The connector instance's owner, else the exception queue's, else the deployment's."""
        entries = {
            (e.scope, e.subject): e for e in await owner_entries(session, self.settings, tenant_id)
        }
        for key in (("connector", connector or ""), ("exceptions", ""), ("deployment", "")):
            entry = entries.get(key)
            if entry is not None and entry.owner is not None:
                return entry, entry.owner
        return None, None

    async def owner_for(self, session: AsyncSession, action: Action) -> str:
        """The owner's name as the exception queue keeps it."""
        _, owner = await self.resolve_owner(session, action.tenant_id, action.connector)
        return owner.person if owner is not None else UNASSIGNED

    def routed(self, session: AsyncSession, exception: ActionException) -> None:
        """Notify the owner once the transaction that queued ``exception`` commits."""
        exception_id = exception.id

        async def notify() -> None:
            await self.deliver(exception_id)

        after_commit(session, notify)

    def notify_after_commit(self, session: AsyncSession, notice: OwnerNotice) -> None:
        """Deliver ``notice`` once the session's transaction commits (dropped on rollback)."""

        async def notify() -> None:
            await self.deliver_notice(notice)

        after_commit(session, notify)

    async def deliver(self, exception_id: str) -> bool:
        """Notify the owner of one queued exception; audit the outcome. True on success."""
        async with self.sessions() as session:
            exception = await session.get(ActionException, exception_id)
            action = await session.get(Action, exception.action_id) if exception else None
            if exception is None or action is None:
                return False
        return await self.deliver_notice(self._exception_notice(action, exception))

    async def deliver_notice(self, notice: OwnerNotice) -> bool:
        """Send ``notice`` to its owner by email or webhook; audit the outcome, failed or not."""
        async with self.sessions() as session:
            entry, owner = await self.resolve_owner(session, notice.tenant_id, notice.connector)
        payload: dict[str, Any] = dict(notice.audit)
        outcome, reason = Outcome.SUCCESS, None
        if owner is None or entry is None:
            outcome, reason = Outcome.FAILURE, "no owner named"
        else:
            payload.update(
                owner=owner.person,
                role=owner.role,
                scope=entry.scope,
                channel=channel(owner.contact),
                contact=contact_for_audit(owner.contact),
            )
            try:
                payload["attempts"] = await self._send(owner, notice)
            except Exception as exc:  # any failure is audited, not raised
                outcome, reason = Outcome.FAILURE, type(exc).__name__
                payload["attempts"] = getattr(exc, "attempts", None)
                log.warning(
                    "owners.notify_failed",
                    resource_type=notice.resource_type,
                    resource_id=notice.resource_id,
                    tenant=notice.tenant_id,
                    error=type(exc).__name__,
                )
        async with self.sessions() as session, session.begin():
            await record(
                session,
                system_principal(notice.tenant_id, "owners"),
                AuditEventIn(
                    action=AuditAction.OWNER_NOTIFIED,
                    outcome=outcome,
                    reason=reason,
                    resource_type=notice.resource_type,
                    resource_id=notice.resource_id,
                    correlation_id=notice.correlation_id,
                    connector=notice.connector,
                    payload=payload,
                ),
            )
        return outcome is Outcome.SUCCESS

    def _exception_notice(self, action: Action, exception: ActionException) -> OwnerNotice:
        what = (
            "compensation failed" if exception.state == "compensation_failed" else "action failed"
        )
        subject = f"[assistant] {what}: {action.kind} ({action.id})"
        link = f"{self.settings.server.public_url.rstrip('/')}/api/v1/actions/{action.id}"
        body = (
            f"A governed action needs its owner.\n\n"
            f"tenant: {action.tenant_id}\naction: {action.id}\nkind: {action.kind}\n"
            f"state: {exception.state}\non behalf of: {action.on_behalf_of or '-'}\n"
            f"error: {exception.error or '-'}\n\n{link}\n"
        )
        return OwnerNotice(
            tenant_id=action.tenant_id,
            key=f"owner-notify-{exception.id}",
            subject=subject,
            body=body,
            document={
                "event": "exception.routed",
                "tenant": action.tenant_id,
                "exception_id": exception.id,
                "action_id": action.id,
                "kind": action.kind,
                "state": exception.state,
                "on_behalf_of": action.on_behalf_of,
                "error": exception.error,
            },
            resource_type="action_exception",
            resource_id=exception.id,
            # action_id rides in the payload: an action's own events are one per transition.
            audit={
                "exception_id": exception.id,
                "state": exception.state,
                "kind": exception.kind,
                "action_id": action.id,
            },
            connector=action.connector,
            correlation_id=action.correlation_id,
        )

    async def _send(self, owner: OwnerSettings, notice: OwnerNotice) -> int:
        if channel(owner.contact) == "email":
            return await self._email(owner, notice)
        return await self._webhook(owner, notice)

    async def _email(self, owner: OwnerSettings, notice: OwnerNotice) -> int:
        if self.resolver is None:
            raise NotifyError("no email connector to notify through")
        connector = self.resolver.get(notice.tenant_id, Capability.EMAIL)
        draft = await connector.create_draft(
            DraftRequest(
                to=[EmailAddress(address=owner.contact, name=owner.person)],
                subject=notice.subject,
                body_text=notice.body,
                idempotency_key=notice.key,
            )
        )
        await connector.send_draft(draft.id)
        return 1

    async def _webhook(self, owner: OwnerSettings, notice: OwnerNotice) -> int:
        config = self.settings.owners
        document = {
            **notice.document,
            "owner": {"person": owner.person, "role": owner.role},
            "subject": notice.subject,
            "text": notice.body,
        }

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            hinted = error.retry_after if isinstance(error, NotifyError) else None
            backoff = min(config.notify_max_wait_s, 0.5 * 2 ** (state.attempt_number - 1))
            return min(config.notify_max_wait_s, hinted if hinted is not None else backoff)

        import httpx  # with the first webhook notice, not at start-up

        async with httpx.AsyncClient(
            timeout=config.notify_timeout_s, transport=self.transport
        ) as client:
            retrying = AsyncRetrying(
                stop=stop_after_attempt(config.notify_attempts),
                wait=wait,
                sleep=self.sleep,
                retry=retry_if_exception(lambda e: isinstance(e, NotifyError) and e.retriable),
                reraise=True,
            )
            async for attempt in retrying:
                with attempt:
                    await self._post(
                        client, owner.contact, document, headers={"Idempotency-Key": notice.key}
                    )
            return int(retrying.statistics.get("attempt_number", 1))

    @staticmethod
    async def _post(
        client: httpx.AsyncClient, url: str, document: dict[str, Any], headers: dict[str, str]
    ) -> None:
        import httpx

        try:
            response = await client.post(url, json=document, headers=headers)
        except httpx.TimeoutException as exc:
            raise NotifyError("webhook timed out", retriable=True) from exc
        except httpx.TransportError as exc:
            raise NotifyError("webhook unreachable", retriable=True) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise NotifyError(
                f"webhook answered {response.status_code}",
                retriable=True,
                retry_after=retry_after_seconds(response.headers.get("Retry-After"), utcnow()),
            )
        if response.status_code >= 400:
            raise NotifyError(f"webhook answered {response.status_code}")
