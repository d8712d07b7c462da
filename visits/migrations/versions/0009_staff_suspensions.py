"""suspensions staff make in the browser: visits to an inmate (apart from the roster's own
column, which imports rewrite), and who barred or lifted a visitor's suspension

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inmate_suspension",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inmate_id", sa.Integer(), nullable=False),
        sa.Column("until", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["inmate_id"],
            ["inmate.id"],
            name=op.f("fk_inmate_suspension_inmate_id_inmate"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inmate_suspension")),
    )
    op.create_index(
        op.f("ix_inmate_suspension_inmate_id"), "inmate_suspension", ["inmate_id"], unique=False
    )
    with op.batch_alter_table("visitor_suspension") as batch:
        batch.add_column(sa.Column("created_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("lifted_by", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("visitor_suspension") as batch:
        batch.drop_column("lifted_by")
        batch.drop_column("lifted_at")
        batch.drop_column("created_by")
    op.drop_index(op.f("ix_inmate_suspension_inmate_id"), table_name="inmate_suspension")
    op.drop_table("inmate_suspension")
