"""The admin's people room: users with their roles, delegations with their scopes, API keys
(the key shown once), disabled accounts.

Writes go through the same services as the API (assistant.auth.users, assistant.auth.apikeys),
so they are validated and audited the same way. Nobody edits their own roles or disables
themselves here: refused with 403 and audited as ``auth.access.denied`` before anything is
read from the form (another admin must).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import FormData

from assistant.api.deps import SessionDep
from assistant.auth import apikeys, users
from assistant.auth.audit import audit_detached
from assistant.auth.permissions import Permission
from assistant.core.clock import utcnow
from assistant.core.errors import SeparationOfDutiesError, ValidationFailedError
from assistant.core.principal import Role
from assistant.web.consoles import require_tenant
from assistant.web.pages import PREFIX, Page, PageDep, back
from governance.audit import AuditAction, Outcome

router = APIRouter(prefix=f"{PREFIX}/admin/people", include_in_schema=False)

UserId = Annotated[str, Path(min_length=1, max_length=64)]
ROOM = f"{PREFIX}/admin/people"


def _roles(form: FormData) -> list[Role]:
    """The ticked roles; anything else is a typed 422, not a silent drop."""
    chosen = [str(v) for v in form.getlist("roles")]
    known = {r.value for r in Role}
    unknown = [v for v in chosen if v not in known]
    if unknown:
        raise ValidationFailedError(
            "unknown role", problems=[f"roles: {v[:40]!r} is not a role" for v in unknown]
        )
    return [Role(v) for v in dict.fromkeys(chosen)]


def _text(form: FormData, name: str, limit: int) -> str | None:
    value = form.get(name)
    text = value.strip() if isinstance(value, str) else ""
    if len(text) > limit:
        raise ValidationFailedError(f"{name}: at most {limit} characters")
    return text or None


async def _refuse_self(page: Page, user_id: str, what: str) -> None:
    """Nobody changes their own roles or account state: 403, audited."""
    if user_id != page.person.user_id:
        return
    await audit_detached(
        page.services.sessions,
        page.person,
        AuditAction.AUTH_ACCESS_DENIED,
        outcome=Outcome.DENIED,
        reason=f"nobody {what} themselves",
        resource_type="user",
        resource_id=user_id,
        payload={"needed": ["another admin"]},
        correlation_id=getattr(page.request.state, "correlation_id", None),
    )
    raise SeparationOfDutiesError(f"nobody {what} themselves: another admin must")


async def _render(page: Page, session: SessionDep, **extra: Any) -> HTMLResponse:
    tenant = page.person.tenant_id
    roles = await users.roles_by_user(session, tenant)
    people = await users.list_users(session, tenant)
    names = {u.id: u.display_name or u.username for u in people}
    grants = (
        await users.list_delegations(session, tenant, include_revoked=True)
        if page.can(Permission.DELEGATIONS_READ)
        else []
    )
    keys = (
        await apikeys.list_api_keys(session, tenant)
        if page.can(Permission.APIKEYS_MANAGE)
        else None
    )
    return page.render(
        "admin_people.html",
        people=[(u, sorted(r.value for r in roles.get(u.id, frozenset()))) for u in people],
        names=names,
        grants=grants,
        keys=keys,
        all_roles=[r.value for r in Role],
        now=utcnow(),
        notice=page.request.query_params.get("notice"),
        **extra,
    )


@router.get("", response_class=HTMLResponse)
async def people(page: PageDep, session: SessionDep) -> HTMLResponse:
    await require_tenant(page, Permission.USERS_READ)
    return await _render(page, session)


@router.post("", response_class=HTMLResponse)
async def add_person(request: Request, page: PageDep, session: SessionDep) -> RedirectResponse:
    """A new local user with her roles (the password optional: Entra users have none)."""
    await require_tenant(page, Permission.USERS_MANAGE)
    form = await request.form()
    password = form.get("password")
    user = await users.create_user(
        session,
        page.person,
        tenant_id=page.person.tenant_id,
        username=_text(form, "username", 200) or "",
        roles=_roles(form),
        display_name=_text(form, "display_name", 200),
        email=_text(form, "email", 320),
        password=password if isinstance(password, str) and password else None,
    )
    return back(page, ROOM, notice=f"{user.username} added")


@router.post("/{user_id}/roles", response_class=HTMLResponse)
async def set_roles(
    request: Request, page: PageDep, session: SessionDep, user_id: UserId
) -> RedirectResponse:
    await require_tenant(page, Permission.USERS_MANAGE)
    await _refuse_self(page, user_id, "edits the roles of")
    user = await users.get_user(session, page.person.tenant_id, user_id)
    after = await users.set_roles(session, page.person, user, _roles(await request.form()))
    shown = ", ".join(sorted(r.value for r in after)) or "none"
    return back(page, ROOM, notice=f"{user.username}: roles {shown}")


@router.post("/{user_id}/disabled", response_class=HTMLResponse)
async def set_disabled(
    page: PageDep,
    session: SessionDep,
    user_id: UserId,
    disabled: Annotated[bool, Form()],
) -> RedirectResponse:
    await require_tenant(page, Permission.USERS_MANAGE)
    await _refuse_self(page, user_id, "disables or enables")
    user = await users.get_user(session, page.person.tenant_id, user_id)
    await users.set_disabled(session, page.person, user, disabled)
    return back(page, ROOM, notice=f"{user.username} {'disabled' if disabled else 'enabled'}")


@router.post("/api-keys", response_class=HTMLResponse)
async def create_key(request: Request, page: PageDep, session: SessionDep) -> HTMLResponse:
    """A new key, shown on this response only (never stored, never shown again)."""
    await require_tenant(page, Permission.APIKEYS_MANAGE)
    form = await request.form()
    name = _text(form, "name", 200)
    roles = _roles(form)
    if not name or not roles:
        raise ValidationFailedError("a key needs a name and at least one role")
    days_text = _text(form, "expires_in_days", 5)
    try:
        days = int(days_text) if days_text else None
    except ValueError:
        raise ValidationFailedError("expires in days: a whole number") from None
    if days is not None and not 1 <= days <= 3650:
        raise ValidationFailedError("expires in days: 1 to 3650")
    row, key = await apikeys.create_api_key(
        session,
        page.person,
        tenant_id=page.person.tenant_id,
        name=name,
        roles=roles,
        expires_at=utcnow() + timedelta(days=days) if days else None,
        personal=form.get("personal") == "on",
    )
    return await _render(page, session, new_key=key, new_key_name=row.name)


@router.post("/api-keys/{key_id}/revoke", response_class=HTMLResponse)
async def revoke_key(
    page: PageDep, session: SessionDep, key_id: Annotated[str, Path(max_length=64)]
) -> RedirectResponse:
    await require_tenant(page, Permission.APIKEYS_MANAGE)
    row = await apikeys.find_api_key(session, page.person.tenant_id, key_id)
    await apikeys.revoke_api_key(session, page.person, row)
    return back(page, ROOM, notice=f"key {row.name} revoked")


@router.post("/delegations/{delegation_id}/revoke", response_class=HTMLResponse)
async def revoke_delegation(
    page: PageDep, session: SessionDep, delegation_id: Annotated[str, Path(max_length=64)]
) -> RedirectResponse:
    await require_tenant(page, Permission.DELEGATIONS_REVOKE)
    await users.revoke_delegation(session, page.person, page.person.tenant_id, delegation_id)
    return back(page, ROOM, notice="delegation revoked")
