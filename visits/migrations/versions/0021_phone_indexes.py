"""indexes on the phones of bookings and exposure notices: the daily purge asks which phones
they still hold before it forgets an opt-out or an unreachable mark, and read both tables
whole to answer

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-29
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_booking_contact_phone", "booking", ["contact_phone"])
    op.create_index("ix_contact_notice_phone", "contact_notice", ["phone"])


def downgrade() -> None:
    op.drop_index("ix_contact_notice_phone", table_name="contact_notice")
    op.drop_index("ix_booking_contact_phone", table_name="booking")
