"""Conversations with the agent, stored per executive (deletable by her).

Message text lives here, never in the audit log: the audit events of a turn carry ids,
hashes, tool names and action ids only (see :mod:`assistant.agent.store`).
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from assistant.core.db import Base, UTCDateTime


class ConversationRow(Base):
    __tablename__ = "agent_conversations"
    __table_args__ = (Index("ix_agent_conversations_owner", "tenant_id", "executive_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    executive_id: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(120))
    turns: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChatMessageRow(Base):
    """One entry of a conversation: the question, a tool run, or the answer."""

    __tablename__ = "agent_messages"
    __table_args__ = (Index("ix_agent_messages_conversation", "conversation_id", "seq"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("agent_conversations.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    turn: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))  # user | tool | assistant
    author: Mapped[str | None] = mapped_column(String(200), nullable=True)
    content: Mapped[str] = mapped_column(Text, default="")
    tool: Mapped[str | None] = mapped_column(String(64), nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
