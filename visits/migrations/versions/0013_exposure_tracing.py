"""exposure tracing: who was told of an advisory, and the indexes that trace contacts and
purge old visits (booking_visitor.high_risk, which tracing reads, came with screening in 0012)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from alembic import op
import sqlalchemy as sa

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A wing advisory's inmates (locked when issued; their visitors traced).
    op.create_index("ix_inmate_wing_id", "inmate", ["wing_id"])
    # The retention purge walks visits from the oldest day.
    op.create_index("ix_booking_visitor_visit_date", "booking_visitor", ["visit_date"])
    # Whether a visitor has any visit left, and the check of every visitor deleted.
    op.create_index("ix_booking_visitor_visitor_id", "booking_visitor", ["visitor_id"])
    # Whether a person is barred still, or was until lately; the suspensions ended long ago.
    op.create_index(
        "ix_visitor_suspension_visitor_until", "visitor_suspension", ["visitor_id", "until"]
    )
    op.create_index("ix_visitor_suspension_until", "visitor_suspension", ["until"])
    op.create_table(
        "contact_notice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("advisory_id", sa.Integer(), nullable=False),
        sa.Column("visitor_id", sa.Integer(), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["advisory_id"], ["health_advisory.id"],
            name=op.f("fk_contact_notice_advisory_id_health_advisory"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["visitor_id"], ["visitor.id"],
            name=op.f("fk_contact_notice_visitor_id_visitor"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_notice")),
        sa.UniqueConstraint(
            "advisory_id", "visitor_id", name=op.f("uq_contact_notice_advisory_id_visitor_id")
        ),
    )
    op.create_index("ix_contact_notice_visitor_id", "contact_notice", ["visitor_id"])
    op.create_index("ix_contact_notice_at", "contact_notice", ["at"])


def downgrade() -> None:
    op.drop_index("ix_contact_notice_at", table_name="contact_notice")
    op.drop_index("ix_contact_notice_visitor_id", table_name="contact_notice")
    op.drop_table("contact_notice")
    op.drop_index("ix_visitor_suspension_until", table_name="visitor_suspension")
    op.drop_index("ix_visitor_suspension_visitor_until", table_name="visitor_suspension")
    op.drop_index("ix_booking_visitor_visitor_id", table_name="booking_visitor")
    op.drop_index("ix_booking_visitor_visit_date", table_name="booking_visitor")
    op.drop_index("ix_inmate_wing_id", table_name="inmate")
