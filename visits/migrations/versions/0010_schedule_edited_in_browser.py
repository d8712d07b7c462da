"""when a prison's rules or schedule were last edited in the browser (the prison file then
leaves them alone unless told to overwrite them)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("prison") as batch:
        batch.add_column(sa.Column("schedule_edited_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prison") as batch:
        batch.drop_column("schedule_edited_at")
