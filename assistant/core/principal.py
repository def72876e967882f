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

    def has(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def acting_for(self) -> str:
        """Whose mailbox and actions this request is about."""
        return self.on_behalf_of or self.user_id


def system_principal(tenant_id: str, worker: str = "system") -> Principal:
    """The assistant's own workers, for audit rows of automatic transitions."""
    return Principal(user_id=worker, tenant_id=tenant_id, actor_type=ActorType.SYSTEM)
