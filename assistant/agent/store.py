"""Conversations: stored per executive, read and deleted by her (or her delegate), audited
by ids and hashes only."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.agent.models import ChatMessageRow, ConversationRow
from assistant.core.clock import utcnow
from assistant.core.errors import NotFoundError
from assistant.core.ids import new_id
from assistant.core.principal import Principal
from governance.audit import AuditAction, AuditEventIn, Outcome, record


def digest(text: str) -> str:
    """What the audit log keeps of a question: its SHA-256, never the text."""
    return hashlib.sha256(text.encode()).hexdigest()


class MessageOut(BaseModel):
    id: str
    turn: int
    role: str
    author: str | None
    content: str
    tool: str | None
    data: dict[str, Any]
    created_at: datetime


class ConversationOut(BaseModel):
    id: str
    executive_id: str
    title: str
    turns: int
    created_at: datetime
    updated_at: datetime
    messages: list[MessageOut] | None = None

    @classmethod
    def of(
        cls, row: ConversationRow, messages: list[ChatMessageRow] | None = None
    ) -> ConversationOut:
        return cls(
            id=row.id,
            executive_id=row.executive_id,
            title=row.title,
            turns=row.turns,
            created_at=row.created_at,
            updated_at=row.updated_at,
            messages=None
            if messages is None
            else [
                MessageOut(
                    id=m.id,
                    turn=m.turn,
                    role=m.role,
                    author=m.author,
                    content=m.content,
                    tool=m.tool,
                    data=m.data,
                    created_at=m.created_at,
                )
                for m in messages
            ],
        )


async def get_conversation(
    session: AsyncSession, principal: Principal, conversation_id: str
) -> ConversationRow:
    """The conversation, when it belongs to the executive the caller is (or acts for).
    Anyone else's is reported as missing, so that ids reveal nothing."""
    row = (
        await session.execute(
            select(ConversationRow).where(
                ConversationRow.id == conversation_id,
                ConversationRow.tenant_id == principal.tenant_id,
                ConversationRow.executive_id == principal.acting_for,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFoundError(f"no conversation {conversation_id!r}")
    return row


async def create_conversation(
    session: AsyncSession, principal: Principal, question: str
) -> ConversationRow:
    now = utcnow()
    row = ConversationRow(
        id=new_id(),
        tenant_id=principal.tenant_id,
        executive_id=principal.acting_for,
        created_by=principal.user_id,
        title=" ".join(question.split())[:120] or "(empty)",
        turns=0,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def messages_of(session: AsyncSession, conversation_id: str) -> list[ChatMessageRow]:
    return list(
        (
            await session.execute(
                select(ChatMessageRow)
                .where(ChatMessageRow.conversation_id == conversation_id)
                .order_by(ChatMessageRow.seq)
            )
        ).scalars()
    )


async def append(
    session: AsyncSession,
    conversation: ConversationRow,
    *,
    turn: int,
    role: str,
    content: str = "",
    author: str | None = None,
    tool: str | None = None,
    data: dict[str, Any] | None = None,
) -> ChatMessageRow:
    seq = (
        await session.execute(
            select(func.coalesce(func.max(ChatMessageRow.seq), 0)).where(
                ChatMessageRow.conversation_id == conversation.id
            )
        )
    ).scalar_one()
    row = ChatMessageRow(
        id=new_id(),
        conversation_id=conversation.id,
        seq=int(seq) + 1,
        turn=turn,
        role=role,
        author=author,
        content=content,
        tool=tool,
        data=data or {},
        created_at=utcnow(),
    )
    session.add(row)
    conversation.updated_at = row.created_at
    await session.flush()
    return row


async def list_conversations(
    session: AsyncSession, principal: Principal, *, limit: int = 50
) -> list[ConversationRow]:
    return list(
        (
            await session.execute(
                select(ConversationRow)
                .where(
                    ConversationRow.tenant_id == principal.tenant_id,
                    ConversationRow.executive_id == principal.acting_for,
                )
                .order_by(ConversationRow.updated_at.desc())
                .limit(limit)
            )
        ).scalars()
    )


async def delete_conversation(
    session: AsyncSession, principal: Principal, conversation_id: str
) -> None:
    """Delete the conversation and its messages; the audit log keeps that it happened."""
    row = await get_conversation(session, principal, conversation_id)
    count = len(await messages_of(session, row.id))
    await session.execute(delete(ChatMessageRow).where(ChatMessageRow.conversation_id == row.id))
    await session.delete(row)
    await session.flush()
    await record(
        session,
        principal,
        AuditEventIn(
            action=AuditAction.CHAT_CONVERSATION_DELETED,
            outcome=Outcome.SUCCESS,
            resource_type="agent_conversation",
            resource_id=conversation_id,
            payload={"executive": row.executive_id, "turns": row.turns, "messages": count},
        ),
    )
