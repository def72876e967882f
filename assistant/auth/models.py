"""Tables of authentication: users, roles, delegations, API keys, sign-in attempts, web
sessions and msal's token cache. Every row carries its tenant."""

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from assistant.core.db import Base, UTCDateTime


class User(Base):
    """A person: local (with a password hash) or from Entra (id = the token's oid)."""

    __tablename__ = "auth_users"
    __table_args__ = (UniqueConstraint("tenant_id", "username", name="uq_auth_users_username"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    username: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    source: Mapped[str] = mapped_column(String(16), default="local")
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Entra users: roles Entra grants that an admin withdrew in the app. Entra remains the
    #: authority for what a person holds; the app can only take away, and keeps doing so
    #: across sign-ins (the mirror in auth_role_grants is Entra's roles minus these).
    withheld_roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RoleGrant(Base):
    __tablename__ = "auth_role_grants"
    __table_args__ = (Index("ix_auth_role_grants_tenant", "tenant_id"),)

    user_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("auth_users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    granted_by: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Delegation(Base):
    """An executive lets a delegate (a human assistant) act for them, within ``scopes``."""

    __tablename__ = "auth_delegations"
    __table_args__ = (
        Index("ix_auth_delegations_lookup", "tenant_id", "delegate_id", "executive_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    executive_id: Mapped[str] = mapped_column(String(64))
    delegate_id: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    granted_by: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class ApiKey(Base):
    """A person's or a service account's key: only its SHA-256 is stored; the prefix
    stays visible."""

    __tablename__ = "auth_api_keys"
    __table_args__ = (Index("ix_auth_api_keys_tenant", "tenant_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    roles: Mapped[list[str]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: The person the key belongs to (it acts as them, never with more roles than they
    #: hold now); None: a service account's key, which acts for nobody.
    owner_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class LoginAttempt(Base):
    """One password sign-in attempt, for per-address rate limiting."""

    __tablename__ = "auth_login_attempts"
    __table_args__ = (
        Index("ix_auth_login_attempts_source", "source", "attempted_at"),
        Index("ix_auth_login_attempts_user", "tenant_id", "username", "attempted_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    username: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(64))
    succeeded: Mapped[bool] = mapped_column(Boolean)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebSession(Base):
    """A browser session; the cookie holds a random value, the table its SHA-256."""

    __tablename__ = "auth_sessions"
    __table_args__ = (Index("ix_auth_sessions_user", "tenant_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    roles: Mapped[list[str]] = mapped_column(JSON)
    display_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Entra sessions: msal's home account id (its refresh token is in the encrypted cache)
    #: and when Entra last confirmed the session's roles.
    account_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    roles_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class MsalTokenCache(Base):
    """msal's serialized token cache of one tenant, encrypted (AES-GCM, tenant-bound)."""

    __tablename__ = "auth_msal_cache"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FailureBudget(Base):
    """The token bucket of failed authentications recorded one by one (one row, ``auth``),
    shared by every process of the service: see :mod:`assistant.auth.audit`."""

    __tablename__ = "auth_failure_budget"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    refilled_at: Mapped[float] = mapped_column(Float)
    suppressed: Mapped[int] = mapped_column(BigInteger)
