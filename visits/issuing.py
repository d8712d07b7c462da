"""Health staff issue, re-issue and lift advisories, and what that does to the bookings still
to come (the advisory itself is :mod:`visits.advisories`, its rules :mod:`visits.health`).

Issuing applies at once, in one transaction: every booking the advisory covers from its first
day is re-evaluated; where visits are suspended it is cancelled and the family gets an apology
and how to book again, otherwise a confirmed booking's family is told the measures for its visit
(every advisory's) and what they ask. A family is told once for the same measures: issuing the
same measures again, or another advisory that changes nothing for their visit, tells nobody
twice. A booking whose visitor the gate already let in (``attended``, before its visit time) is not
cancelled where visits are suspended (the person is inside: an SMS cancelling it would be wrong): it
is counted apart, for health staff to tell the gate, and the gate's list flags it; so is a confirmed
booking whose visit time is under way (its family may be at the gate). If the gate then
undoes that check-in, it is cancelled as issuing would have (:mod:`visits.stopping`, for every
cause that stops a visit; :func:`pausing` finds the suspension). Every inmate the advisory covers is
locked first (bookings lock their inmate before reading advisories), so no booking slips in between.
Lifting reopens booking; what was cancelled stays cancelled; a family told of the measures is
told what applies now (the other advisories' measures, or that none do).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from notifications.outbox import OutboxMessage
from visits import audit, health, sms
from visits.advisories import HealthAdvisory, in_force
from visits.audit import AuditEvent
from visits.booking import (
    STOPPABLE,
    Booking,
    BookingStatus,
    CancelCause,
    cancel_booking,
    lock_for_cancelling,
)
from visits.db import lock_rows, require_write_lock
from visits.health import AdvisoryKind, Measures, Scope
from visits.inmate import Inmate, normalise_code
from visits.prison import Prison, Wing
from visits.problems import Code, Problem, Rejected, reject_if
from visits.schedule import Slot, longest_session
from visits.sms import SmsPolicy


@dataclass(frozen=True)
class AdvisoryDraft:
    """What health staff ask for. ``wing_code`` names a wing advisory's wing, ``inmate_code``
    an inmate advisory's index inmate."""

    scope: Scope
    kind: AdvisoryKind
    measures: Measures
    starts_on: date
    wing_code: str | None = None
    inmate_code: str | None = None
    infectious_since: date | None = None
    smear_negative_no_cavity: bool = False
    notes: str = ""
    submission_key: str | None = None  # the preview's: confirming twice issues once


@dataclass
class Effect:
    """What issuing (or changing) an advisory did to the bookings it touches."""

    advisory: HealthAdvisory
    cancelled: list[Booking] = field(default_factory=list)
    # Confirmed bookings whose family knows of these measures: told now, or by an earlier
    # issue of the same version (its message is not queued twice). Lifting: those whose
    # family was texted now what applies without it.
    told: list[Booking] = field(default_factory=list)
    # Lifting: one booking per family told it can book again.
    reopened: list[Booking] = field(default_factory=list)
    # Lifting: those of ``told`` told no measure applies any more (the rest were told the
    # other advisories' measures).
    no_longer: list[Booking] = field(default_factory=list)
    # Suspending: bookings already let in at the gate, left as they are (tell the gate).
    at_gate: list[Booking] = field(default_factory=list)
    # The same confirmation came again (a double click): nothing more was done.
    replayed: bool = False
    # A lift sent again: what the first one's history counts ("reopened", "told",
    # "no_longer").
    before: dict[str, Any] = field(default_factory=dict)

    def count(self, name: str) -> int:
        """How many families this lift (or change), or the first one if it came again, told
        so: ``name`` is "reopened" (book again), "told" (what applies now) or "no_longer"."""
        return int(self.before.get(name, 0)) if self.replayed else len(getattr(self, name))


@dataclass(frozen=True)
class Preview:
    """What issuing or changing an advisory would do, before health staff confirm."""

    advisory: HealthAdvisory  # not stored
    found: list[Booking]  # every booking not over yet that it covers (see :func:`touched`)
    now: datetime
    # One booking per family told it can book again (visits no longer suspended, or lifted).
    reopened: list[Booking] = field(default_factory=list)
    # Lifting: each booking whose family would be texted what applies without it, with that.
    news: list[tuple[Booking, Measures]] = field(default_factory=list)

    @property
    def no_longer(self) -> list[Booking]:
        """Lifting: those whose family would be told no measure applies any more."""
        return [b for b, measures in self.news if not measures.any]

    @property
    def still(self) -> list[Booking]:
        """Lifting: those whose family would be told the measures that still apply."""
        return [b for b, measures in self.news if measures.any]

    @property
    def bookings(self) -> list[Booking]:
        """Those it cancels or whose families it tells: not those let in at the gate, nor
        those whose visit time is under way (issuing leaves both)."""
        return [b for b in self.found if b.can_change(self.now)]

    @property
    def at_gate(self) -> list[Booking]:
        """Suspending: bookings someone of which is inside, or whose visit time is under way,
        which the gate must stop (:func:`visits.stopping.left`)."""
        return _at_gate(self.advisory, self.found, self.now)

    @property
    def cancelled(self) -> list[Booking]:
        return self.bookings if self.advisory.suspended else []

    @property
    def told(self) -> list[Booking]:
        """The families told by SMS now (a booking still waiting for its code is told when it
        is confirmed)."""
        if self.advisory.suspended:
            return []
        return [b for b in self.bookings if b.status is BookingStatus.CONFIRMED]


MIN_VISIT_MINUTES = 10
MAX_VISIT_MINUTES = 600
MAX_NOTES = 2000
# How far an advisory may start ahead, and how far back infectiousness may be counted from.
MAX_YEARS_AHEAD = 1
MAX_YEARS_BACK = 2


def _target(
    session: Session, prison: Prison, draft: AdvisoryDraft, today: date
) -> tuple[list[Problem], Wing | None, Inmate | None]:
    problems: list[Problem] = []
    wing = inmate = None
    if draft.scope is Scope.WING:
        wing = session.scalar(
            select(Wing).where(Wing.prison_id == prison.id, Wing.code == (draft.wing_code or ""))
        )
        if wing is None:
            problems.append(Problem(Code.INVALID_CHOICE, "wing"))
    if draft.scope is Scope.INMATE:
        inmate = session.scalar(
            select(Inmate).where(
                Inmate.prison_id == prison.id,
                Inmate.code == normalise_code(draft.inmate_code or ""),
            )
        )
        if inmate is None:
            problems.append(Problem(Code.INMATE_NOT_FOUND, "inmate_code"))
    problems += measure_problems(session, prison, draft.measures, max(draft.starts_on, today))
    if draft.starts_on < today:
        problems.append(Problem(Code.DAY_IN_PAST, "starts_on"))
    elif draft.starts_on > _years_from(today, MAX_YEARS_AHEAD):
        problems.append(Problem(Code.DATE_TOO_FAR, "starts_on", {"years": MAX_YEARS_AHEAD}))
    if draft.infectious_since is not None:
        problems += _since_problems(draft.infectious_since, today)
    if len(draft.notes) > MAX_NOTES:
        problems.append(Problem(Code.TOO_LONG, "notes", {"max": MAX_NOTES}))
    return problems, wing, inmate


def _since_problems(since: date, today: date) -> list[Problem]:
    if since > today:
        return [Problem(Code.DATE_IN_FUTURE, "infectious_since")]
    if since < _years_from(today, -MAX_YEARS_BACK):
        return [Problem(Code.DATE_TOO_OLD, "infectious_since", {"years": MAX_YEARS_BACK})]
    return []


def date_case(
    session: Session,
    advisory_id: int,
    prison: Prison,
    since: date | None,
    smear_negative_no_cavity: bool,
    *,
    now: datetime,
    actor: str,
    origin: str,
) -> HealthAdvisory:
    """Give, or correct, the date the advisory's case is infectious from (and whether it is
    smear-negative without cavity), once it is issued, lifted or not: measures are often taken
    on suspicion, and the culture or the diagnosis date comes weeks later; without it there is
    no contact list. Only the tracing window changes (no booking, no family is touched);
    contacts already told stay told. Audited with the date it had. Raises :class:`Rejected`."""
    require_write_lock(session)
    advisory = _locked_advisory(session, advisory_id, prison)
    if since is None:
        raise Rejected([Problem(Code.REQUIRED, "infectious_since")])
    reject_if(_since_problems(since, prison.local_date(now)))
    before = advisory.infectious_since
    advisory.infectious_since = since
    advisory.smear_negative_no_cavity = smear_negative_no_cavity
    advisory.updated_at = now
    audit.record(
        session,
        at=now,
        actor=actor,
        action="advisory.dated",
        entity="advisory",
        entity_id=advisory.id,
        details={
            "infectious_since": since.isoformat(),
            "before": before.isoformat() if before else None,
            "smear_negative_no_cavity": smear_negative_no_cavity,
        },
        origin=origin,
    )
    session.flush()
    return advisory


def _years_from(day: date, years: int) -> date:
    return day.replace(
        year=day.year + years, day=28 if (day.month, day.day) == (2, 29) else day.day
    )


def measure_problems(
    session: Session, prison: Prison, measures: Measures, first_day: date
) -> list[Problem]:
    """What is wrong with these measures for visits from ``first_day``: a shorter visit must
    be shorter than the longest visit time the prison has from then (see
    :func:`visits.schedule.longest_session`), or families would be told a limit that limits
    nothing; a prison with no visit times keeps the fixed bounds only."""
    if not measures.any:
        return [Problem(Code.MEASURE_REQUIRED, "measures")]
    minutes = measures.visit_minutes
    if minutes is None:
        return []
    if not MIN_VISIT_MINUTES <= minutes <= MAX_VISIT_MINUTES:
        limits = {"min": MIN_VISIT_MINUTES, "max": MAX_VISIT_MINUTES}
        return [Problem(Code.OUT_OF_RANGE, "visit_minutes", limits)]
    longest = longest_session(session, prison.id, first_day)
    if longest is not None and minutes >= longest:
        return [Problem(Code.VISIT_NOT_SHORTER, "visit_minutes", {"longest": longest})]
    return []


def _locked_advisory(session: Session, advisory_id: int, prison: Prison) -> HealthAdvisory:
    """The advisory, locked until commit: a lift and a re-issue take turns."""
    advisory = session.scalar(
        select(HealthAdvisory)
        .where(HealthAdvisory.id == advisory_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if advisory is None or advisory.prison_id != prison.id:
        raise Rejected([Problem(Code.NOT_FOUND)])
    return advisory


def _lock_scope(session: Session, advisory: HealthAdvisory) -> None:
    """Lock every inmate the advisory covers: a booking locks its inmate before it reads the
    advisories, so none slips in between this advisory and the bookings it re-evaluates."""
    query = select(Inmate.id).where(Inmate.prison_id == advisory.prison_id)
    if advisory.scope is Scope.INMATE:
        query = query.where(Inmate.id == advisory.inmate_id)
    elif advisory.scope is Scope.WING:
        query = query.where(Inmate.wing_id == advisory.wing_id)
    lock_rows(session, Inmate.id, session.scalars(query).all())


def touched(
    session: Session,
    advisory: HealthAdvisory,
    now: datetime,
    inmate_ids: Sequence[int] | None = None,
) -> list[Booking]:
    """The bookings not over yet that the advisory covers, from its first day (of these
    inmates only, when given): those holding seats, and those let in at the gate already;
    those whose visit time is under way too (a suspension leaves them for the gate to stop,
    :func:`_at_gate`; only those still to come are cancelled or told)."""
    query = (
        select(Booking)
        .join(Slot, Booking.slot_id == Slot.id)
        .join(Inmate, Booking.inmate_id == Inmate.id)
        .where(
            Booking.prison_id == advisory.prison_id,
            Booking.status.in_(STOPPABLE),
            Slot.ends_at > now,
            Slot.local_date >= advisory.starts_on,
        )
        .order_by(Booking.id)
    )
    if advisory.scope is Scope.INMATE:
        query = query.where(Booking.inmate_id == advisory.inmate_id)
    elif advisory.scope is Scope.WING:
        query = query.where(Inmate.wing_id == advisory.wing_id)
    if inmate_ids is not None:
        query = query.where(Booking.inmate_id.in_(inmate_ids))
    return list(session.scalars(query))


def _take_effect(
    session: Session,
    advisory: HealthAdvisory,
    now: datetime,
    actor: str,
    origin: str,
    sms_policy: SmsPolicy,
    inmate_ids: Sequence[int] | None = None,
) -> Effect:
    effect = Effect(advisory)
    bookings = touched(session, advisory, now, inmate_ids)
    # Locked and reloaded first: a family's cancel or move of one of them waits, or finished
    # first (then nothing is queued for a booking that no longer goes ahead).
    lock_for_cancelling(session, bookings)
    effect.at_gate = _at_gate(advisory, bookings, now)
    if advisory.suspended:
        for booking in bookings:
            if booking.can_change(now):
                cancel_booking(
                    session, booking, now=now, actor=actor, sms_policy=sms_policy,
                    origin=origin, cause=CancelCause.HEALTH_SUSPENDED,
                )  # fmt: skip
                effect.cancelled.append(booking)
        return effect
    effect.told = [b for b, _ in _tell_measures(session, advisory, bookings, now, sms_policy)[0]]
    return effect


def _tell_measures(
    session: Session,
    advisory: HealthAdvisory,
    bookings: list[Booking],
    now: datetime,
    sms_policy: SmsPolicy,
) -> tuple[list[tuple[Booking, Measures]], list[tuple[Booking, Measures]]]:
    """Tell each confirmed booking's family every measure now in force for its visit (every
    advisory's), unless their last text says the same: the bookings concerned, and those
    whose family got a text now, each with its measures."""
    concerned = _measures_now(session, advisory, bookings, now)
    texted = [
        (booking, measures)
        for booking, measures in concerned
        if sms.queue_health_measure(session, booking, sms_policy, now, measures)
    ]
    return concerned, texted


def _measures_now(
    session: Session,
    advisory: HealthAdvisory,
    bookings: list[Booking],
    now: datetime,
    without: int | None = None,
) -> list[tuple[Booking, Measures]]:
    """Each confirmed booking still to come of ``bookings``, with every measure in force for
    its visit (every advisory's, but the one whose id is ``without``)."""
    told = [b for b in bookings if b.status is BookingStatus.CONFIRMED and b.can_change(now)]
    # Every advisory in force, read once: a family is told all the measures for its visit.
    last_day = max((b.slot.local_date for b in told), default=advisory.starts_on)
    advisories = in_force(session, advisory.prison_id, last_day, without)
    return [
        (
            booking,
            health.measures_for(
                advisories, booking.prison_id, booking.inmate.wing_id, booking.inmate_id,
                booking.slot.local_date,
            ),
        )
        for booking in told
    ]  # fmt: skip


def _at_gate(advisory: HealthAdvisory, bookings: list[Booking], now: datetime) -> list[Booking]:
    """Suspending: those of ``bookings`` left for the gate to stop, as every stop leaves
    them (someone inside, or the visit time under way)."""
    from visits import stopping  # stopping reads issuing's pauses

    return stopping.left(bookings, now) if advisory.suspended else []


def pausing(session: Session, booking: Booking) -> HealthAdvisory | None:
    """The first suspension in force that pauses the booking's visit, if any: the gate's undo
    of its check-in cancels it for that one (:func:`visits.stopping.apply_to_undone`, which
    then records it here: :func:`applied_to_undone`)."""
    rows = session.scalars(
        select(HealthAdvisory)
        .where(
            HealthAdvisory.prison_id == booking.prison_id,
            HealthAdvisory.lifted_at.is_(None),
            HealthAdvisory.suspended,
            HealthAdvisory.starts_on <= booking.slot.local_date,
        )
        .order_by(HealthAdvisory.id)
    )
    inmate = booking.inmate
    covering = (a for a in rows if a.rule().covers(booking.prison_id, inmate.wing_id, inmate.id))
    return next(covering, None)


def applied_to_undone(
    session: Session, advisory: HealthAdvisory, booking: Booking, now: datetime, by: tuple[str, str]
) -> None:
    """In the advisory's history: it cancelled ``booking`` when the gate undid its check-in
    (``by``: who and from where); its family is told again when it is lifted."""
    actor, origin = by
    effect = Effect(advisory, cancelled=[booking])
    _audit(session, advisory, "advisory.applied_to_undone", now, actor, origin, effect)


def issue(
    session: Session,
    prison: Prison,
    draft: AdvisoryDraft,
    *,
    now: datetime,
    actor: str,
    origin: str,
    sms_policy: SmsPolicy,
) -> Effect:
    """Issue an advisory and apply it at once to every booking still to come that it covers,
    in this transaction: suspended visits are cancelled (each family told, with an apology),
    the other families are told a health measure applies. Raises :class:`Rejected` with every
    problem (nothing changes)."""
    require_write_lock(session)
    if (earlier := _submitted(session, prison, draft.submission_key)) is not None:
        return Effect(earlier, replayed=True)
    advisory = _drafted(session, prison, draft, now, actor)
    _lock_scope(session, advisory)
    try:
        with session.begin_nested():
            session.add(advisory)
            session.flush()
    except IntegrityError as error:
        # The same confirmation, at the same instant, committed first (PostgreSQL).
        if "submission_key" not in str(error.orig):
            raise
        earlier = _submitted(session, prison, draft.submission_key)
        if earlier is None:  # another prison's key: never one this page made
            raise Rejected([Problem(Code.SUBMISSION_KEY_REUSED)]) from None
        return Effect(earlier, replayed=True)
    effect = _take_effect(
        session, advisory, now=now, actor=actor, origin=origin, sms_policy=sms_policy
    )
    _audit(session, advisory, "advisory.issued", now, actor, origin, effect)
    return effect


def _submitted(session: Session, prison: Prison, key: str | None) -> HealthAdvisory | None:
    if not key:
        return None
    found = session.scalar(select(HealthAdvisory).where(HealthAdvisory.submission_key == key))
    return found if found is not None and found.prison_id == prison.id else None


def preview(
    session: Session, prison: Prison, draft: AdvisoryDraft, *, now: datetime, actor: str
) -> Preview:
    """What :func:`issue` would do now (nothing is stored). Raises :class:`Rejected`."""
    advisory = _drafted(session, prison, draft, now, actor)
    return Preview(advisory, _by_visit(touched(session, advisory, now)), now)


def preview_change(
    session: Session, advisory_id: int, prison: Prison, measures: Measures, *, now: datetime
) -> Preview:
    """What :func:`reissue` with these measures would do now (nothing is stored)."""
    advisory = _advisory(session, advisory_id, prison)
    reject_if(_change_problems(session, prison, advisory, measures, now))
    changed = HealthAdvisory(
        **{c: getattr(advisory, c) for c in _COPIED}, **_measure_columns(measures)
    )
    reopened = _reopened(session, advisory) if _reopens(advisory, measures) else []
    return Preview(changed, _by_visit(touched(session, changed, now)), now, reopened)


def _by_visit(bookings: list[Booking]) -> list[Booking]:
    """As health staff read them in a preview: by visit day and time, then by inmate (the
    booking itself last, so the order never changes between two looks)."""
    return sorted(
        bookings,
        key=lambda b: (
            b.slot.starts_at, b.inmate.last_name_1, b.inmate.first_names, b.inmate.code, b.id,
        ),
    )  # fmt: skip


def preview_lift(session: Session, advisory_id: int, prison: Prison, *, now: datetime) -> Preview:
    """What :func:`lift` would do now: the families it would tell they can book again, and
    those it would tell what applies without it (nothing is stored). Raises
    :class:`Rejected`."""
    advisory = _advisory(session, advisory_id, prison)
    without = _measures_now(session, advisory, touched(session, advisory, now), now, advisory.id)
    news = [(b, m) for b, m in without if sms.health_news(session, b, m)]
    return Preview(advisory, [], now, _reopened(session, advisory), news)


def _advisory(session: Session, advisory_id: int, prison: Prison) -> HealthAdvisory:
    advisory = session.get(HealthAdvisory, advisory_id)
    if advisory is None or advisory.prison_id != prison.id:
        raise Rejected([Problem(Code.NOT_FOUND)])
    if advisory.lifted_at is not None:
        raise Rejected([Problem(Code.ALREADY_LIFTED)])
    return advisory


def _change_problems(
    session: Session, prison: Prison, advisory: HealthAdvisory, measures: Measures, now: datetime
) -> list[Problem]:
    """What is wrong with changing the advisory to these measures, for the visits it still
    covers (from its first day, or today once it has started)."""
    first_day = max(advisory.starts_on, prison.local_date(now))
    return measure_problems(session, prison, measures, first_day)


_COPIED = ("id", "prison_id", "scope", "wing_id", "inmate_id", "kind", "starts_on", "version")


def _measure_columns(m: Measures) -> dict[str, object]:
    return {
        "inform": m.inform, "masks": m.masks, "no_high_risk": m.no_high_risk,
        "non_contact": m.non_contact, "visit_minutes": m.visit_minutes, "suspended": m.suspended,
    }  # fmt: skip


def _drafted(
    session: Session, prison: Prison, draft: AdvisoryDraft, now: datetime, actor: str
) -> HealthAdvisory:
    """The advisory the draft asks for, checked (not stored). Raises :class:`Rejected`."""
    problems, wing, inmate = _target(session, prison, draft, prison.local_date(now))
    reject_if(problems)
    return HealthAdvisory(
        prison_id=prison.id,
        scope=draft.scope,
        wing_id=wing.id if wing else (inmate.wing_id if inmate else None),
        inmate_id=inmate.id if inmate else None,
        kind=draft.kind,
        infectious_since=draft.infectious_since,
        smear_negative_no_cavity=draft.smear_negative_no_cavity,
        **_measure_columns(draft.measures),
        notes=draft.notes.strip(),
        starts_on=draft.starts_on,
        submission_key=draft.submission_key or None,
        created_by=actor, created_at=now, updated_at=now, version=1,
    )  # fmt: skip


def reissue(
    session: Session,
    advisory_id: int,
    prison: Prison,
    measures: Measures,
    *,
    now: datetime,
    actor: str,
    origin: str,
    sms_policy: SmsPolicy,
) -> Effect:
    """Issue an advisory again, with these measures: the bookings it covers are re-evaluated
    (new ones since, a suspension added); a family already told of these measures for this
    advisory is not told again."""
    require_write_lock(session)
    _lock_suspensions(session, prison, advisory_id)
    advisory = _locked_advisory(session, advisory_id, prison)
    if advisory.lifted_at is not None:
        raise Rejected([Problem(Code.ALREADY_LIFTED)])
    reject_if(_change_problems(session, prison, advisory, measures, now))
    _lock_scope(session, advisory)
    reopens = _reopens(advisory, measures)
    if measures != advisory.measures:
        for column, value in _measure_columns(measures).items():
            setattr(advisory, column, value)
        advisory.version += 1
    advisory.updated_at = now
    session.flush()
    effect = _take_effect(
        session, advisory, now=now, actor=actor, origin=origin, sms_policy=sms_policy
    )
    if reopens:
        effect.reopened = _tell_reopened(session, advisory, now, sms_policy)
    _audit(session, advisory, "advisory.reissued", now, actor, origin, effect)
    return effect


def lift(
    session: Session,
    advisory_id: int,
    prison: Prison,
    *,
    now: datetime,
    actor: str,
    origin: str,
    sms_policy: SmsPolicy,
    key: str = "",
) -> Effect:
    """Lift an advisory (only a health user does, never a timer): visits it paused can be
    booked again; bookings it cancelled stay cancelled, and their families are told they can
    book again (once per phone). The preview's ``key`` sent again (a double click) does
    nothing more: the effect comes back ``replayed``, with as many families as the first told
    (see :func:`visits.audit.done_with`)."""
    require_write_lock(session)
    _lock_suspensions(session, prison, advisory_id)
    advisory = _locked_advisory(session, advisory_id, prison)
    key = audit.submission_key(key)
    if done := audit.done_with(session, "advisory", advisory.id, ("advisory.lifted",), key):
        return Effect(advisory, replayed=True, before=done.details)
    if advisory.lifted_at is not None:
        raise Rejected([Problem(Code.ALREADY_LIFTED)])
    _lock_scope(session, advisory)
    advisory.lifted_at, advisory.lifted_by, advisory.updated_at = now, actor, now
    session.flush()
    effect = Effect(advisory, reopened=_tell_reopened(session, advisory, now, sms_policy))
    # The families told of its measures learn what applies now: the other advisories'
    # measures, or none ("no longer applies"); their last text must not ask for what is gone.
    bookings = touched(session, advisory, now)
    lock_for_cancelling(session, bookings)
    texted = _tell_measures(session, advisory, bookings, now, sms_policy)[1]
    effect.told = [b for b, _ in texted]
    effect.no_longer = [b for b, measures in texted if not measures.any]
    _audit(session, advisory, "advisory.lifted", now, actor, origin, effect, key)
    return effect


def apply_to_moved(
    session: Session,
    prison: Prison,
    inmate_ids: Sequence[int],
    *,
    now: datetime,
    actor: str,
    origin: str,
    sms_policy: SmsPolicy,
) -> list[Effect]:
    """Inmates the roster moved to another wing (locked by the caller, who changed them):
    every advisory in force over their new wing applies to their bookings still to come, as
    if it had just been issued (suspended visits cancelled, families told the measures)."""
    require_write_lock(session)
    effects = []
    for advisory in _over_new_wings(session, prison, inmate_ids):
        effect = _take_effect(
            session, advisory, now=now, actor=actor, origin=origin, sms_policy=sms_policy,
            inmate_ids=list(inmate_ids),
        )  # fmt: skip
        if effect.cancelled or effect.told or effect.at_gate:
            _audit(session, advisory, "advisory.applied_to_moved", now, actor, origin, effect)
        effects.append(effect)
    return effects


def _over_new_wings(
    session: Session, prison: Prison, inmate_ids: Sequence[int]
) -> list[HealthAdvisory]:
    """The advisories in force over the wings these inmates are in now, in id order."""
    if not inmate_ids:
        return []
    wings = set(session.scalars(select(Inmate.wing_id).where(Inmate.id.in_(inmate_ids))))
    return list(
        session.scalars(
            select(HealthAdvisory)
            .where(
                HealthAdvisory.prison_id == prison.id,
                HealthAdvisory.lifted_at.is_(None),
                HealthAdvisory.scope == Scope.WING,
                HealthAdvisory.wing_id.in_(wings - {None}),
            )
            .order_by(HealthAdvisory.id)
        )
    )


def touched_by_moves(
    session: Session, prison: Prison, inmate_ids: Sequence[int], now: datetime
) -> set[Booking]:
    """Every booking :func:`apply_to_moved` may cancel or tell about, for a caller that locks
    them with its own before changing any (taking booking locks after slot locks would break
    the writers' order)."""
    return {
        booking
        for advisory in _over_new_wings(session, prison, inmate_ids)
        for booking in touched(session, advisory, now, inmate_ids)
    }


def _lock_suspensions(session: Session, prison: Prison, advisory_id: int) -> None:
    """Lock the prison's suspending advisories (and this one), in id order, before this one
    is changed: two lifts at once take turns, and the second sees the first lifted."""
    ids = session.scalars(
        select(HealthAdvisory.id).where(
            HealthAdvisory.prison_id == prison.id,
            HealthAdvisory.lifted_at.is_(None),
            HealthAdvisory.suspended | (HealthAdvisory.id == advisory_id),
        )
    ).all()
    lock_rows(session, HealthAdvisory.id, ids)


def _reopens(advisory: HealthAdvisory, measures: Measures) -> bool:
    """Whether changing the advisory to these measures lets paused visits be booked again."""
    return advisory.suspended and not measures.suspended


def _tell_reopened(
    session: Session, advisory: HealthAdvisory, now: datetime, sms_policy: SmsPolicy
) -> list[Booking]:
    """Tell the families of :func:`_reopened` they can book again. Called when an advisory
    is lifted or stops suspending visits."""
    latest = _reopened(session, advisory)
    for booking in latest:
        key = f"advisory:{advisory.id}:v{advisory.version}:reopened:{booking.contact_phone}"
        sms.queue_health_reopened(session, booking, sms_policy, now, key)
    return latest


def _reopened(session: Session, advisory: HealthAdvisory) -> list[Booking]:
    """Families whose visits any suspension of the prison cancelled, and whose inmate no
    suspension other than this advisory covers, can book again once it pauses no visit: one
    booking per phone (its latest, whose language the message takes), unless it was told so
    since its last such cancellation. The previews count what lifting and changing send."""
    advisories = session.scalars(
        select(HealthAdvisory.id).where(HealthAdvisory.prison_id == advisory.prison_id)
    ).all()
    events = session.scalars(
        select(AuditEvent).where(
            AuditEvent.entity == "advisory",
            AuditEvent.entity_id.in_([str(i) for i in advisories]),
        )
    )
    references = {ref for event in events for ref in event.details.get("cancelled", [])}
    if not references:
        return []
    cancelled = list(
        session.scalars(
            select(Booking).where(Booking.reference.in_(references)).order_by(Booking.id)
        )
    )
    # Only where no other advisory still pauses visits to that inmate (on any day).
    still = [
        other.rule()
        for other in session.scalars(
            select(HealthAdvisory).where(
                HealthAdvisory.prison_id == advisory.prison_id,
                HealthAdvisory.lifted_at.is_(None),
                HealthAdvisory.suspended,
                HealthAdvisory.id != advisory.id,
            )
        )
    ]
    latest: dict[str, Booking] = {}
    since: dict[str, datetime] = {}
    for booking in cancelled:
        if any(
            a.covers(booking.prison_id, booking.inmate.wing_id, booking.inmate_id) for a in still
        ):
            continue
        latest[booking.contact_phone] = booking
        when = booking.cancelled_at or booking.updated_at
        since[booking.contact_phone] = max(when, since.get(booking.contact_phone, when))
    told = session.execute(
        select(OutboxMessage.recipient, func.max(OutboxMessage.created_at))
        .where(OutboxMessage.kind == "health_reopened", OutboxMessage.recipient.in_(list(latest)))
        .group_by(OutboxMessage.recipient)
    )
    for phone, at in told:
        if at is not None and at > since[phone]:
            del latest[phone]  # told already, and nothing cancelled since
    return list(latest.values())


def _audit(session, advisory, action, now, actor, origin, effect: Effect, key="") -> None:
    audit.record(
        session,
        at=now,
        actor=actor,
        action=action,
        entity="advisory",
        entity_id=advisory.id,
        details={
            "scope": advisory.scope.value,
            "kind": advisory.kind.value,
            "version": advisory.version,
            "measures": {k: v for k, v in vars(advisory.measures).items() if v},
            "cancelled": [b.reference for b in effect.cancelled],
            "told": len(effect.told),
        }
        | ({"reopened": len(effect.reopened)} if effect.reopened else {})
        | ({"no_longer": len(effect.no_longer)} if effect.no_longer else {})
        | ({"at_gate": [b.reference for b in effect.at_gate]} if effect.at_gate else {})
        | ({"key": key} if key else {}),
        origin=origin,
    )
    session.flush()
