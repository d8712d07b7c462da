"""The calendar file (.ics) a family can add to its phone's calendar.

It names nobody, as the SMS do not: a phone shows an event's title on its lock screen and in
reminders, calendars are synced and shared, and that a relative is in prison is the family's
to tell. The prison is the event's place, as in the SMS.

A booking still waiting for its SMS code gets none: its hold may run out, and a calendar would
keep an event for a visit that does not exist. A cancelled one gets its event's cancellation
(a family that added the visit sees it withdrawn)."""

from __future__ import annotations

from datetime import timedelta

from icalendar import Alarm, Calendar, Event

from visits.booking import Booking, BookingStatus
from visits.i18n import gettext
from visits.problems import Code, Problem, Rejected
from visits.reference import display


def visit_calendar(booking: Booking, manage_url: str) -> bytes:
    """The booking's event, or :class:`Rejected` while it waits for its code."""
    if booking.status is BookingStatus.HELD:
        raise Rejected([Problem(Code.BOOKING_HELD)])
    prison = booking.prison
    calendar = Calendar()
    calendar.add("prodid", "-//Visitas familiares//visits//ES")
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if booking.status is BookingStatus.CANCELLED else "PUBLISH")
    event = Event()
    event.add("uid", f"{booking.reference}@visits")
    event.add("dtstamp", booking.updated_at)
    event.add("sequence", int(booking.updated_at.timestamp()))
    event.add("dtstart", booking.slot.starts_at)
    event.add("dtend", booking.slot.ends_at)
    event.add("summary", gettext("Family visit"))
    event.add("location", ", ".join(part for part in (prison.name, prison.address) if part))
    event.add(
        "description",
        gettext(
            "Booking %(reference)s. Every visitor must bring their identity document.\n"
            "Change or cancel: %(url)s",
            {"reference": display(booking.reference), "url": manage_url},
        ),
    )
    if booking.status is BookingStatus.CANCELLED:
        event.add("status", "CANCELLED")
    else:
        event.add("status", "CONFIRMED")
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", gettext("Visit tomorrow"))
        alarm.add("trigger", timedelta(days=-1))
        event.add_component(alarm)
    calendar.add_component(event)
    return calendar.to_ical()
