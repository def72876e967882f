"""The permission rules, passwords, tenants, and the auth settings' guard rails."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.auth.passwords import hash_password, password_problem, verify_password
from assistant.auth.permissions import DELEGABLE, Permission, can, effective_permissions
from assistant.auth.principal import AuthenticatedPrincipal, parse_roles
from assistant.auth.tenants import TenantDirectory
from assistant.core.errors import ConfigurationError
from assistant.core.principal import Principal, Role
from assistant.core.settings import Settings, load_settings


def test_roles_from_entra_app_roles() -> None:
    assert parse_roles(["Executive", "Admin", " auditor ", "Superuser", 3]) == {
        Role.EXECUTIVE,
        Role.ADMIN,
        Role.AUDITOR,
    }


def test_deny_by_default() -> None:
    nobody = Principal(user_id="u", tenant_id="t")
    assert effective_permissions(nobody) == frozenset()
    auditor = Principal(user_id="u", tenant_id="t", roles=frozenset({Role.AUDITOR}))
    assert can(auditor, Permission.AUDIT_READ)
    assert not can(auditor, Permission.REVIEW_DECIDE)
    assert not can(auditor, Permission.USERS_MANAGE)
    admin = Principal(user_id="u", tenant_id="t", roles=frozenset({Role.ADMIN}))
    assert can(admin, Permission.CONNECTORS_MANAGE) and not can(admin, Permission.MAIL_READ)


def test_a_delegate_holds_only_what_it_was_granted() -> None:
    granted = AuthenticatedPrincipal(
        user_id="d",
        tenant_id="t",
        roles=frozenset({Role.DELEGATE}),
        on_behalf_of="e",
        delegated_scopes=frozenset({"review.read", "users.manage"}),
    )
    assert effective_permissions(granted) == {Permission.ME_READ, Permission.REVIEW_READ}
    # an executive acting for another executive is only that one's delegate
    both = AuthenticatedPrincipal(
        user_id="d",
        tenant_id="t",
        roles=frozenset({Role.EXECUTIVE, Role.ADMIN}),
        on_behalf_of="e",
        delegated_scopes=frozenset({"mail.read"}),
    )
    assert effective_permissions(both) == {Permission.ME_READ, Permission.MAIL_READ}
    idle = Principal(user_id="d", tenant_id="t", roles=frozenset({Role.DELEGATE}))
    assert effective_permissions(idle) == {Permission.ME_READ}
    plain = Principal(
        user_id="d", tenant_id="t", roles=frozenset({Role.DELEGATE}), on_behalf_of="e"
    )
    assert effective_permissions(plain) == {Permission.ME_READ, *DELEGABLE}


def test_passwords() -> None:
    stored = hash_password("a long enough password")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "a long enough password")
    assert not verify_password(stored, "another password!!")
    assert not verify_password(None, "a long enough password")
    assert not verify_password("not a hash", "a long enough password")
    assert password_problem("short") and password_problem(" padded password ")
    assert password_problem("a long enough password") is None


def test_tenant_directory(data_dir: Path) -> None:
    local = Settings(data_dir=data_dir, auth={"tenants": {"acme": {"tid": "t-acme"}}})
    directory = TenantDirectory(local, "http://127.0.0.1:8000")
    assert directory.tenant_for("t-acme", "http://127.0.0.1:8000") == "acme"
    assert directory.tenant_for("default", "http://127.0.0.1:8000") == "default"
    assert directory.tenant_for("default", "https://other.example") is None
    assert directory.tid_of("acme") == "t-acme" and directory.tid_of("default") == "default"

    entra = Settings(
        data_dir=data_dir,
        auth={
            "mode": "entra",
            "tenants": {"acme": {"tid": "t-acme"}},
            "entra": {"client_id": "c", "client_secret": "s"},
        },
    )
    directory = TenantDirectory(entra, None)
    issuer = "https://login.microsoftonline.com/t-acme/v2.0"
    assert directory.allowed_issuers("acme") == {issuer}
    assert directory.trusted_issuers() == {issuer}
    assert directory.tenant_for("t-other", issuer) is None


def _problems(**overrides: object) -> str:
    with pytest.raises(ConfigurationError) as info:
        load_settings(**overrides)
    return "\n".join(info.value.problems)


def test_settings_guard_rails(data_dir: Path) -> None:
    for algorithms in (["none"], ["HS256"], []):
        assert "auth.algorithms" in _problems(data_dir=data_dir, auth={"algorithms": algorithms})
    assert "entra.client_id" in _problems(data_dir=data_dir, auth={"mode": "entra"})
    assert "tenants" in _problems(
        data_dir=data_dir, auth={"mode": "entra", "entra": {"client_id": "c", "client_secret": "s"}}
    )
