"""TB symptom screening: each visitor's outcome by stage and day (never the answers), and the
one routing answer kept, high risk, on the booking's visitor

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "booking_visitor",
        sa.Column("high_risk", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_table(
        "screening",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("booking_visitor_id", sa.Integer(), nullable=False),
        sa.Column(
            "stage",
            sa.Enum("booking", "gate", name="stage", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "outcome",
            sa.Enum("clear", "advised", "refer", name="outcome", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_visitor_id"],
            ["booking_visitor.id"],
            name=op.f("fk_screening_booking_visitor_id_booking_visitor"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_screening")),
        sa.UniqueConstraint(
            "booking_visitor_id", "stage", name=op.f("uq_screening_booking_visitor_id_stage")
        ),
    )


def downgrade() -> None:
    op.drop_table("screening")
    op.drop_column("booking_visitor", "high_risk")
