"""outbox messages withdrawn while in a dispatcher's hands

Cancelling a booking marks its messages that a dispatcher holds, or whose fate is unknown, as
withdrawn: they are not sent again. Plain ADD COLUMN on both databases.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "outbox_message", sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("outbox_message", "withdrawn_at")
