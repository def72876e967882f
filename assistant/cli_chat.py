"""``assistant ask "..."``: one turn of the chat agent on the command line.

The CLI runs on the deployment's own machine, as the executive whose mailbox the tenant's
email connector holds (or ``--as``); a delegate is ``--as HER --delegate ME``. The same
agent, governance and audit as ``POST /api/v1/chat``: proposals are cards to approve with
``assistant actions`` or the review queue.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.console import Console

from assistant.cli_support import settings_or_exit
from assistant.core.errors import AssistantError

console = Console()
err = Console(stderr=True)


def ask(
    question: Annotated[str, typer.Argument(help="What to ask the assistant.")],
    executive: Annotated[
        str | None,
        typer.Option("--as", help="The executive (default: the tenant's mailbox owner)."),
    ] = None,
    delegate: Annotated[
        str | None, typer.Option(help="Ask as this delegate, acting for the executive.")
    ] = None,
    conversation: Annotated[
        str | None, typer.Option(help="Continue this conversation (its id).")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: the sandbox's).")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the events as JSON lines.")
    ] = False,
) -> None:
    """Ask the assistant one question; tools, cards and the answer print as they come."""
    settings = settings_or_exit()
    code = asyncio.run(_ask(settings, question, executive, delegate, conversation, tenant, as_json))
    raise typer.Exit(code)


async def _ask(
    settings: Any,
    question: str,
    executive: str | None,
    delegate: str | None,
    conversation: str | None,
    tenant: str | None,
    as_json: bool,
) -> int:
    from assistant.api.chat import build_agent
    from assistant.core.principal import Principal, Role
    from assistant.governance_app import build_governance
    from assistant.services import Services
    from integrations.base import Capability

    services = await Services.build(settings)
    try:
        tenant_id = tenant or settings.sandbox.tenant
        if executive is None:
            executive = str(services.connectors.get(tenant_id, Capability.EMAIL).mailbox)
        principal = (
            Principal(
                user_id=delegate,
                tenant_id=tenant_id,
                roles=frozenset({Role.DELEGATE}),
                on_behalf_of=executive,
            )
            if delegate
            else Principal(
                user_id=executive, tenant_id=tenant_id, roles=frozenset({Role.EXECUTIVE})
            )
        )
        governance = build_governance(services, mode="off")
        agent = build_agent(services, governance.actions)
        try:
            scope, conversation_id = await agent.prepare(principal, question, conversation)
        except AssistantError as exc:
            err.print(f"[red]{type(exc).__name__}[/red]: {exc.detail}")
            return 2
        try:
            async for event in agent.run(scope, conversation_id, question):
                if as_json:
                    console.print_json(json.dumps({"event": event.type, **event.data}, default=str))
                else:
                    _show(event.type, event.data)
        finally:
            await agent.llm.aclose()
    finally:
        await services.aclose()
    return 0


def _show(kind: str, data: dict[str, Any]) -> None:
    if kind == "turn":
        err.print(f"[dim]conversation {data['conversation_id']} turn {data['turn']}[/dim]")
    elif kind == "tool":
        err.print(f"[dim]tool {data['name']}: {data['status']}[/dim]")
    elif kind == "card":
        console.print(
            f"[bold]card[/bold] {data['title']} -> {data['state']} "
            f"(action {data['action_id']}; {data.get('reason') or ''})"
        )
    elif kind in ("budget", "error"):
        err.print(f"[yellow]{kind}[/yellow]: {data['detail']}")
    elif kind == "answer":
        console.print(data["text"])
    elif kind == "done":
        err.print(
            f"[dim]{data['model_calls']} model call(s), {data['tool_calls']} tool call(s), "
            f"{data['input_tokens']}+{data['output_tokens']} tokens, "
            f"${data['cost_usd']:.6f}, {data['latency_ms']:.0f} ms[/dim]"
        )
