"""The executive's delegates room: who may act for her, within which scopes; she grants a
delegation, narrows it (a new grant replaces the old one) and revokes it.

Only for herself: the room answers to the signed-in person's own roles, never to the
executive she is serving as somebody's delegate, so a delegate can neither open it for her
executive nor widen her own grant. Grants and revocations go through the same service as
the API (``assistant.auth.users``): validated and audited alike.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.api.deps import SessionDep
from assistant.auth import users
from assistant.auth.models import User
from assistant.auth.permissions import DELEGABLE, Permission
from assistant.core.errors import PermissionDeniedError, ValidationFailedError
from assistant.core.principal import Role
from assistant.web.pages import PREFIX, Page, PageDep, back

router = APIRouter(prefix=f"{PREFIX}/delegates", include_in_schema=False)

ROOM = f"{PREFIX}/delegates"
#: What each delegable scope lets a delegate do, as the form explains it.
SCOPE_WORDS: dict[str, str] = {
    Permission.MAIL_READ.value: "read your mail",
    Permission.CALENDAR_READ.value: "read your calendar",
    Permission.ERP_READ.value: "ask questions of the ERP for you",
    Permission.TRIAGE_READ.value: "see how your inbox was triaged",
    Permission.TRIAGE_CORRECT.value: "correct your inbox's triage",
    Permission.DRAFTS_WRITE.value: "draft replies for you",
    Permission.ACTIONS_READ.value: "see your actions and their history",
    Permission.ACTIONS_PROPOSE.value: "propose actions for you",
    Permission.ACTIONS_CANCEL.value: "cancel your actions",
    Permission.REVIEW_READ.value: "see your review queue",
    Permission.REVIEW_DECIDE.value: "approve, edit or reject actions for you",
}
assert set(SCOPE_WORDS) == {p.value for p in DELEGABLE}, "every delegable scope is explained"


async def _own(page: Page, permission: Permission) -> None:
    """The person herself must hold ``permission`` (403 otherwise, audited): what she may do
    for the executive she serves does not count here."""
    if page.person_can(permission):
        return
    if page.services.auth is not None:
        await page.services.auth.audit_access_denied(page.request, page.person, [permission.value])
    raise PermissionDeniedError("only an executive manages her own delegates")


async def _people(session: AsyncSession, page: Page) -> tuple[list[User], list[User]]:
    """Her tenant's people, and those she may choose among them: enabled, holding the
    delegate role, not herself."""
    tenant = page.person.tenant_id
    roles = await users.roles_by_user(session, tenant)
    people = await users.list_users(session, tenant)
    candidates = [
        u
        for u in people
        if u.id != page.person.user_id
        and not u.disabled
        and Role.DELEGATE in roles.get(u.id, frozenset())
    ]
    return people, candidates


@router.get("", response_class=HTMLResponse)
async def delegates(page: PageDep, session: SessionDep) -> HTMLResponse:
    # Granting, not reading, makes her an executive with delegates: admins and auditors read
    # every delegation on the People page instead.
    await _own(page, Permission.DELEGATIONS_GRANT)
    me = page.person.user_id
    grants = [
        g
        for g in await users.list_delegations(
            session, page.person.tenant_id, user_id=me, include_revoked=True
        )
        if g.executive_id == me
    ]
    grants.sort(key=lambda g: (g.revoked_at is not None, g.granted_at))  # active ones first
    people, candidates = await _people(session, page)
    return page.render(
        "delegates.html",
        grants=grants,
        names={u.id: u.display_name or u.username for u in people},
        candidates=candidates,
        scopes=SCOPE_WORDS,
        may_revoke=page.person_can(Permission.DELEGATIONS_REVOKE),
        notice=page.request.query_params.get("notice"),
    )


@router.post("", response_class=HTMLResponse)
async def grant(request: Request, page: PageDep, session: SessionDep) -> RedirectResponse:
    """A delegation from her to one of the offered delegates, within the ticked scopes. A
    delegate who already has one gets the new scopes instead (the old grant is revoked)."""
    await _own(page, Permission.DELEGATIONS_GRANT)
    form = await request.form()
    chosen = form.get("delegate")
    scopes = [str(v) for v in form.getlist("scopes")]
    unknown = [s for s in scopes if s not in SCOPE_WORDS]
    if unknown:
        raise ValidationFailedError(
            "unknown scope", problems=[f"scopes: {s[:40]!r} is not delegable" for s in unknown]
        )
    if not scopes:
        raise ValidationFailedError("tick at least one thing the delegate may do")
    _, candidates = await _people(session, page)
    delegate = next((u for u in candidates if isinstance(chosen, str) and u.id == chosen), None)
    if delegate is None:
        raise ValidationFailedError("choose one of the delegates offered")
    executive = await users.get_user(session, page.person.tenant_id, page.person.user_id)
    await users.grant_delegation(
        session, page.person, executive=executive, delegate=delegate, scopes=scopes
    )
    return back(page, ROOM, notice=f"{delegate.display_name or delegate.username} may act for you")


@router.post("/{delegation_id}/revoke", response_class=HTMLResponse)
async def revoke(
    page: PageDep, session: SessionDep, delegation_id: Annotated[str, Path(max_length=64)]
) -> RedirectResponse:
    """Her own delegations only: another executive's is not found (404), as through the API."""
    await _own(page, Permission.DELEGATIONS_REVOKE)
    await users.revoke_delegation(
        session,
        page.person,
        page.person.tenant_id,
        delegation_id,
        only_executive=page.person.user_id,
    )
    return back(page, ROOM, notice="delegation revoked")
