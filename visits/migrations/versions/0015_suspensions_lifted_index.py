"""suspensions by when they were lifted: the retention purge finds people kept only by a
suspension lifted long ago

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-28
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_visitor_suspension_lifted_at", "visitor_suspension", ["lifted_at"])


def downgrade() -> None:
    op.drop_index("ix_visitor_suspension_lifted_at", table_name="visitor_suspension")
