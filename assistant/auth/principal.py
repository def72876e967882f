"""The authenticated principal: the core ``Principal`` plus how it authenticated and, for a
delegate, what its executive granted."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from assistant.core.principal import Principal, Role


class AuthMethod(StrEnum):
    BEARER = "bearer"
    API_KEY = "api_key"
    SESSION = "session"


@dataclass(frozen=True)
class AuthenticatedPrincipal(Principal):
    """A caller authenticated by this service. ``delegated_scopes`` is set when acting for an
    executive (``on_behalf_of``): the permissions of the executive's grant."""

    auth_method: AuthMethod = AuthMethod.BEARER


def acting_as_delegate(
    person: Principal, executive_id: str, scopes: Iterable[str]
) -> AuthenticatedPrincipal:
    """``person`` acting for ``executive_id`` under a live grant of ``scopes``: a delegate and
    nothing more (her own roles do not carry over to the executive's data). The API builds
    it from ``X-On-Behalf-Of``, the web app from the executive a delegate chose."""
    return AuthenticatedPrincipal(
        user_id=person.user_id,
        tenant_id=person.tenant_id,
        roles=frozenset({Role.DELEGATE}),
        actor_type=person.actor_type,
        on_behalf_of=executive_id,
        display_name=person.display_name,
        source_ip=person.source_ip,
        auth_method=getattr(person, "auth_method", AuthMethod.SESSION),
        delegated_scopes=frozenset(scopes),
        credential=person.credential,
    )


def parse_roles(values: Iterable[object]) -> frozenset[Role]:
    """Roles from a token claim or a table; Entra app roles are capitalized (Executive,
    Admin, Auditor). Unknown values are ignored: they grant nothing."""
    roles: set[Role] = set()
    for value in values:
        if isinstance(value, str):
            try:
                roles.add(Role(value.strip().lower()))
            except ValueError:
                continue
    return frozenset(roles)
