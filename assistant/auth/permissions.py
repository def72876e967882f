"""Authorization in one place: permissions, the role-permission matrix, and the expected
permission of every HTTP route.

Deny by default: a role holds exactly the permissions listed for it here; a delegate holds
its permissions only while acting for an executive who granted them (and only those the
grant names); a principal without a known role holds none. Routers check with
``require(Permission.X)`` (assistant.api.deps); ``tests/api/test_authz_matrix.py`` walks
every route of the OpenAPI schema for every role against :data:`ROUTE_PERMISSIONS`, and fails
for a route that has no entry.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from assistant.core.errors import OwnershipError
from assistant.core.principal import Principal, Role


class Permission(StrEnum):
    ME_READ = "me.read"
    # the executive's own data (a delegate's, while acting for an executive who granted it)
    MAIL_READ = "mail.read"
    CALENDAR_READ = "calendar.read"
    ERP_READ = "erp.read"
    TRIAGE_READ = "triage.read"
    TRIAGE_CORRECT = "triage.correct"
    DRAFTS_WRITE = "drafts.write"
    ACTIONS_READ = "actions.read"
    ACTIONS_PROPOSE = "actions.propose"
    ACTIONS_CANCEL = "actions.cancel"
    ACTIONS_COMPENSATE = "actions.compensate"
    REVIEW_READ = "review.read"
    REVIEW_DECIDE = "review.decide"
    DELEGATIONS_GRANT = "delegations.grant"
    # the tenant's configuration
    DELEGATIONS_READ = "delegations.read"
    DELEGATIONS_REVOKE = "delegations.revoke"
    CONNECTORS_READ = "connectors.read"
    CONNECTORS_MANAGE = "connectors.manage"
    POLICIES_READ = "policies.read"
    POLICIES_MANAGE = "policies.manage"
    OWNERS_READ = "owners.read"
    OWNERS_MANAGE = "owners.manage"
    EXCEPTIONS_READ = "exceptions.read"
    EXCEPTIONS_RESOLVE = "exceptions.resolve"
    KILLSWITCH_MANAGE = "killswitch.manage"
    USERS_READ = "users.read"
    USERS_MANAGE = "users.manage"
    APIKEYS_MANAGE = "apikeys.manage"
    # oversight
    AUDIT_READ = "audit.read"
    AUDIT_EXPORT = "audit.export"
    METRICS_READ = "metrics.read"
    GATE_READ = "gate.read"
    QUALITY_READ = "quality.read"
    QUALITY_MANAGE = "quality.manage"
    AUTONOMY_READ = "autonomy.read"
    AUTONOMY_MANAGE = "autonomy.manage"


#: Permissions that change nothing. Auditors hold only these.
READ_ONLY: Final = frozenset(
    {
        Permission.ME_READ,
        Permission.MAIL_READ,
        Permission.CALENDAR_READ,
        Permission.ERP_READ,
        Permission.TRIAGE_READ,
        Permission.ACTIONS_READ,
        Permission.REVIEW_READ,
        Permission.DELEGATIONS_READ,
        Permission.CONNECTORS_READ,
        Permission.POLICIES_READ,
        Permission.OWNERS_READ,
        Permission.EXCEPTIONS_READ,
        Permission.USERS_READ,
        Permission.AUDIT_READ,
        Permission.AUDIT_EXPORT,
        Permission.METRICS_READ,
        Permission.GATE_READ,
        Permission.QUALITY_READ,
        Permission.AUTONOMY_READ,
    }
)

#: What an executive may let a delegate do on their behalf (the most a grant can hold).
DELEGABLE: Final = frozenset(
    {
        Permission.MAIL_READ,
        Permission.CALENDAR_READ,
        Permission.ERP_READ,
        Permission.TRIAGE_READ,
        Permission.TRIAGE_CORRECT,
        Permission.DRAFTS_WRITE,
        Permission.ACTIONS_READ,
        Permission.ACTIONS_PROPOSE,
        Permission.ACTIONS_CANCEL,
        Permission.REVIEW_READ,
        Permission.REVIEW_DECIDE,
    }
)

ROLE_PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    Role.EXECUTIVE: frozenset(
        {
            Permission.ME_READ,
            *DELEGABLE,
            Permission.ACTIONS_COMPENSATE,
            Permission.DELEGATIONS_GRANT,
            Permission.DELEGATIONS_READ,
            Permission.DELEGATIONS_REVOKE,
            Permission.AUTONOMY_READ,
        }
    ),
    # Applies only while acting for an executive, narrowed to the grant's scopes.
    Role.DELEGATE: frozenset({Permission.ME_READ, *DELEGABLE}),
    Role.ADMIN: frozenset(
        {
            Permission.ME_READ,
            Permission.ACTIONS_READ,
            Permission.CONNECTORS_READ,
            Permission.CONNECTORS_MANAGE,
            Permission.POLICIES_READ,
            Permission.POLICIES_MANAGE,
            Permission.OWNERS_READ,
            Permission.OWNERS_MANAGE,
            Permission.EXCEPTIONS_READ,
            Permission.EXCEPTIONS_RESOLVE,
            Permission.KILLSWITCH_MANAGE,
            Permission.USERS_READ,
            Permission.USERS_MANAGE,
            Permission.APIKEYS_MANAGE,
            Permission.DELEGATIONS_READ,
            Permission.DELEGATIONS_REVOKE,
            Permission.AUDIT_READ,
            Permission.METRICS_READ,
            Permission.GATE_READ,
            Permission.QUALITY_READ,
            Permission.QUALITY_MANAGE,
            Permission.AUTONOMY_READ,
            Permission.AUTONOMY_MANAGE,
        }
    ),
    Role.AUDITOR: frozenset(
        {
            Permission.ME_READ,
            Permission.ACTIONS_READ,
            Permission.AUDIT_READ,
            Permission.AUDIT_EXPORT,
            Permission.METRICS_READ,
            Permission.CONNECTORS_READ,
            Permission.POLICIES_READ,
            Permission.OWNERS_READ,
            Permission.EXCEPTIONS_READ,
            Permission.USERS_READ,
            Permission.DELEGATIONS_READ,
            Permission.GATE_READ,
            Permission.QUALITY_READ,
            Permission.AUTONOMY_READ,
        }
    ),
}


def effective_permissions(principal: Principal) -> frozenset[Permission]:
    """What ``principal`` may do now.

    Acting for an executive (``on_behalf_of``), a caller is that executive's delegate and
    nothing more: its own roles do not carry over to the executive's data.
    """
    if principal.on_behalf_of is not None:
        scopes: frozenset[str] | None = getattr(principal, "delegated_scopes", None)
        granted = (
            DELEGABLE if scopes is None else frozenset(p for p in DELEGABLE if p.value in scopes)
        )
        return frozenset({Permission.ME_READ, *granted})
    held: set[Permission] = set()
    for role in principal.roles:
        if role is Role.DELEGATE:
            held.add(Permission.ME_READ)  # a delegate not acting for anyone sees only itself
        else:
            held.update(ROLE_PERMISSIONS.get(role, frozenset()))
    return frozenset(held)


def can(principal: Principal, permission: Permission) -> bool:
    return permission in effective_permissions(principal)


class Access(StrEnum):
    """Routes open to everyone (no credentials needed)."""

    PUBLIC = "public"


RouteRule = Permission | Access

#: Expected permission of every route, as "METHOD /path" of the OpenAPI schema.
#:
#: Public on purpose: liveness and readiness (probes carry no credentials), /metrics (request
#: counts and latencies per route template, no tenant data; Prometheus scrapes it without a
#: token, so production exposes it only on the internal network or behind a network policy),
#: the issuer's discovery documents, and the sign-in pages. /docs and /openapi.json are public
#: too (not in the schema). The pilot scorecard and business metrics are tenant data: they
#: live under /api/v1 behind METRICS_READ.
ROUTE_PERMISSIONS: Final[dict[str, RouteRule]] = {
    "GET /healthz": Access.PUBLIC,
    "GET /readyz": Access.PUBLIC,
    "GET /metrics": Access.PUBLIC,
    "GET /.well-known/openid-configuration": Access.PUBLIC,
    "GET /.well-known/jwks.json": Access.PUBLIC,
    "GET /auth/login": Access.PUBLIC,
    "POST /auth/password": Access.PUBLIC,
    "GET /auth/callback": Access.PUBLIC,
    "POST /auth/logout": Access.PUBLIC,
    "GET /api/v1/me": Permission.ME_READ,
    "GET /api/v1/users": Permission.USERS_READ,
    "POST /api/v1/users": Permission.USERS_MANAGE,
    "GET /api/v1/users/{user_id}": Permission.USERS_READ,
    "PATCH /api/v1/users/{user_id}": Permission.USERS_MANAGE,
    "PUT /api/v1/users/{user_id}/roles": Permission.USERS_MANAGE,
    "GET /api/v1/api-keys": Permission.APIKEYS_MANAGE,
    "POST /api/v1/api-keys": Permission.APIKEYS_MANAGE,
    "DELETE /api/v1/api-keys/{key_id}": Permission.APIKEYS_MANAGE,
    "GET /api/v1/delegations": Permission.DELEGATIONS_READ,
    "POST /api/v1/delegations": Permission.DELEGATIONS_GRANT,
    "DELETE /api/v1/delegations/{delegation_id}": Permission.DELEGATIONS_REVOKE,
    # governed actions (assistant/api/actions.py)
    "GET /api/v1/actions": Permission.ACTIONS_READ,
    "POST /api/v1/actions": Permission.ACTIONS_PROPOSE,
    "GET /api/v1/actions/{action_id}": Permission.ACTIONS_READ,
    "POST /api/v1/actions/{action_id}/undo": Permission.ACTIONS_CANCEL,
    "POST /api/v1/actions/{action_id}/rollback": Permission.ACTIONS_COMPENSATE,
    "POST /api/v1/actions/rollback": Permission.ACTIONS_COMPENSATE,
    "GET /api/v1/actions/exceptions": Permission.EXCEPTIONS_READ,
    # the review queue (assistant/api/review.py)
    "GET /api/v1/review": Permission.REVIEW_READ,
    "GET /api/v1/review/{action_id}": Permission.REVIEW_READ,
    "POST /api/v1/review/bulk": Permission.REVIEW_DECIDE,
    "POST /api/v1/review/{action_id}/approve": Permission.REVIEW_DECIDE,
    "POST /api/v1/review/{action_id}/edit": Permission.REVIEW_DECIDE,
    "POST /api/v1/review/{action_id}/reject": Permission.REVIEW_DECIDE,
    "POST /api/v1/review/{action_id}/cancel": Permission.REVIEW_DECIDE,
    # the audit log (assistant/api/audit.py)
    "GET /api/v1/audit/events": Permission.AUDIT_READ,
    "GET /api/v1/audit/verify": Permission.AUDIT_READ,
    # ERP answers, read-only (assistant/api/erp.py)
    "GET /api/v1/erp/companies": Permission.ERP_READ,
    "GET /api/v1/erp/parties": Permission.ERP_READ,
    "GET /api/v1/erp/overdue": Permission.ERP_READ,
    "GET /api/v1/erp/invoices": Permission.ERP_READ,
    "GET /api/v1/erp/orders": Permission.ERP_READ,
    "GET /api/v1/erp/purchase-orders/{number}": Permission.ERP_READ,
    "GET /api/v1/erp/context": Permission.ERP_READ,
    # triage corrections (assistant/api/triage.py)
    "POST /api/v1/triage/{message_id}/correction": Permission.TRIAGE_CORRECT,
    "GET /api/v1/triage/corrections": Permission.TRIAGE_READ,
    "GET /api/v1/triage/inbox": Permission.TRIAGE_READ,
    # meeting scheduling (assistant/api/schedule.py): reads calendars, proposes nothing
    "POST /api/v1/schedule/find": Permission.CALENDAR_READ,
    # connector administration (assistant/api/connectors.py)
    "GET /api/v1/admin/connectors": Permission.CONNECTORS_MANAGE,
    "POST /api/v1/admin/connectors": Permission.CONNECTORS_MANAGE,
    "GET /api/v1/admin/connectors/types": Permission.CONNECTORS_MANAGE,
    "GET /api/v1/admin/connectors/{name}": Permission.CONNECTORS_MANAGE,
    "PATCH /api/v1/admin/connectors/{name}": Permission.CONNECTORS_MANAGE,
    "DELETE /api/v1/admin/connectors/{name}": Permission.CONNECTORS_MANAGE,
    "POST /api/v1/admin/connectors/{name}/test": Permission.CONNECTORS_MANAGE,
    # Graph change notifications: no credentials, checked by clientState (ingestion/push.py)
    "POST /webhooks/msgraph/mail": Access.PUBLIC,
    # owners, autonomy levels, configuration versions (assistant/api/production.py)
    "GET /api/v1/admin/owners": Permission.OWNERS_READ,
    "PUT /api/v1/admin/owners": Permission.OWNERS_MANAGE,
    "GET /api/v1/autonomy": Permission.AUTONOMY_READ,
    "PUT /api/v1/admin/autonomy": Permission.AUTONOMY_MANAGE,
    "GET /api/v1/admin/config/versions": Permission.POLICIES_READ,
    # the decision gate and quality monitoring (assistant/api/gate.py)
    "GET /api/v1/gate/report": Permission.GATE_READ,
    "GET /api/v1/quality/summary": Permission.QUALITY_READ,
    "GET /api/v1/quality/costs": Permission.QUALITY_READ,
    "GET /api/v1/quality/alerts": Permission.QUALITY_READ,
    "GET /api/v1/quality/spot-checks": Permission.QUALITY_READ,
    "POST /api/v1/quality/spot-checks/{check_id}/verdict": Permission.QUALITY_MANAGE,
    "POST /api/v1/quality/evaluate": Permission.QUALITY_MANAGE,
    # ask the assistant (assistant/api/chat.py): it reads the executive's own mail
    "POST /api/v1/chat": Permission.MAIL_READ,
    "GET /api/v1/chat/conversations": Permission.MAIL_READ,
    "GET /api/v1/chat/conversations/{conversation_id}": Permission.MAIL_READ,
    "DELETE /api/v1/chat/conversations/{conversation_id}": Permission.MAIL_READ,
}


def route_rule(method: str, path: str) -> RouteRule | None:
    return ROUTE_PERMISSIONS.get(f"{method.upper()} {path}")


def executive_scopes(principal: Principal) -> dict[str, frozenset[Permission]]:
    """The executives ``principal`` may act for, each with the permissions it holds on her
    data: the one place every route and service asks "whose data may this caller touch?".

    An executive acts for herself with her role's permissions; a delegate acts for the
    executive named by ``X-On-Behalf-Of`` (checked against a live grant on every request)
    within the grant's scopes; admins, auditors and service keys act for nobody: their
    roles reach the tenant's configuration and oversight, not an executive's data.
    """
    executive = principal.acting_for
    if not principal.acts_for(executive):
        return {}
    own = frozenset(p for p in effective_permissions(principal) if p in _EXECUTIVE_DATA)
    return {executive: own}


def ensure_acts_for(principal: Principal, executive: str | None, permission: Permission) -> None:
    """Raise :class:`OwnershipError` unless ``principal`` may use ``permission`` on the data
    of ``executive``."""
    if executive is None or permission not in executive_scopes(principal).get(
        executive, frozenset()
    ):
        raise OwnershipError(
            "this belongs to an executive you do not act for (or your grant does not "
            f"include {permission.value})",
            permission=permission.value,
        )


#: Permissions on an executive's own data (what ``executive_scopes`` can hand out).
_EXECUTIVE_DATA: Final = frozenset({*DELEGABLE, Permission.ACTIONS_COMPENSATE})
