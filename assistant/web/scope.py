"""Whose data a signed-in person may see and act on in the web app.

The web app asks the same questions as the API and the chat agent, with the same answers:

- *for whom may she act?* herself when she holds the executive role, and each executive
  whose live delegation names her (the delegate principal is built by
  :func:`assistant.auth.principal.acting_as_delegate`, as ``X-On-Behalf-Of`` builds it);
  *with which permissions?* :func:`assistant.auth.permissions.executive_scopes` of that
  principal;
- *which mail is hers?* the mailboxes whose connectors serve her
  (:meth:`assistant.connectors.ConnectorManager.mailboxes_of`: connectors bound to her, or
  an unbound one whose address is her id);
- *which actions are hers?* those filed under her user id (``Action.on_behalf_of``), which
  is where the pipeline files the proposals of a mailbox bound to her and what governance
  checks with ``Principal.acts_for``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from assistant.auth import users
from assistant.auth.models import User
from assistant.auth.permissions import Permission, ensure_acts_for, executive_scopes
from assistant.auth.principal import acting_as_delegate
from assistant.core.errors import NotFoundError, OwnershipError
from assistant.core.principal import ActorType, Principal, Role


@dataclass(frozen=True)
class Executive:
    """An executive the signed-in person may work for, as whom she acts there, and what."""

    user_id: str
    label: str
    #: The person acting for her: herself, or her delegate within the grant's scopes.
    principal: Principal
    #: What ``principal`` may do on her data (``executive_scopes``).
    permissions: frozenset[Permission]
    #: Addresses (lower case) of the mailboxes that serve her.
    mailboxes: frozenset[str]

    @property
    def is_self(self) -> bool:
        return self.principal.on_behalf_of is None

    def owns_mail(self, mailbox: str | None) -> bool:
        return mailbox is not None and mailbox.lower() in self.mailboxes

    def owns_action(self, on_behalf_of: str | None) -> bool:
        return on_behalf_of is not None and on_behalf_of == self.user_id

    def acting(self, owner: str | None, permission: Permission) -> Principal:
        """The principal that governance sees when the person uses ``permission`` on data
        filed under ``owner``; another executive's data is as if absent."""
        try:
            ensure_acts_for(self.principal, owner, permission)
        except OwnershipError:
            raise NotFoundError("no such item") from None
        return self.principal


def _mailboxes(connectors: Any, tenant_id: str, executive: str) -> frozenset[str]:
    return frozenset(a.lower() for a in connectors.mailboxes_of(tenant_id, executive))


def _executive(
    principal: Principal, user: User | None, connectors: Any, label: str
) -> Executive | None:
    scopes = executive_scopes(principal)
    held = scopes.get(principal.acting_for)
    if not held:
        return None
    return Executive(
        user_id=principal.acting_for,
        label=(user.display_name or user.username) if user is not None else label,
        principal=principal,
        permissions=held,
        mailboxes=_mailboxes(connectors, principal.tenant_id, principal.acting_for),
    )


async def executives_for(
    session: AsyncSession, principal: Principal, connectors: Any
) -> list[Executive]:
    """The executives ``principal`` may work for (``connectors``: the ConnectorManager).
    Admins and auditors serve nobody here: oversight goes through the audit log."""
    if principal.actor_type is not ActorType.USER:
        return []
    if principal.on_behalf_of is not None:  # already acting for one (checked against a grant)
        boss = await session.get(User, principal.on_behalf_of)
        found = _executive(principal, boss, connectors, principal.on_behalf_of)
        return [found] if found is not None else []
    executives: list[Executive] = []
    if principal.has(Role.EXECUTIVE):
        me = await session.get(User, principal.user_id)
        mine = _executive(principal, me, connectors, principal.display_name or principal.user_id)
        if mine is not None:
            executives.append(mine)
    if principal.has(Role.DELEGATE):
        for grant in await users.list_delegations(
            session, principal.tenant_id, user_id=principal.user_id
        ):
            if grant.delegate_id != principal.user_id or grant.executive_id == principal.user_id:
                continue
            boss = await session.get(User, grant.executive_id)
            if boss is None or boss.tenant_id != principal.tenant_id or boss.disabled:
                continue
            acting = acting_as_delegate(principal, grant.executive_id, grant.scopes)
            found = _executive(acting, boss, connectors, boss.id)
            if found is not None:
                executives.append(found)
    return executives


def choose(executives: list[Executive], wanted: str | None) -> Executive | None:
    """The executive a person chose (by user id), else the first one; None for nobody."""
    for executive in executives:
        if executive.user_id == wanted:
            return executive
    return executives[0] if executives else None
