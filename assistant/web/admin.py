"""The admin's rooms: connectors (live health, forms generated from each connector's config
model, test, enable/disable, owner; secrets write-only) and governance (the policy in force,
its versions with diffs, one-click rollback).

Every write goes through the same service code as the admin API (assistant.api.connectors,
governance.config_versions), so it is validated, versioned and audited the same way.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, SecretStr
from sqlalchemy import func, select
from starlette.datastructures import FormData

from assistant.api import connectors as connectors_api
from assistant.api.deps import SessionDep
from assistant.auth import users
from assistant.auth.models import User
from assistant.auth.permissions import Permission
from assistant.change_control import appliers, policy_path
from assistant.connector_store import ConnectorStore, SecretBox, is_configured_in_settings
from assistant.core.clock import utcnow
from assistant.core.errors import ConflictError, SeparationOfDutiesError, ValidationFailedError
from assistant.core.principal import Role
from assistant.core.settings import OwnerSettings
from assistant.governance_app import GovernanceDep, runner_mode
from assistant.web.consoles import live_healths, require_tenant
from assistant.web.pages import PREFIX, Page, PageDep, back
from governance import autonomy, exceptions
from governance.audit import AuditAction, AuditEventIn, Outcome, record
from governance.config_versions import find_version, list_versions, ref, rollback
from governance.drill import last_drill, run_drill
from governance.killswitch import list_switches, set_switch
from governance.models import Action, ActionException
from governance.owners import OwnerRouter, missing_owners, owner_entries
from governance.owners import channel as owner_channel
from governance.policy import Autonomy, load_policy
from governance.policy import content_hash as policy_content_hash
from governance.production_models import ConfigVersion
from governance.workers import WorkerBeat, list_workers
from integrations.base import Capability

router = APIRouter(prefix=f"{PREFIX}/admin", include_in_schema=False)

#: The governance page measures at most this many executive x kind pairs.
MAX_AUTONOMY_ROWS = 100

Reason = Annotated[str, Form(min_length=1, max_length=500)]
FieldKind = Literal["text", "secret", "number", "checkbox", "select", "lines", "json"]


# ---------------------------------------------------------------------------- config forms


@dataclass(frozen=True)
class FormField:
    """One input of a connector form, read from the config model's field."""

    name: str
    title: str
    description: str
    kind: FieldKind
    required: bool
    default: Any = None
    choices: tuple[str, ...] = ()


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The annotation without ``| None``, and whether None was allowed."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _kind(annotation: Any) -> tuple[FieldKind, tuple[str, ...]]:
    if annotation is SecretStr:
        return "secret", ()
    if annotation is bool:
        return "checkbox", ()
    if annotation in (int, float):
        return "number", ()
    if annotation in (str, FilePath):
        return "text", ()
    if typing.get_origin(annotation) is Literal:
        return "select", tuple(str(a) for a in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "select", tuple(str(m.value) for m in annotation)
    if typing.get_origin(annotation) in (list, tuple, set, frozenset) and typing.get_args(
        annotation
    )[:1] == (str,):
        return "lines", ()
    return "json", ()


def form_fields(model: type[BaseModel]) -> list[FormField]:
    """The inputs of a connector's config model, in its own order."""
    fields = []
    for name, info in model.model_fields.items():
        annotation, _ = _unwrap(info.annotation)
        kind, choices = _kind(annotation)
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        if isinstance(default, Enum):
            default = default.value
        fields.append(
            FormField(
                name=name,
                title=info.title or name.replace("_", " ").capitalize(),
                description=info.description or "",
                kind=kind,
                required=info.is_required(),
                default=None if kind == "secret" else default,
                choices=choices,
            )
        )
    return fields


def config_from_form(fields: list[FormField], form: FormData) -> dict[str, Any]:
    """The config a form describes. An empty input is left out (the model's default, or,
    when editing, the stored value); an empty secret always keeps the stored secret."""
    config: dict[str, Any] = {}
    problems: list[str] = []
    for field in fields:
        raw = form.get(f"config.{field.name}")
        if field.kind == "checkbox":
            config[field.name] = raw == "on"
            continue
        value = raw.strip() if isinstance(raw, str) else ""
        if not value:
            continue
        if field.kind == "lines":
            config[field.name] = [line.strip() for line in value.splitlines() if line.strip()]
        elif field.kind == "json":
            try:
                config[field.name] = json.loads(value)
            except ValueError:
                problems.append(f"{field.name}: not valid JSON")
        else:
            config[field.name] = value
    if problems:
        raise ValidationFailedError(f"{len(problems)} configuration error(s)", problems=problems)
    return config


def _owner_from_form(form: FormData) -> OwnerSettings | None:
    values = {k: form.get(f"owner.{k}") for k in ("person", "role", "contact")}
    given = {k: v.strip() for k, v in values.items() if isinstance(v, str) and v.strip()}
    if not given:
        return None
    try:
        return OwnerSettings.model_validate(given)
    except ValueError as exc:
        raise ValidationFailedError(
            "the owner needs a person, a role and an email address or https webhook",
            problems=[str(exc).splitlines()[0]],
        ) from None


# ---------------------------------------------------------------------------- connectors


def _store(page: Page) -> ConnectorStore:
    services = page.services
    return ConnectorStore(services.registry, SecretBox(services.settings.secret_key))


@dataclass(frozen=True)
class ExecutiveChoice:
    """An executive of the tenant a connector may serve (a checkbox of the form)."""

    user_id: str
    label: str


async def _executives(session: SessionDep, tenant_id: str) -> list[ExecutiveChoice]:
    """The tenant's enabled users holding the executive role, by user name."""
    roles = await users.roles_by_user(session, tenant_id)
    return [
        ExecutiveChoice(
            user_id=u.id,
            label=f"{u.display_name or u.username}" + (f" ({u.email})" if u.email else ""),
        )
        for u in await users.list_users(session, tenant_id)
        if not u.disabled and Role.EXECUTIVE in roles.get(u.id, frozenset())
    ]


def _chosen_executives(form: FormData, choices: list[ExecutiveChoice]) -> list[str]:
    """The ticked executives, each one of the tenant's (checked before anything is written,
    so a refused form leaves no half-made connector)."""
    known = {c.user_id for c in choices}
    chosen = [str(v) for v in form.getlist("executives")]
    unknown = [v for v in chosen if v not in known]
    if unknown:
        raise ValidationFailedError(
            "a connector serves executives of this tenant",
            problems=[f"executives: {len(unknown)} choice(s) are not an executive here"],
        )
    return list(dict.fromkeys(chosen))


@router.get("", response_class=HTMLResponse)
async def admin_home(page: PageDep) -> RedirectResponse:
    await require_tenant(page, Permission.CONNECTORS_READ)
    return RedirectResponse(f"{PREFIX}/admin/connectors", status_code=303)


@router.get("/connectors", response_class=HTMLResponse)
async def connectors(page: PageDep, session: SessionDep) -> HTMLResponse:
    """Every instance of the tenant, with its health asked now (not remembered)."""
    await require_tenant(page, Permission.CONNECTORS_READ)
    services, tenant = page.services, page.person.tenant_id
    rows: list[dict[str, Any]] = [
        {"name": i.name, "slug": i.slug, "source": "settings", "enabled": True}
        for i in services.connectors.instances.values()
        if i.tenant_id == tenant and is_configured_in_settings(services.connectors, tenant, i.name)
    ]
    rows.extend(
        {"name": r.name, "slug": r.slug, "source": "database", "enabled": r.enabled}
        for r in await _store(page).list(session, tenant)
    )
    live = [services.connectors.instances.get((tenant, r["name"])) for r in rows]
    await services.connectors.load_bindings()
    names = {c.user_id: c.label for c in await _executives(session, tenant)}
    owners = await _connector_owners(page, session)
    for row, instance, health in zip(rows, live, await live_healths(live), strict=True):
        row["health"] = health
        row["owner"] = owners.get(row["name"])
        row["executives"] = [names.get(e, e) for e in (instance.executives if instance else ())]
    specs = sorted(services.registry.specs.values(), key=lambda s: s.slug)
    return page.render(
        "admin_connectors.html",
        rows=rows,
        specs=specs,
        notice=page.request.query_params.get("notice"),
    )


async def _connector_owners(page: Page, session: SessionDep) -> dict[str, OwnerSettings]:
    """Each connector's effective owner (stored, else from settings)."""
    entries = await owner_entries(session, page.services.settings, page.person.tenant_id)
    return {e.subject: e.owner for e in entries if e.scope == "connector" and e.owner}


@router.get("/connectors/new", response_class=HTMLResponse)
async def new_connector(page: PageDep, session: SessionDep, slug: str) -> HTMLResponse:
    await require_tenant(page, Permission.CONNECTORS_MANAGE)
    spec = page.services.registry.get(slug)
    return page.render(
        "admin_connector_form.html",
        spec=spec,
        fields=form_fields(spec.config_model),
        values={},
        executives=await _executives(session, page.person.tenant_id),
        chosen=[],
    )


@router.post("/connectors", response_model=None)
async def create_connector(
    request: Request, page: PageDep, session: SessionDep
) -> HTMLResponse | RedirectResponse:
    await require_tenant(page, Permission.CONNECTORS_MANAGE)
    form = await request.form()
    slug = str(form.get("slug") or "")
    spec = page.services.registry.get(slug)
    fields = form_fields(spec.config_model)
    values = {k: v for k, v in form.items() if isinstance(v, str) and k.startswith("config.")}
    choices = await _executives(session, page.person.tenant_id)
    again = _FormAgain(page, spec, fields, form, values, choices, editing=None)
    try:
        body = connectors_api.ConnectorIn(
            name=str(form.get("name") or "").strip(),
            slug=slug,
            config=config_from_form(fields, form),
            enabled=form.get("enabled") == "on",
            owner=_owner_from_form(form),
            executives=_chosen_executives(form, choices),
            reason=str(form.get("reason") or "").strip() or "connector created in the web app",
        )
    except ValueError as exc:  # pydantic's: the name
        return again(ValidationFailedError(str(exc)))
    except ValidationFailedError as exc:
        return again(exc)
    try:
        await connectors_api.create_connector(body, page.services, session, page.person)
    except (ValidationFailedError, ConflictError) as exc:
        return again(exc)
    return back(page, f"{PREFIX}/admin/connectors", notice=f"{body.name} added")


def _edit_values(fields: list[FormField], config: dict[str, Any]) -> dict[str, str]:
    """The stored config as the form's inputs show it (secrets never: an empty secret keeps
    the stored one)."""
    values: dict[str, str] = {}
    for field in fields:
        value = config.get(field.name)
        if field.kind == "secret" or value is None:
            continue
        key = f"config.{field.name}"
        if field.kind == "checkbox":
            values[key] = "on" if value else "off"
        elif field.kind == "lines" and isinstance(value, list | tuple):
            values[key] = "\n".join(str(v) for v in value)
        elif field.kind == "json":
            values[key] = json.dumps(value)
        else:
            values[key] = str(value)
    return values


@router.get("/connectors/{name}/edit", response_class=HTMLResponse)
async def edit_connector(page: PageDep, session: SessionDep, name: str) -> HTMLResponse:
    """The form of a stored instance, filled with its config (never its secrets)."""
    await require_tenant(page, Permission.CONNECTORS_MANAGE)
    store = _store(page)
    row = await store.get(session, page.person.tenant_id, name)
    spec = page.services.registry.get(row.slug)
    fields = form_fields(spec.config_model)
    await page.services.connectors.load_bindings()
    live = page.services.connectors.instances.get((row.tenant_id, row.name))
    return page.render(
        "admin_connector_form.html",
        spec=spec,
        fields=fields,
        values=_edit_values(fields, dict(row.config)),
        name=row.name,
        editing=row,
        executives=await _executives(session, row.tenant_id),
        chosen=list(live.executives) if live else [],
        owner=(owner := (await _connector_owners(page, session)).get(row.name)),
        owner_via=owner_channel(owner.contact) if owner else None,
    )


@router.post("/connectors/{name}", response_model=None)
async def save_connector(
    request: Request, page: PageDep, session: SessionDep, name: str
) -> HTMLResponse | RedirectResponse:
    """Merge the edited config (empty inputs and secrets keep what is stored), the owner if
    named, and the executives it serves; through the admin API's code."""
    await require_tenant(page, Permission.CONNECTORS_MANAGE)
    row = await _store(page).get(session, page.person.tenant_id, name)
    spec = page.services.registry.get(row.slug)
    form = await request.form()
    fields = form_fields(spec.config_model)
    values = {k: v for k, v in form.items() if isinstance(v, str) and k.startswith("config.")}
    choices = await _executives(session, page.person.tenant_id)
    again = _FormAgain(page, spec, fields, form, values, choices, editing=row)
    try:
        body = connectors_api.ConnectorPatch(
            config=config_from_form(fields, form),
            enabled=form.get("enabled") == "on",
            owner=_owner_from_form(form),
            executives=_chosen_executives(form, choices),
            reason=str(form.get("reason") or "").strip() or "connector edited in the web app",
        )
    except ValidationFailedError as exc:
        return again(exc)
    try:
        await connectors_api.update_connector(name, body, page.services, session, page.person)
    except (ValidationFailedError, ConflictError) as exc:
        return again(exc)
    return back(page, f"{PREFIX}/admin/connectors", notice=f"{name} saved")


@dataclass(frozen=True)
class _FormAgain:
    """The form with what she typed (never a secret) and every problem at once."""

    page: Page
    spec: Any
    fields: list[FormField]
    form: FormData
    values: dict[str, Any]
    executives: list[ExecutiveChoice]
    editing: Any

    def __call__(self, error: ValidationFailedError | ConflictError) -> HTMLResponse:
        secret = {f"config.{f.name}" for f in self.fields if f.kind == "secret"}
        return self.page.render(
            "admin_connector_form.html",
            status_code=error.status_code,
            spec=self.spec,
            fields=self.fields,
            values={k: v for k, v in self.values.items() if k not in secret},
            name=self.editing.name if self.editing else str(self.form.get("name") or ""),
            editing=self.editing,
            executives=self.executives,
            chosen=[str(v) for v in self.form.getlist("executives")],
            error=type(error).__name__,
            detail=error.detail,
            problems=error.extra.get("problems", []),
        )


@router.post("/connectors/{name}/test", response_class=HTMLResponse)
async def test_connector(page: PageDep, session: SessionDep, name: str) -> RedirectResponse:
    await require_tenant(page, Permission.CONNECTORS_MANAGE)
    result = await connectors_api.test_connector(name, page.services, session, page.person)
    detail = f": {result['detail']}" if result.get("detail") else ""
    return back(page, f"{PREFIX}/admin/connectors", notice=f"{name} {result['status']}{detail}")


@router.post("/connectors/{name}/enabled", response_class=HTMLResponse)
async def enable_connector(
    page: PageDep,
    session: SessionDep,
    name: str,
    enabled: Annotated[Literal["on", "off"], Form()],
    reason: Reason = "switched in the web app",
) -> RedirectResponse:
    await require_tenant(page, Permission.CONNECTORS_MANAGE)
    body = connectors_api.ConnectorPatch(enabled=enabled == "on", reason=reason)
    await connectors_api.update_connector(name, body, page.services, session, page.person)
    state = "enabled" if enabled == "on" else "disabled"
    return back(page, f"{PREFIX}/admin/connectors", notice=f"{name} {state}")


# ---------------------------------------------------------------------------- governance


@dataclass(frozen=True)
class VersionRow:
    version: ConfigVersion
    ref: str
    diff: list[str]
    in_force: bool


def _policy_diff(older: ConfigVersion | None, newer: ConfigVersion) -> list[str]:
    before = str(older.content.get("text", "")) if older else ""
    after = str(newer.content.get("text", ""))
    return list(
        difflib.unified_diff(
            before.splitlines(),
            after.splitlines(),
            fromfile=ref(older) if older else "(nothing)",
            tofile=ref(newer),
            lineterm="",
            n=1,
        )
    )


@router.get("/governance", response_class=HTMLResponse)
async def governance_room(
    page: PageDep, session: SessionDep, governance: GovernanceDep
) -> HTMLResponse:
    """The policy in force (its rules in words), and its versions with what each changed."""
    await require_tenant(page, Permission.POLICIES_READ)
    policy = governance.policy.current()
    versions = await list_versions(session, page.person.tenant_id, kind="policy", limit=50)
    rows = []
    for index, version in enumerate(versions):
        older = versions[index + 1] if index + 1 < len(versions) else None
        rows.append(
            VersionRow(
                version=version,
                ref=ref(version),
                diff=_policy_diff(older, version),
                in_force=_policy_hash(version) == policy.content_hash,
            )
        )
    tenant = page.person.tenant_id
    owners = missing = grants = None
    if page.can(Permission.OWNERS_READ):
        settings = page.services.settings
        owners = [e.public() for e in await owner_entries(session, settings, tenant)]
        missing = await missing_owners(session, settings, tenant)
    evidence: list[AutonomyRow] = []
    if page.can(Permission.AUTONOMY_READ):
        grants = await autonomy.grants(session, tenant, None)
        evidence = await _autonomy_rows(page, session, grants, policy.default_autonomy)
    # Executives (and who set a level) by name: the table showed their user ids.
    ids = {r.executive for r in evidence} | {g.set_by for g in grants or []}
    names = dict(
        (
            await session.execute(
                select(User.id, func.coalesce(User.display_name, User.username)).where(
                    User.tenant_id == tenant, User.id.in_(sorted(ids))
                )
            )
        ).all()
    )
    return page.render(
        "admin_governance.html",
        policy=policy,
        versions=rows,
        owners=owners,
        missing=missing,
        grants=grants,
        evidence=evidence,
        names=names,
        levels=[level.value for level in autonomy.ORDER],
        bar=page.services.settings.autonomy,
        notice=page.request.query_params.get("notice"),
    )


@dataclass(frozen=True)
class AutonomyRow:
    """One executive and kind: the level in force, the measured record, and whether the
    next level up would be granted, or why not."""

    executive: str
    kind: str
    level: str
    stored: bool
    record: autonomy.Record
    next_level: str | None
    refused_because: str | None


async def _autonomy_rows(
    page: Page, session: SessionDep, grants: list[Any], default: Autonomy
) -> list[AutonomyRow]:
    """Every executive and kind with a stored level or a proposal in the bar's window."""
    tenant, bar = page.person.tenant_id, page.services.settings.autonomy
    since = utcnow() - timedelta(days=bar.window_days)
    seen = (
        await session.execute(
            select(func.lower(Action.on_behalf_of), Action.kind)
            .where(
                Action.tenant_id == tenant,
                Action.on_behalf_of.is_not(None),
                Action.created_at >= since,
            )
            .distinct()
            .limit(MAX_AUTONOMY_ROWS)
        )
    ).all()
    pairs = dict.fromkeys([(g.executive, g.kind) for g in grants] + [(e, k) for e, k in seen])
    rows = []
    for executive, kind in list(pairs)[:MAX_AUTONOMY_ROWS]:
        stored = await autonomy.stored_level(session, tenant, executive, kind)
        level = stored or default
        record = await autonomy.measure(
            session, tenant, executive, kind, window_days=bar.window_days
        )
        index = autonomy.rank(level)
        up = autonomy.ORDER[index + 1] if index + 1 < len(autonomy.ORDER) else None
        why = None
        if up is not None and not record.meets(bar):
            rate = record.accepted_unedited
            why = (
                f"{record.decisions} decision(s) in {bar.window_days} days "
                f"(need {bar.min_decisions}), "
                f"{'none' if rate is None else f'{rate:.0%}'} approved unedited "
                f"(need {bar.min_accepted_unedited:.0%})"
            )
        rows.append(
            AutonomyRow(
                executive=executive,
                kind=kind,
                level=level.value,
                stored=stored is not None,
                record=record,
                next_level=up.value if up else None,
                refused_because=why,
            )
        )
    return rows


@router.post("/governance/autonomy", response_class=HTMLResponse)
async def set_autonomy(
    page: PageDep,
    session: SessionDep,
    executive: Annotated[str, Form(min_length=1, max_length=320)],
    kind: Annotated[str, Form(min_length=1, max_length=100)],
    level: Annotated[Autonomy, Form()],
    reason: Reason,
) -> RedirectResponse:
    """Set a level through the same service as the API: lowering at once, raising only on
    the measured record (refused with 409 and audited otherwise). Nobody sets their own."""
    await require_tenant(page, Permission.AUTONOMY_MANAGE)
    executive = await users.autonomy_executive(session, page.person.tenant_id, executive)
    me = await session.get(User, page.person.user_id)
    own = {page.person.user_id.lower()} | ({me.email.lower()} if me and me.email else set())
    if executive.strip().lower() in own:
        await autonomy_refused(page, executive, kind, level, reason, "nobody sets their own")
        raise SeparationOfDutiesError("nobody sets their own autonomy: another admin must")
    settings = page.services.settings
    try:
        change = await autonomy.set_level(
            session,
            page.person,
            executive=executive,
            kind=kind,
            level=level,
            reason=reason,
            bar=settings.autonomy,
            default=load_policy(policy_path(settings)).default_autonomy,
        )
    except autonomy.PromotionRefusedError as refused:
        async with page.services.sessions() as own_session, own_session.begin():
            await autonomy.audit_refusal(
                own_session,
                page.person,
                executive=executive,
                kind=kind,
                level=level,
                reason=reason,
                error=refused,
            )
        raise
    return back(
        page,
        f"{PREFIX}/admin/governance",
        notice=f"{change.grant.kind} for {change.grant.executive}: {change.previous.value} "
        f"to {change.level.value} ({change.direction})",
    )


async def autonomy_refused(
    page: Page, executive: str, kind: str, level: Autonomy, reason: str, why: str
) -> None:
    async with page.services.sessions() as session, session.begin():
        await record(
            session,
            page.person,
            AuditEventIn(
                action=AuditAction.AUTONOMY_PROMOTION_REFUSED,
                outcome=Outcome.DENIED,
                resource_type="autonomy",
                resource_id=f"{executive.lower()}:{kind.lower()}"[:200],
                reason=reason,
                payload={"requested": level.value, "refused": why},
            ),
        )


def _policy_hash(version: ConfigVersion) -> str | None:
    """The hash the policy engine gives this version's text (what it shows when in force)."""
    try:
        return str(policy_content_hash(yaml.safe_load(str(version.content.get("text", "")))))
    except yaml.YAMLError:
        return None


@router.post("/governance/rollback", response_class=HTMLResponse)
async def rollback_policy(
    page: PageDep, session: SessionDep, version: Annotated[str, Form(max_length=64)], reason: Reason
) -> RedirectResponse:
    """Restore one earlier policy version exactly; the running service follows its file
    within a second."""
    await require_tenant(page, Permission.POLICIES_MANAGE)
    target = await find_version(session, page.person.tenant_id, version)
    if target.kind != "policy":
        raise ValidationFailedError("only policy versions are restored here")
    restored = await rollback(
        session, page.person, target.id, appliers=appliers(page.services.settings), reason=reason
    )
    return back(
        page, f"{PREFIX}/admin/governance", notice=f"{ref(target)} restored as {ref(restored)}"
    )


# ---------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class WorkerRow:
    worker: WorkerBeat
    alive: bool


@router.get("/operations", response_class=HTMLResponse)
async def operations(page: PageDep, session: SessionDep) -> HTMLResponse:
    """The exception queue (retry, cancel, assign), the workers and runners alive, the kill
    switches and the last rollback drill (with a button to run one)."""
    await require_tenant(page, Permission.EXCEPTIONS_READ)
    tenant = page.person.tenant_id
    exceptions = (
        await session.execute(
            select(ActionException)
            .where(ActionException.tenant_id == tenant, ActionException.status == "open")
            .order_by(ActionException.created_at.desc())
            .limit(200)
        )
    ).scalars()
    switches = [s for s in await list_switches(session) if s.tenant_id in {"", tenant}]
    # Alive: heard within three heartbeats (what /readyz counts).
    heard_since = utcnow() - timedelta(
        seconds=3 * page.services.settings.governance.heartbeat_seconds
    )
    workers = [WorkerRow(w, w.last_seen_at >= heard_since) for w in await list_workers(session)]
    return page.render(
        "admin_operations.html",
        exceptions=list(exceptions),
        switches=switches,
        drill=await last_drill(session, tenant),
        workers=workers,
        runner=runner_mode(page.services),
        switch_targets=sorted(
            {i.name for i in page.services.connectors.instances.values() if i.tenant_id == tenant}
        )
        + sorted(c.value for c in Capability),
        notice=page.request.query_params.get("notice"),
    )


ExceptionId = Annotated[str, Path(min_length=1, max_length=32)]


@router.post("/operations/exceptions/{exception_id}/retry", response_class=HTMLResponse)
async def retry_exception(
    page: PageDep, governance: GovernanceDep, exception_id: ExceptionId, reason: Reason
) -> RedirectResponse:
    """Try the failed action or compensation again, through the governance services."""
    await require_tenant(page, Permission.EXCEPTIONS_RESOLVE)
    done = await exceptions.retry(
        page.services.sessions,
        page.person,
        exception_id,
        reason,
        actions=governance.actions,
        compensation=governance.compensation,
    )
    verdict = "retried" if done.ok else "retried and failed again"
    return back(page, f"{PREFIX}/admin/operations", notice=f"{verdict}: {done.detail}")


@router.post("/operations/exceptions/{exception_id}/cancel", response_class=HTMLResponse)
async def cancel_exception(
    page: PageDep, session: SessionDep, exception_id: ExceptionId, reason: Reason
) -> RedirectResponse:
    await require_tenant(page, Permission.EXCEPTIONS_RESOLVE)
    await exceptions.cancel(session, page.person, exception_id, reason)
    return back(page, f"{PREFIX}/admin/operations", notice="exception cancelled")


@router.post("/operations/exceptions/{exception_id}/assign", response_class=HTMLResponse)
async def assign_exception(
    page: PageDep,
    session: SessionDep,
    exception_id: ExceptionId,
    owner: Annotated[str, Form(min_length=1, max_length=exceptions.MAX_OWNER)],
    reason: Reason = "assigned in the web app",
) -> RedirectResponse:
    await require_tenant(page, Permission.EXCEPTIONS_RESOLVE)
    row = await exceptions.assign(session, page.person, exception_id, owner, reason)
    return back(page, f"{PREFIX}/admin/operations", notice=f"exception assigned to {row.owner}")


@router.post("/operations/killswitch", response_class=HTMLResponse)
async def kill_switch(
    page: PageDep,
    session: SessionDep,
    enabled: Annotated[Literal["on", "off"], Form()],
    reason: Reason,
    connector: Annotated[str, Form(max_length=100)] = "",
) -> RedirectResponse:
    """Stop (or resume) execution in this tenant, for every connector or one instance or
    capability; waiting actions keep their place. A tenant's admin sets no global switch."""
    await require_tenant(page, Permission.KILLSWITCH_MANAGE)
    tenant = page.person.tenant_id
    known = {i.name for i in page.services.connectors.instances.values() if i.tenant_id == tenant}
    known |= {c.value for c in Capability}
    if connector and connector not in known:
        raise ValidationFailedError(
            "no such connector or capability in this tenant", connector=connector[:100]
        )
    await set_switch(
        session,
        page.person,
        enabled=enabled == "on",
        now=utcnow(),
        tenant_id=tenant,
        connector=connector or None,
        reason=reason,
    )
    scope = f"connector {connector}" if connector else "every connector"
    state = "stopped" if enabled == "on" else "resumed"
    return back(page, f"{PREFIX}/admin/operations", notice=f"execution {state}: {scope}")


@router.post("/operations/drill", response_class=HTMLResponse)
async def run_rollback_drill(page: PageDep) -> RedirectResponse:
    """Run the rollback drill now, as `assistant drill rollback` does (sandbox only)."""
    await require_tenant(page, Permission.EXCEPTIONS_RESOLVE)
    services, tenant = page.services, page.person.tenant_id
    whose = services.connectors.sandbox_executive(tenant)
    drill = await run_drill(
        services.sessions,
        services.connectors,
        services.settings.governance,
        tenant_id=tenant,
        executive=whose,
        started_by=page.person.user_id,
        owners=OwnerRouter(services.sessions, services.settings, services.connectors),
    )
    verdict = "passed" if drill.passed else "FAILED"
    return back(page, f"{PREFIX}/admin/operations", notice=f"drill {verdict}: {drill.summary}")
