"""The embedded default: a mailbox and calendars in the application's own database."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from integrations.base import Capability, ConnectorContext, ConnectorSpec
from integrations.errors import ConnectorUnavailableError
from integrations.sandbox.calendar import SandboxCalendarConnector
from integrations.sandbox.email import SandboxEmailConnector
from integrations.sandbox.seed_files import default_seed_dir, seed_executive_address


class SandboxEmailConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mailbox: str | None = Field(
        default=None,
        title="Mailbox",
        description="Address of the mailbox; default: the executive of the seed files.",
    )
    seed_dir: Path | None = Field(
        default=None, title="Seed folder", description="Folder of mailbox.yaml and calendars.yaml."
    )


class SandboxCalendarConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner: str | None = Field(
        default=None,
        title="Owner",
        description="Whose calendar it writes to; default: the executive.",
    )
    seed_dir: Path | None = Field(
        default=None, title="Seed folder", description="Folder of mailbox.yaml and calendars.yaml."
    )


def _executive(seed_dir: Path | None, context: ConnectorContext) -> str:
    folder = seed_dir or context.extras.get("sandbox_seed_dir") or default_seed_dir()
    address = seed_executive_address(folder)
    if address is None:  # not plainly there: the whole file, validated, says why
        from integrations.sandbox.seed import load_mailbox_seed

        address = load_mailbox_seed(folder).executive.address
    return address


def _sessions(context: ConnectorContext) -> object:
    if context.session_factory is None:
        raise ConnectorUnavailableError("the sandbox needs the application database")
    return context.session_factory


async def _build_email(config: SandboxEmailConfig, context: ConnectorContext) -> object:
    return SandboxEmailConnector(
        tenant_id=context.tenant_id,
        mailbox=config.mailbox or _executive(config.seed_dir, context),
        session_factory=_sessions(context),  # type: ignore[arg-type]
        name=context.instance_name,
    )


async def _build_calendar(config: SandboxCalendarConfig, context: ConnectorContext) -> object:
    return SandboxCalendarConnector(
        tenant_id=context.tenant_id,
        owner=config.owner or _executive(config.seed_dir, context),
        session_factory=_sessions(context),  # type: ignore[arg-type]
        name=context.instance_name,
    )


EMAIL_SPEC = ConnectorSpec(
    slug="sandbox.email",
    kind="sandbox",
    title="Sandbox mailbox",
    config_model=SandboxEmailConfig,
    capabilities=frozenset({Capability.EMAIL}),
    factory=_build_email,
    description="A mailbox in the application's own database, seeded with a working week.",
)
CALENDAR_SPEC = ConnectorSpec(
    slug="sandbox.calendar",
    kind="sandbox",
    title="Sandbox calendars",
    config_model=SandboxCalendarConfig,
    capabilities=frozenset({Capability.CALENDAR}),
    factory=_build_calendar,
    description="Calendars of the sandbox's people, in the application's own database.",
)

__all__ = ["CALENDAR_SPEC", "EMAIL_SPEC", "SandboxCalendarConnector", "SandboxEmailConnector"]
