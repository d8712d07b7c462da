"""what the gate recorded for each visitor: came in, or turned away with the reason

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gate_check",
        sa.Column("booking_visitor_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("arrived", "turned_away", name="gatestatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "reason",
            sa.Enum(
                "no_document",
                "wrong_document",
                "late",
                "prohibited_item",
                "health",
                "behaviour",
                "other",
                name="turnawayreason",
                native_enum=False,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column("note", sa.String(length=300), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_visitor_id"],
            ["booking_visitor.id"],
            name=op.f("fk_gate_check_booking_visitor_id_booking_visitor"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("booking_visitor_id", name=op.f("pk_gate_check")),
    )


def downgrade() -> None:
    op.drop_table("gate_check")
