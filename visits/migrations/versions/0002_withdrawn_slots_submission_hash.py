"""withdrawn slots and submission fingerprints

A slot the schedule no longer has, but which bookings refer to, is withdrawn instead of
deleted. A booking remembers a fingerprint of what was submitted with its submission key.
Plain ADD COLUMN on both databases: SQLite keeps its table (and its CHECK constraints).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("booking", sa.Column("submission_hash", sa.String(length=64), nullable=True))
    op.add_column("slot", sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("slot") as batch_op:
        batch_op.drop_column("withdrawn_at")
    with op.batch_alter_table("booking") as batch_op:
        batch_op.drop_column("submission_hash")
