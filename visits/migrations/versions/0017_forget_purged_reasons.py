"""staff-typed reasons leave the audit log of visits and people purged before the purge did it

The retention purge now removes the ``reason`` staff typed into the history of each booking
it purges and of each person it deletes (free text may say anything about someone). Bookings
and people purged before that kept theirs: this removes them once. A purged booking is one
with no visitor left and its phone blanked (every booking is made with at least one visitor);
a deleted person's events name an id no visitor has any more.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

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
visitor = sa.table("visitor", sa.column("id", sa.Integer))


def upgrade() -> None:
    connection = op.get_bind()
    purged_bookings = sa.select(booking.c.reference).where(
        booking.c.contact_phone == "",
        ~sa.exists().where(booking_visitor.c.booking_id == booking.c.id),
    )
    deleted_person = ~sa.exists().where(sa.cast(visitor.c.id, sa.String) == audit.c.entity_id)
    rows = connection.execute(
        sa.select(audit.c.id, audit.c.details).where(
            sa.cast(audit.c.details, sa.Text).like('%"reason"%'),
            sa.or_(
                sa.and_(audit.c.entity == "booking", audit.c.entity_id.in_(purged_bookings)),
                sa.and_(audit.c.entity == "visitor", deleted_person),
            ),
        )
    ).all()
    for event_id, details in rows:
        if isinstance(details, dict) and "reason" in details:
            kept = {key: value for key, value in details.items() if key != "reason"}
            connection.execute(audit.update().where(audit.c.id == event_id).values(details=kept))


def downgrade() -> None:
    """Nothing to undo: the reasons are gone, as the retention period meant."""
