"""indexes for what every booking and the worker's frequent jobs read

The one-visit-a-day check scanned every booked visitor on SQLite: its partial index said
``active`` while the query says ``active = 1``, and SQLite only uses a partial index whose
condition the query repeats. The index is rebuilt on SQLite with the query's wording (the
PostgreSQL index is unchanged). Visitor suspensions get the index their check needs; the
hold-expiry job (every 30 s) and the inbound-message purge, which both hold the write lock
while they read, get theirs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ONE_VISIT_A_DAY = "uq_booking_visitor_one_visit_a_day"
INDEXES = (
    ("ix_visitor_suspension_prison_visitor", "visitor_suspension", ["prison_id", "visitor_id"]),
    ("ix_booking_status_hold_expires_at", "booking", ["status", "hold_expires_at"]),
    ("ix_inbound_message_received_at", "inbound_message", ["received_at"]),
)


def _rebuild_one_visit_a_day(sqlite_condition: str) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index(ONE_VISIT_A_DAY, table_name="booking_visitor")
    op.create_index(
        ONE_VISIT_A_DAY,
        "booking_visitor",
        ["visitor_id", "visit_date"],
        unique=True,
        sqlite_where=sa.text(sqlite_condition),
    )


def upgrade() -> None:
    _rebuild_one_visit_a_day("active = 1")
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
    _rebuild_one_visit_a_day("active")
