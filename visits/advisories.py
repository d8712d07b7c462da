"""Health advisories as stored, and what they change for bookings (the rules themselves are
in :mod:`visits.health`).

A booking is refused while an advisory over the visited inmate suspends visits, and a visitor
under 5 is refused where an advisory keeps high-risk visitors away; both are checked with the
booking's other rules, under the same locks (see :mod:`visits.booking`). The family is told a
health measure applies, never the diagnosis or whom it concerns. Issuing and lifting are in
:mod:`visits.issuing`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, bindparam, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from visits import health
from visits.base import Base, UTCDateTime, str_enum
from visits.health import AdvisoryKind, Measures, Scope

if TYPE_CHECKING:
    from visits.booking import Booking


class HealthAdvisory(Base):
    __tablename__ = "health_advisory"
    __table_args__ = (
        CheckConstraint(
            "(scope = 'inmate' AND inmate_id IS NOT NULL) OR scope != 'inmate'",
            name="inmate_scope_names_inmate",
        ),
        CheckConstraint(
            "(scope = 'wing' AND wing_id IS NOT NULL) OR scope != 'wing'",
            name="wing_scope_names_wing",
        ),
        CheckConstraint("visit_minutes IS NULL OR visit_minutes > 0", name="minutes_positive"),
        # Every booking asks which advisories of its prison are in force.
        Index("ix_health_advisory_prison_lifted", "prison_id", "lifted_at"),
        Index("uq_health_advisory_submission_key", "submission_key", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    prison_id: Mapped[int] = mapped_column(ForeignKey("prison.id", ondelete="CASCADE"))
    scope: Mapped[Scope] = mapped_column(str_enum(Scope))
    # A wing advisory's wing; an inmate advisory's inmate's wing when it was issued.
    wing_id: Mapped[int | None] = mapped_column(ForeignKey("wing.id", ondelete="SET NULL"))
    inmate_id: Mapped[int | None] = mapped_column(ForeignKey("inmate.id", ondelete="CASCADE"))
    kind: Mapped[AdvisoryKind] = mapped_column(str_enum(AdvisoryKind))
    infectious_since: Mapped[date | None] = mapped_column(Date)
    smear_negative_no_cavity: Mapped[bool] = mapped_column(default=False)
    inform: Mapped[bool] = mapped_column(default=False)
    masks: Mapped[bool] = mapped_column(default=False)
    no_high_risk: Mapped[bool] = mapped_column(default=False)
    non_contact: Mapped[bool] = mapped_column(default=False)
    visit_minutes: Mapped[int | None]
    suspended: Mapped[bool] = mapped_column(default=False)
    # For health staff and administrators only; never shown to guards or families.
    notes: Mapped[str] = mapped_column(String(2000), default="")
    starts_on: Mapped[date] = mapped_column(Date)
    # Bumped when the measures change: families are told once per version.
    version: Mapped[int] = mapped_column(default=1)
    # The preview's one-off key: the same confirmation sent twice issues one advisory.
    submission_key: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Only a health user lifts an advisory, never a timer.
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lifted_by: Mapped[str | None] = mapped_column(String(64))

    @property
    def measures(self) -> Measures:
        return Measures(
            inform=self.inform,
            masks=self.masks,
            no_high_risk=self.no_high_risk,
            non_contact=self.non_contact,
            visit_minutes=self.visit_minutes,
            suspended=self.suspended,
        )

    def rule(self) -> health.Advisory:
        """The advisory in force, as the rules read it (a lifted one is in force no more)."""
        return health.Advisory(
            scope=self.scope,
            prison_id=self.prison_id,
            measures=self.measures,
            starts_on=self.starts_on,
            wing_id=self.wing_id,
            inmate_id=self.inmate_id,
        )


# Built once, not on every call: every booking asks it, and building a statement costs more
# than running it. The prison's id is typed here: the column takes its type from prison.id,
# which may not be declared yet when this module is imported.
_IN_FORCE = select(HealthAdvisory).where(
    HealthAdvisory.prison_id == bindparam("prison_id", type_=Integer),
    HealthAdvisory.lifted_at.is_(None),
    HealthAdvisory.starts_on <= bindparam("day"),
)


def in_force(
    session: Session, prison_id: int, day: date, without: int | None = None
) -> list[health.Advisory]:
    """The advisories of a prison in force on ``day`` (not lifted, started by then), but the
    one whose id is ``without`` (what would apply once it is lifted)."""
    rows = session.scalars(_IN_FORCE, {"prison_id": prison_id, "day": day})
    return [row.rule() for row in rows if row.id != without]


def timeline(
    session: Session, prison_id: int, wing_id: int | None, inmate_id: int, first: date, last: date
) -> list[tuple[date, Measures]]:
    """The measures for visits to this inmate over these days, as they change (see
    :func:`visits.health.timeline`)."""
    advisories = in_force(session, prison_id, last)
    return health.timeline(advisories, prison_id, wing_id, inmate_id, first, last)


def measures_on(
    session: Session, prison_id: int, wing_id: int | None, inmate_id: int, day: date
) -> Measures:
    """Every measure in force for a visit to this inmate on this day."""
    advisories = in_force(session, prison_id, day)
    return health.measures_for(advisories, prison_id, wing_id, inmate_id, day)


def for_booking(session: Session, booking: Booking) -> Measures:
    """Every measure in force for this booking's visit."""
    return measures_on(
        session, booking.prison_id, booking.inmate.wing_id, booking.inmate_id,
        booking.slot.local_date,
    )  # fmt: skip
