"""Prisons and their wings, with the booking rules each prison sets for itself."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint, bindparam, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from visits.base import Base, UTCDateTime, utcnow

MAX_CODE_LENGTH = 32


class Prison(Base):
    __tablename__ = "prison"
    __table_args__ = (
        CheckConstraint("booking_opens_days >= 1", name="opens_days_positive"),
        CheckConstraint("booking_closes_hours >= 0", name="closes_hours_not_negative"),
        CheckConstraint("max_visitors >= 1", name="max_visitors_positive"),
        CheckConstraint("min_adults >= 0", name="min_adults_not_negative"),
        CheckConstraint("visits_per_inmate_per_week >= 1", name="weekly_visits_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(MAX_CODE_LENGTH), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="America/Lima")
    online_booking: Mapped[bool] = mapped_column(default=True)
    # Comma-separated locale codes offered to families, e.g. "es,en".
    languages: Mapped[str] = mapped_column(String(64), default="es,en")
    booking_opens_days: Mapped[int] = mapped_column(default=14)
    booking_closes_hours: Mapped[int] = mapped_column(default=24)
    max_visitors: Mapped[int] = mapped_column(default=3)
    min_adults: Mapped[int] = mapped_column(default=1)
    adult_age: Mapped[int] = mapped_column(default=18)
    visits_per_inmate_per_week: Mapped[int] = mapped_column(default=2)
    # When an administrator last changed the rules or the schedule in the browser: reloading
    # the prison file then leaves them alone unless told to overwrite them.
    schedule_edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local_date(self, moment: datetime) -> date:
        """The calendar day at the prison when ``moment`` happens."""
        return moment.astimezone(self.tz).date()

    @property
    def language_list(self) -> list[str]:
        return [code for code in self.languages.split(",") if code]


class Wing(Base):
    """A pabellón: inmates live in one, and health advisories can target one."""

    __tablename__ = "wing"
    __table_args__ = (UniqueConstraint("prison_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prison_id: Mapped[int] = mapped_column(ForeignKey("prison.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))


# Built once, not on every call: every family request asks it.
_PRISON_BY_CODE = select(Prison).where(Prison.code == bindparam("code"))


def prison_by_code(session: Session, code: str) -> Prison | None:
    """The prison an address or file names; an odd code (a NUL, which PostgreSQL refuses
    to compare, or more than a code holds) names none, without asking the database."""
    code = code.strip().upper()
    if not code or len(code) > MAX_CODE_LENGTH or "\x00" in code:
        return None
    return session.scalar(_PRISON_BY_CODE, {"code": code})


def bookable_prisons(session: Session) -> list[Prison]:
    """Prisons that take online bookings, in name order."""
    return list(session.scalars(select(Prison).where(Prison.online_booking).order_by(Prison.name)))
