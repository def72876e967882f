"""Whose data the agent works on, and what it may do there: the ONE place that decides.

Every tool of the agent gets its connectors and rights from :func:`resolve_scope`, so that
the ownership model of the deployment is applied here and nowhere else.

The agent talks to executives and to delegates acting for one. The executive's mailbox
and calendar are the connectors that serve her (``ConnectorInstance.serves``, the rule of
the API and the web app: those bound to her, or an unbound one whose address is her id);
no other mailbox or calendar is ever opened, whatever the question says. ERP questions go
to the tenant's ERP company. Each tool is offered only while the caller holds its
permission (a delegate: only what the executive's grant names).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.auth.models import User
from assistant.auth.permissions import Permission, effective_permissions
from assistant.core.errors import PermissionDeniedError
from assistant.core.principal import ActorType, Principal, Role
from integrations.base import Capability


@dataclass(frozen=True)
class Bound:
    """A connector instance the executive owns: its configured name and the connector."""

    name: str
    connector: Any
    #: The identity the instance serves her under (a bound executive's id, or its own
    #: address): her proposals on it are filed under this one, as governance checks that
    #: the action's connector serves its executive. None: it serves any of her identities.
    serves: str | None = None


@dataclass(frozen=True)
class AgentScope:
    """The executive a conversation is about, the caller, and what the agent may reach."""

    principal: Principal
    executive: str
    identities: frozenset[str]
    permissions: frozenset[Permission]
    mailbox: Bound | None = None
    calendar: Bound | None = None
    erp: Bound | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def tenant_id(self) -> str:
        return self.principal.tenant_id

    def allows(self, permission: Permission) -> bool:
        return permission in self.permissions

    @property
    def own_domain(self) -> str | None:
        """The domain of the executive's own mailbox: addresses there are colleagues."""
        if self.mailbox is None:
            return None
        address = str(getattr(self.mailbox.connector, "mailbox", ""))
        return address.rsplit("@", 1)[1].lower() if "@" in address else None


def ensure_may_chat(principal: Principal) -> None:
    """Executives, and delegates while acting for one; nobody else (admins and auditors
    hold no executive's data)."""
    if principal.actor_type is ActorType.SYSTEM:
        raise PermissionDeniedError("the assistant's own workers do not chat")
    if principal.on_behalf_of is not None:
        return
    if not principal.has(Role.EXECUTIVE):
        raise PermissionDeniedError(
            "the assistant chat is for executives and for delegates acting for one"
        )


async def identities_of(session: AsyncSession, principal: Principal) -> frozenset[str]:
    """The executive's user id and the email address of their user record, lower case."""
    executive = principal.acting_for
    found = {executive.lower()}
    email = (
        await session.execute(
            select(User.email).where(User.id == executive, User.tenant_id == principal.tenant_id)
        )
    ).scalar_one_or_none()
    if email:
        found.add(email.lower())
    return frozenset(found)


def _owned(
    instances: Iterable[Any], tenant_id: str, capability: Capability, executive: str
) -> Bound | None:
    """The first working instance of ``capability`` that serves ``executive``, by the same
    rule as the API and the web app (``ConnectorInstance.serves``: the connectors bound to
    her; an unbound one only when its address is her id)."""
    for instance in instances:
        if instance.tenant_id != tenant_id or capability not in instance.capabilities:
            continue
        if instance.connector is not None and instance.serves(executive):
            return Bound(instance.name, instance.connector)
    return None


async def resolve_scope(session: AsyncSession, principal: Principal, connectors: Any) -> AgentScope:
    """The agent's scope for ``principal`` (``connectors``: the ConnectorManager)."""
    ensure_may_chat(principal)
    permissions = effective_permissions(principal)
    who = await identities_of(session, principal)
    instances = list(getattr(connectors, "instances", {}).values())
    notes: list[str] = []
    executive = principal.acting_for
    mailbox = _owned(instances, principal.tenant_id, Capability.EMAIL, executive)
    if mailbox is None:
        notes.append("no mailbox of this executive is connected")
    calendar = _owned(instances, principal.tenant_id, Capability.CALENDAR, executive)
    if calendar is None:
        notes.append("no calendar of this executive is connected")
    erp = next(
        (
            Bound(i.name, i.connector)
            for i in instances
            if i.tenant_id == principal.tenant_id
            and Capability.ERP in i.capabilities
            and i.connector is not None
        ),
        None,
    )
    return AgentScope(
        principal=principal,
        executive=principal.acting_for,
        identities=who,
        permissions=permissions,
        mailbox=mailbox,
        calendar=calendar,
        erp=erp,
        notes=tuple(notes),
    )
