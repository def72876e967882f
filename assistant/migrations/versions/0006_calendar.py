"""calendar sync state (filled by the calendar work)

Revision ID: 0006_calendar
Revises: 0005_mail
Create Date: 2026-11-24
"""

from __future__ import annotations

revision = "0006_calendar"
down_revision = "0005_mail"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
