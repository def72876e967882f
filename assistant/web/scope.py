"""Whose data a signed-in person may see and act on: the one scoping helper of the web app.

Every room (inbox, review, meetings, history) and the inbox API ask :func:`executives_for`
and filter by :meth:`Executive.owns`. Until ownership is modelled (messages, triage results
and actions belonging to an executive), an executive's data is what is filed under her user
id or under her e-mail address (a mailbox's address is the ``mailbox`` of its triage results
and the ``on_behalf_of`` of the actions proposed from it). Switching to a stored ownership
model changes this module only.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from assistant.auth import users
from assistant.auth.models import User
from assistant.auth.principal import AuthenticatedPrincipal, AuthMethod
from assistant.core.errors import PermissionDeniedError
from assistant.core.principal import ActorType, Principal, Role


@dataclass(frozen=True)
class Executive:
    """An executive the signed-in person may work for, and the ids her data is filed under."""

    user_id: str
    label: str
    ids: frozenset[str]
    #: The grant's scopes when the person is her delegate; None when she is the person.
    delegated_scopes: frozenset[str] | None = None

    @property
    def is_self(self) -> bool:
        return self.delegated_scopes is None

    def owns(self, owner_id: str | None) -> bool:
        return owner_id is not None and owner_id.lower() in self.ids

    def acting(self, person: Principal, owner_id: str) -> Principal:
        """The principal that governance sees when ``person`` acts on data filed under
        ``owner_id`` (one of this executive's ids): the delegate acting for her, or the
        executive herself acting for her mailbox."""
        if not self.owns(owner_id):
            raise PermissionDeniedError("this belongs to another executive")
        if self.is_self and owner_id.lower() == person.user_id.lower():
            return person
        return AuthenticatedPrincipal(
            user_id=person.user_id,
            tenant_id=person.tenant_id,
            roles=person.roles if self.is_self else frozenset({Role.DELEGATE}),
            actor_type=person.actor_type,
            on_behalf_of=owner_id,
            display_name=person.display_name,
            source_ip=person.source_ip,
            auth_method=getattr(person, "auth_method", AuthMethod.SESSION),
            delegated_scopes=self.delegated_scopes,
        )


def _ids(user: User | None, user_id: str) -> frozenset[str]:
    ids = {user_id.lower()}
    if user is not None and user.email:
        ids.add(user.email.strip().lower())
    return frozenset(ids)


async def executives_for(session: AsyncSession, principal: Principal) -> list[Executive]:
    """The executives ``principal`` may see: herself when she holds the executive role, and
    each executive whose active delegation names her. Admins and auditors see nobody's mail
    here: oversight goes through the audit log."""
    if principal.actor_type is not ActorType.USER:
        return []
    if principal.on_behalf_of is not None:  # an API caller acting for one executive
        return [
            e for e in await _granted(session, principal) if e.user_id == principal.on_behalf_of
        ]
    found: list[Executive] = []
    if principal.has(Role.EXECUTIVE):
        me = await session.get(User, principal.user_id)
        if me is not None and me.tenant_id != principal.tenant_id:
            me = None
        found.append(
            Executive(
                user_id=principal.user_id,
                label=principal.display_name or principal.user_id,
                ids=_ids(me, principal.user_id),
            )
        )
    if principal.has(Role.DELEGATE):
        found.extend(await _granted(session, principal))
    return found


async def _granted(session: AsyncSession, principal: Principal) -> list[Executive]:
    """The executives whose active delegation names ``principal``, with the grant's scopes."""
    found = []
    for grant in await users.list_delegations(
        session, principal.tenant_id, user_id=principal.user_id
    ):
        if grant.delegate_id != principal.user_id or grant.executive_id == principal.user_id:
            continue
        boss = await session.get(User, grant.executive_id)
        if boss is None or boss.tenant_id != principal.tenant_id or boss.disabled:
            continue
        found.append(
            Executive(
                user_id=boss.id,
                label=boss.display_name or boss.username,
                ids=_ids(boss, boss.id),
                delegated_scopes=frozenset(grant.scopes),
            )
        )
    return found


def choose(executives: list[Executive], wanted: str | None) -> Executive | None:
    """The executive a person chose (by user id), else the first one; None for nobody."""
    for executive in executives:
        if executive.user_id == wanted:
            return executive
    return executives[0] if executives else None
