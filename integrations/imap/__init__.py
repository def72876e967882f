"""Any standards-based mailbox: IMAP (TLS or STARTTLS, CONDSTORE, IDLE) and SMTP submission."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from integrations.base import Capability, ConnectorContext, ConnectorSpec, FolderRole

if TYPE_CHECKING:
    from integrations.imap.email import ImapEmailConnector


class ImapEmailConfig(BaseModel):
    """Settings of one IMAP/SMTP mailbox. Plain-text connections are not offered."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(title="Address", description="The mailbox's email address.")
    imap_host: str = Field(title="IMAP host")
    imap_port: int = Field(default=993, ge=1, le=65535, title="IMAP port")
    imap_security: Literal["tls", "starttls"] = Field(
        default="tls", title="IMAP security", description="tls (993) or starttls (143)."
    )
    smtp_host: str | None = Field(
        default=None, title="SMTP host", description="Default: the IMAP host."
    )
    smtp_port: int = Field(default=587, ge=1, le=65535, title="SMTP port")
    smtp_security: Literal["tls", "starttls"] = Field(
        default="starttls", title="SMTP security", description="starttls (587) or tls (465)."
    )
    username: str | None = Field(
        default=None, title="User name", description="Default: the address."
    )
    auth: Literal["password", "xoauth2"] = Field(
        default="password",
        title="Authentication",
        description="password, or xoauth2 with a token from the application or oauth_token.",
    )
    password: SecretStr | None = Field(default=None, title="Password")
    oauth_token: SecretStr | None = Field(
        default=None,
        title="OAuth token",
        description="A pre-issued access token for xoauth2 (else the injected provider).",
    )
    ca_file: Path | None = Field(
        default=None, title="CA file", description="Extra CA certificates to trust (PEM)."
    )
    folder_roles: dict[str, FolderRole] = Field(
        default_factory=dict,
        title="Folder roles",
        description="Roles of folders the server does not mark (name -> role).",
    )
    save_sent_copy: bool = Field(
        default=True,
        title="Save sent copy",
        description="Append sent mail to Sent (turn off where the server does it, e.g. Gmail).",
    )
    timeout_s: float = Field(default=30.0, gt=0, le=600, title="Timeout (s)")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        value = value.strip().lower()
        if "@" not in value:
            raise ValueError("not an email address")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> ImapEmailConfig:
        if self.auth == "password" and self.password is None:
            raise ValueError("password: required when auth is 'password'")
        return self


def _token_provider(config: ImapEmailConfig, context: ConnectorContext) -> Any:
    if config.auth != "xoauth2":
        return None
    providers = context.extras.get("token_providers") or {}
    provider = providers.get(context.instance_name)
    if provider is not None:
        return provider
    if config.oauth_token is None:
        from integrations.errors import ConnectorUnavailableError

        raise ConnectorUnavailableError(
            "xoauth2 needs oauth_token or an injected token provider",
            connector=context.instance_name,
        )
    token = config.oauth_token

    async def static() -> str:
        return token.get_secret_value()

    return static


def build_connector(config: ImapEmailConfig, context: ConnectorContext) -> ImapEmailConnector:
    """A connector instance for one tenant (synchronous form of the factory)."""
    # The IMAP and SMTP clients and the MIME layer load with the first instance: discovery
    # at start-up needs only the spec and its config model.
    from integrations.imap.connection import ImapEndpoint
    from integrations.imap.email import ImapEmailConnector
    from integrations.imap.smtp import SmtpEndpoint

    tokens = _token_provider(config, context)
    password = config.password.get_secret_value() if config.password else None
    username = config.username or config.address
    imap = ImapEndpoint(
        host=config.imap_host,
        port=config.imap_port,
        security=config.imap_security,
        username=username,
        password=password,
        token_provider=tokens,
        ca_file=config.ca_file,
        timeout_s=config.timeout_s,
    )
    smtp = SmtpEndpoint(
        host=config.smtp_host or config.imap_host,
        port=config.smtp_port,
        security=config.smtp_security,
        username=username,
        password=password,
        token_provider=tokens,
        ca_file=config.ca_file,
        timeout_s=config.timeout_s,
    )
    return ImapEmailConnector(
        mailbox=config.address,
        imap=imap,
        smtp=smtp,
        name=context.instance_name,
        folder_roles=config.folder_roles,
        save_sent_copy=config.save_sent_copy,
    )


async def _build(config: ImapEmailConfig, context: ConnectorContext) -> ImapEmailConnector:
    return build_connector(config, context)


EMAIL_SPEC = ConnectorSpec(
    slug="imap.email",
    kind="imap",
    title="IMAP/SMTP mailbox",
    config_model=ImapEmailConfig,
    capabilities=frozenset({Capability.EMAIL}),
    factory=_build,
    description="Any IMAP server (TLS or STARTTLS; CONDSTORE and IDLE where offered) with "
    "SMTP submission; password or XOAUTH2.",
)

__all__ = ["EMAIL_SPEC", "ImapEmailConfig", "ImapEmailConnector", "build_connector"]


def __getattr__(name: str) -> Any:
    # ImapEmailConnector is exported but loads on first use (see build_connector).
    if name == "ImapEmailConnector":
        from integrations.imap.email import ImapEmailConnector

        return ImapEmailConnector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
