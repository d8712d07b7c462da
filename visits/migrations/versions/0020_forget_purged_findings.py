"""what the gate found leaves the audit log of visits purged before the purge did it

The retention purge now removes what the gate found of a visitor (``turn_away_reason``: why
they were not let in, "health" among the reasons) from the history of each booking it purges,
as it removed the reasons staff typed (0017). Bookings purged before kept it: this removes it
once. A purged booking is one with no visitor left and its phone blanked (every booking is
made with at least one visitor).

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-29
"""

from alembic import op
import sqlalchemy as sa

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

# visits.gate.FINDINGS when this was written (a migration keeps its own copy).
FINDINGS = ("turn_away_reason",)

audit = sa.table(
    "audit_event",
    sa.column("id", sa.Integer),
    sa.column("entity", sa.String),
    sa.column("entity_id", sa.String),
    sa.column("details", sa.JSON),
)
booking = sa.table(
    "booking", sa.column("id", sa.Integer), sa.column("reference", sa.String),
    sa.column("contact_phone", sa.String),
)  # fmt: skip
booking_visitor = sa.table("booking_visitor", sa.column("booking_id", sa.Integer))


def upgrade() -> None:
    connection = op.get_bind()
    purged_bookings = sa.select(booking.c.reference).where(
        booking.c.contact_phone == "",
        ~sa.exists().where(booking_visitor.c.booking_id == booking.c.id),
    )
    holding = sa.or_(
        *(sa.cast(audit.c.details, sa.Text).like(f'%"{key}"%') for key in FINDINGS)
    )
    rows = connection.execute(
        sa.select(audit.c.id, audit.c.details).where(
            audit.c.entity == "booking", audit.c.entity_id.in_(purged_bookings), holding
        )
    ).all()
    for event_id, details in rows:
        if isinstance(details, dict) and any(key in details for key in FINDINGS):
            kept = {key: value for key, value in details.items() if key not in FINDINGS}
            connection.execute(audit.update().where(audit.c.id == event_id).values(details=kept))


def downgrade() -> None:
    """Nothing to undo: what the gate found is gone, as the retention period meant."""
