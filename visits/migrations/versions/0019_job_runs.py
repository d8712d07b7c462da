"""job_run: each background job's last success and failure, so that a worker never started,
or stopped, shows (``GET /healthz/jobs``, a banner for administrators)

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30
"""

from alembic import op
import sqlalchemy as sa

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_run",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=80), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_run")),
    )


def downgrade() -> None:
    op.drop_table("job_run")
