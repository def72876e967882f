"""Every name an executive goes by, for the policy.

Governed actions are filed under the executive's user id (``Action.on_behalf_of``), but an
admin writes the policy file with names she knows: an address in ``timezones:``, a glob in a
rule's ``when: on_behalf_of:``. :func:`executive_aliases` gives the policy all of them, so
either spelling matches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncSession

from assistant.auth.models import User


@runtime_checkable
class ExecutiveBindings(Protocol):
    """Which connector instances serve an executive (``ConnectorManager.instances_for``)."""

    def instances_for(
        self, tenant_id: str, executive: str, capability: Any = None
    ) -> Sequence[Any]: ...


def bindings_of(resolver: object | None) -> ExecutiveBindings | None:
    """The resolver when it knows bindings (the app's ConnectorManager), else None."""
    return resolver if isinstance(resolver, ExecutiveBindings) else None


async def executive_aliases(
    session: AsyncSession,
    tenant_id: str,
    executive: str | None,
    bindings: ExecutiveBindings | None = None,
) -> tuple[str, ...]:
    """The executive's names, lower case, without repeats, in this order: her id as filed
    (``executive``), her user name when this deployment issued it (a local user's, unique
    in the tenant and set by an admin), then the addresses of the mailboxes and calendars
    bound to her alone, sorted. ``Policy.timezone_for`` takes the first one the policy
    configures, so a zone set for her id or user name wins over a mailbox's.

    Her e-mail is not a name here, nor an Entra user's name: they come from a token's claims
    (which a directory may let a person edit, and which nothing keeps unique), and a person
    who set them to another executive's address would pick up that executive's rules.

    A mailbox or calendar bound to several executives names none of them: its address is
    left out, or one executive's rule would match another's actions. ``executive`` need not
    be a user id (tests and the CLI file actions under an address): it is kept as given.
    """
    if not executive:
        return ()
    return aliases_of_user(tenant_id, executive, await session.get(User, executive), bindings)


class UserNames(Protocol):
    """What :func:`aliases_of_user` reads of the executive's user row."""

    @property
    def tenant_id(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def username(self) -> str: ...


def aliases_of_user(
    tenant_id: str,
    executive: str | None,
    user: UserNames | None,
    bindings: ExecutiveBindings | None = None,
) -> tuple[str, ...]:
    """:func:`executive_aliases` from the executive's user row (``user``, None when there is
    none), read by the caller."""
    if not executive:
        return ()
    names: list[str] = [executive]
    if user is not None and user.tenant_id == tenant_id and user.source == "local":
        names.append(user.username)
    if bindings is not None:
        addresses = {
            address
            for instance in bindings.instances_for(tenant_id, executive)
            if (address := instance.address) is not None
            and (not instance.executives or tuple(instance.executives) == (executive,))
        }
        names += sorted(addresses)
    return tuple(dict.fromkeys(n.strip().lower() for n in names if n.strip()))
