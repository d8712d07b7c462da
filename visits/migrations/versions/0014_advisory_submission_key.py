"""an advisory's one-off submission key: "Issue" clicked twice issues one advisory

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "health_advisory", sa.Column("submission_key", sa.String(length=64), nullable=True)
    )
    op.create_index(
        "uq_health_advisory_submission_key", "health_advisory", ["submission_key"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_health_advisory_submission_key", table_name="health_advisory")
    op.drop_column("health_advisory", "submission_key")
