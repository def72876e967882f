"""Who is acting: the principal of a request, a worker, or the system itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    EXECUTIVE = "executive"
    DELEGATE = "delegate"
    ADMIN = "admin"
    AUDITOR = "auditor"


class ActorType(StrEnum):
    USER = "user"
    SERVICE = "service"  # an API key of a service account
    SYSTEM = "system"  # the assistant's own workers (executor, expiry, ingestion)
    #: The chat agent proposing at a person's request: her rights, never a system bypass.
    AGENT = "agent"


#: The actor id of the chat agent's proposals (the person who asked is ``requested_by``).
AGENT_ID = "agent"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``on_behalf_of`` is set when a delegate acts for an executive."""

    user_id: str
    tenant_id: str
    roles: frozenset[Role] = field(default_factory=frozenset)
    actor_type: ActorType = ActorType.USER
    on_behalf_of: str | None = None
    display_name: str | None = None
    source_ip: str | None = None
    #: Acting for an executive: the permissions her grant names (None: every delegable one).
    delegated_scopes: frozenset[str] | None = None
    #: The credential used when it is not the person's own sign-in (``apikey:<prefix>``):
    #: audit rows name the person, and this says which of their keys acted.
    credential: str | None = None
    #: The agent's principal only: the person whose question it answers.
    requested_by: str | None = None

    def has(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))

    def acts_for(self, executive: str | None) -> bool:
        """Whether ``executive``'s data is this request's business: she is the caller (an
        executive not acting for anyone else), or the executive a delegate acts for.
        Admins and auditors act for nobody: their roles reach configuration and oversight,
        never an executive's mailbox, calendar or review queue."""
        if not executive:
            return False
        if self.on_behalf_of is not None:
            return self.on_behalf_of == executive
        return self.has(Role.EXECUTIVE) and self.user_id == executive

    def holds_scope(self, scope: str) -> bool:
        """A delegate holds only what the executive's grant names; others are not scoped."""
        if self.on_behalf_of is None or self.delegated_scopes is None:
            return True
        return scope in self.delegated_scopes

    @property
    def acting_for(self) -> str:
        """Whose mailbox and actions this request is about."""
        return self.on_behalf_of or self.user_id

    @property
    def in_own_right(self) -> bool:
        """The executive acting for herself: with no ``on_behalf_of``, or for one of her own
        identities (the web app's principal for her mailbox's address keeps her roles and
        has no grant), never as anyone's delegate."""
        if self.actor_type not in (ActorType.USER, ActorType.SERVICE):
            return False
        if self.on_behalf_of is None:
            return self.has(Role.EXECUTIVE)
        return self.delegated_scopes is None and self.has(Role.EXECUTIVE)


def agent_principal(person: Principal, *, executive: str | None = None) -> Principal:
    """The chat agent proposing at ``person``'s request, for ``executive`` (default: whom she
    acts for). It holds exactly her rights (tenant, roles, a delegate's grant scopes), so
    every check made at propose time is made on hers; it is not the system (no bypass) and
    it approves nothing. Its audit rows name it, with her as ``requested_by``."""
    if person.actor_type not in (ActorType.USER, ActorType.SERVICE):
        raise ValueError("the agent proposes only at a person's request")
    return Principal(
        user_id=AGENT_ID,
        tenant_id=person.tenant_id,
        roles=person.roles,
        actor_type=ActorType.AGENT,
        on_behalf_of=executive or person.acting_for,
        display_name="assistant",
        source_ip=person.source_ip,
        # An executive's own rights are not a grant: None keeps every scope hers.
        delegated_scopes=person.delegated_scopes,
        credential=person.credential,
        requested_by=person.user_id,
    )


def system_principal(tenant_id: str, worker: str = "system") -> Principal:
    """The assistant's own workers, for audit rows of automatic transitions."""
    return Principal(user_id=worker, tenant_id=tenant_id, actor_type=ActorType.SYSTEM)
