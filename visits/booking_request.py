"""What a family submits to book, and turning it into checked values or a list of problems.

The pages and the API both hand in raw strings; every field error is collected (with the
field's name, e.g. ``visitors.1.doc_number``) so the family can correct them all at once.
What could be read of each visitor is kept too (:class:`VisitorDraft`), so that the party
rules are reported with the field errors rather than after them (see :func:`read_booking`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from enum import StrEnum
from typing import TypeVar

import phonenumbers

from visits.i18n import current_locale, supported_locale
from visits.problems import Code, Problem, reject_if
from visits.rules import PartyMember, Sex
from visits.screening import QUESTIONS, Answers, parse_answers
from visits.visitor import DocumentType, Identity, normalise_document

E = TypeVar("E", bound=StrEnum)

MAX_NAME_LENGTH = 60
MAX_DOCUMENT_LENGTH = 20
MAX_PHONE_LENGTH = 30
MAX_DATE_LENGTH = 10
OLDEST_AGE = 120
# More visitor entries than this are never read, whatever a prison allows.
MAX_VISITOR_ENTRIES = 10
# The largest id a row can have: PostgreSQL's ``integer`` (SQLite's is larger). An id beyond it
# names no row, and asking the database for it would be an error, not an answer.
MAX_ID = 2**31 - 1

# Letters (any script, with accents) in words joined by single spaces, hyphens, apostrophes
# or dots: "María de los Ángeles", "O'Brien", "Quispe-Mamani", "Ma. Elena".
_NAME = re.compile(r"[^\W\d_]+(?:(?:[ '’\-]|\. ?)[^\W\d_]+)*\.?")
_MOBILE_TYPES = (
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
)
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%d %m %Y")
# Day, month and year run together ("25071985"): what a phone's number pad, which has no "/",
# lets a family type into a date field. Read only with a year of 19xx or 20xx, which no
# year-first "19851225" can have in that place (its month would be 19 or 20).
_RUN_TOGETHER = re.compile(r"([0-9]{2})([0-9]{2})((?:19|20)[0-9]{2})")
# The countries whose mobiles a booking's SMS go to unless configured otherwise
# (``VISITS_SMS_COUNTRIES``, see :func:`parse_phone`).
PHONE_COUNTRIES = ("PE",)


class Relationship(StrEnum):
    """Who the visitor is to the person visited."""

    PARTNER = "partner"
    PARENT = "parent"
    CHILD = "child"
    SIBLING = "sibling"
    GRANDPARENT = "grandparent"
    GRANDCHILD = "grandchild"
    OTHER_RELATIVE = "other_relative"
    FRIEND = "friend"


@dataclass
class VisitorInput:
    first_names: str = ""
    last_names: str = ""
    doc_type: str = ""
    doc_number: str = ""
    birth_date: str = ""
    relationship: str = ""
    sex: str = ""
    # The health questions (see visits.screening): a ticked box is "1".
    cough: str = ""
    phlegm: str = ""
    fever: str = ""
    night_sweats: str = ""
    weight_loss: str = ""
    lives_with_tb: str = ""
    high_risk: str = ""

    def is_blank(self) -> bool:
        """No one entered here (the health boxes alone do not make a visitor)."""
        return not any(
            str(getattr(self, f.name)).strip() for f in fields(self) if f.name not in QUESTIONS
        )


@dataclass
class BookingRequest:
    slot_id: str = ""
    visitors: list[VisitorInput] = field(default_factory=list)
    contact_phone: str = ""
    language: str = ""


@dataclass(frozen=True)
class VisitorDetails:
    index: int  # position in the submitted list, for field names
    identity: Identity
    relationship: Relationship
    answers: Answers = field(default_factory=Answers)

    def member(self) -> PartyMember:
        return PartyMember(self.index, self.identity.birth_date, self.identity.sex)


@dataclass(frozen=True)
class VisitorDraft:
    """One visitor entry as far as it could be read: each field's checked value, or ``None``
    where that field has a problem (reported under the field's name). A rule about visitors
    looks only at the fields it needs, and leaves out a visitor whose needed fields are not
    valid yet (see :func:`visits.rules.party_problems`)."""

    index: int  # position in the submitted list, for field names
    first_names: str | None = None
    last_names: str | None = None
    doc_type: DocumentType | None = None
    doc_number: str | None = None
    birth_date: date | None = None
    relationship: Relationship | None = None
    sex: Sex | None = None  # None: not given (a day open to all), or not valid (sex_valid)
    sex_valid: bool = True
    answers: Answers | None = None  # None: an answer is not yes or no

    @property
    def key(self) -> tuple[DocumentType, str] | None:
        """The document that makes this visitor one person, once type and number are valid."""
        if self.doc_type is None or self.doc_number is None:
            return None
        return (self.doc_type, self.doc_number)

    @property
    def full_name(self) -> str | None:
        """The name a refusal about this visitor says, once both names are valid."""
        if self.first_names is None or self.last_names is None:
            return None
        return f"{self.first_names} {self.last_names}"

    def member(self) -> PartyMember:
        return PartyMember(self.index, self.birth_date, self.sex, self.sex_valid)

    def details(self) -> VisitorDetails | None:
        """The whole visitor, when every field is valid."""
        if (
            self.first_names is None
            or self.last_names is None
            or self.doc_type is None
            or self.doc_number is None
            or self.birth_date is None
            or self.relationship is None
            or not self.sex_valid
            or self.answers is None
        ):
            return None
        return VisitorDetails(
            index=self.index,
            identity=Identity(
                doc_type=self.doc_type,
                doc_number=self.doc_number,
                first_names=self.first_names,
                last_names=self.last_names,
                birth_date=self.birth_date,
                sex=self.sex,
            ),
            relationship=self.relationship,
            answers=self.answers,
        )


@dataclass(frozen=True)
class BookingReading:
    """A request as far as it could be read: every field problem, and each visitor entry
    that is not blank as a draft (complete or not)."""

    problems: tuple[Problem, ...]
    visitors: tuple[VisitorDraft, ...]
    slot_id: int | None
    contact_phone: str | None
    language: str

    def valid(self) -> ValidBooking:
        """The request checked, once no field has a problem."""
        visitors = tuple(draft.details() for draft in self.visitors)
        if self.problems or self.slot_id is None or self.contact_phone is None:
            raise ValueError("a request with field problems is not valid")
        return ValidBooking(self.slot_id, visitors, self.contact_phone, self.language)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ValidBooking:
    slot_id: int
    visitors: tuple[VisitorDetails, ...]
    contact_phone: str  # E.164
    language: str


def parse_slot_id(raw: str | int) -> int | None:
    """The id a family or a program sent (plain ASCII digits, or a JSON number), if a row
    could have it; else ``None``, which callers answer as an unknown slot."""
    if isinstance(raw, bool):  # JSON true is no id (Python would read it as 1)
        return None
    if isinstance(raw, int):
        number = raw
    else:
        text = raw.strip()
        if not re.fullmatch(r"[0-9]{1,12}", text):
            return None
        number = int(text)
    return number if 1 <= number <= MAX_ID else None


def parse_date(raw: str) -> date | None:
    """A date as people type it (day/month/year, with ``/``, ``-``, ``.`` or spaces, as the DNI
    prints it, or with none, as a phone's number pad allows) or as a date input sends it
    (``YYYY-MM-DD``); else ``None`` (see :func:`date_problem` for why)."""
    text = unicodedata.normalize("NFKC", raw).strip()
    if len(text) > MAX_DATE_LENGTH:
        return None
    if run_together := _RUN_TOGETHER.fullmatch(text):
        text = "/".join(run_together.groups())
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()  # noqa: DTZ007 - a calendar date only
        except ValueError:
            continue
    return None


# Written the way :data:`_DATE_FORMATS` are, whether or not the day exists.
_DATE_SHAPE = re.compile(
    r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}|[0-9]{1,2}([/. -])[0-9]{1,2}\1[0-9]{4}|"
    + _RUN_TOGETHER.pattern
)


def date_problem(raw: str, field: str | None = None) -> Problem:
    """Why ``raw`` is no date (:func:`parse_date` read none): written as one, but no day of
    the calendar (31/02/2026: asking for day/month/year again would contradict what was
    typed), or not written as a date at all."""
    text = unicodedata.normalize("NFKC", raw).strip()
    if len(text) <= MAX_DATE_LENGTH and _DATE_SHAPE.fullmatch(text):
        return Problem(Code.INVALID_DATE, field, {"no_such_day": True})
    return Problem(Code.INVALID_DATE, field)


def parse_phone(raw: str, countries: Collection[str] | None = None) -> str | Problem:
    """A mobile number in E.164 (Peru is assumed when no country code is given).

    ``countries``: the ISO 3166 codes of the countries whose mobiles may be a booking's
    contact phone (``VISITS_SMS_COUNTRIES``, Peru by default); ``None`` takes any country,
    for finding what was already stored. Decision: a booking's SMS (the code first, before
    anyone proved the phone is theirs) go only to mobiles of the countries the service
    serves. Anyone who knows an inmate's code and surname can book, so an open list would
    let them make the service text numbers abroad at international rates, or premium numbers
    whose operators share the fee ("SMS pumping", a known fraud). A family living abroad
    gives the mobile of a relative or friend in Peru; a deployment serving families across a
    border lists that country too."""
    text = raw.strip()
    if not text:
        return Problem(Code.REQUIRED)
    if len(text) > MAX_PHONE_LENGTH:
        return Problem(Code.TOO_LONG, params={"max": MAX_PHONE_LENGTH})
    try:
        number = phonenumbers.parse(text, "PE")
    except phonenumbers.NumberParseException:
        return Problem(Code.INVALID_PHONE)
    if not phonenumbers.is_valid_number(number):
        return Problem(Code.INVALID_PHONE)
    # Before the line type: "a mobile from Peru" is what a foreign landline needs to hear too.
    if countries is not None and phonenumbers.region_code_for_number(number) not in countries:
        return Problem(Code.PHONE_COUNTRY_NOT_ALLOWED, params={"countries": tuple(countries)})
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        return Problem(Code.PHONE_NOT_MOBILE)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def display_phone(e164: str) -> str:
    """A stored number as its family reads it back: a Peruvian one as dialled at home
    ("987 654 321"); another country's with its code, in that country's grouping
    ("+591 71234567"), so that a number read as the wrong country shows it. Anything
    :func:`parse_phone` did not give, as it is."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    style = phonenumbers.PhoneNumberFormat
    home = phonenumbers.region_code_for_number(number) == "PE"
    return phonenumbers.format_number(number, style.NATIONAL if home else style.INTERNATIONAL)


def clean_name(raw: str) -> str | Problem:
    text = " ".join(unicodedata.normalize("NFC", raw).split())
    if not text:
        return Problem(Code.REQUIRED)
    if len(text) > MAX_NAME_LENGTH:
        return Problem(Code.TOO_LONG, params={"max": MAX_NAME_LENGTH})
    if not _NAME.fullmatch(text):
        return Problem(Code.INVALID_NAME)
    return text


def _choice(enum: type[E], raw: str) -> E | Problem:
    text = raw.strip()
    if not text:
        return Problem(Code.REQUIRED)
    try:
        return enum(text)
    except ValueError:
        return Problem(Code.INVALID_CHOICE)


def _birth_date(raw: str, today: date) -> date | Problem:
    if not raw.strip():
        return Problem(Code.REQUIRED)
    born = parse_date(raw)
    if born is None:
        return date_problem(raw)
    if born > today:
        return Problem(Code.BIRTH_DATE_IN_FUTURE)
    if today.year - born.year > OLDEST_AGE:
        return Problem(Code.BIRTH_DATE_IMPLAUSIBLE)
    return born


def _visitor(
    index: int, raw: VisitorInput, today: date, sex_required: bool
) -> tuple[VisitorDraft, list[Problem]]:
    problems: list[Problem] = []
    values: dict[str, object] = {}

    def take(name: str, result: object) -> None:
        if isinstance(result, Problem):
            problems.append(Problem(result.code, f"visitors.{index}.{name}", result.params))
        else:
            values[name] = result

    take("first_names", clean_name(raw.first_names))
    take("last_names", clean_name(raw.last_names))
    take("doc_type", _choice(DocumentType, raw.doc_type))
    if len(raw.doc_number) > MAX_DOCUMENT_LENGTH:
        take("doc_number", Problem(Code.TOO_LONG, params={"max": MAX_DOCUMENT_LENGTH}))
    elif not raw.doc_number.strip():
        take("doc_number", Problem(Code.REQUIRED))
    elif "doc_type" in values:
        take("doc_number", normalise_document(values["doc_type"], raw.doc_number))  # type: ignore[arg-type]
    take("birth_date", _birth_date(raw.birth_date, today))
    take("relationship", _choice(Relationship, raw.relationship))
    sex_valid = True
    if raw.sex.strip() or sex_required:
        take("sex", _choice(Sex, raw.sex))
        sex_valid = "sex" in values
    answers = parse_answers({q: getattr(raw, q) for q in QUESTIONS}, f"visitors.{index}.")
    if isinstance(answers, list):
        problems += answers
    draft = VisitorDraft(
        index=index,
        first_names=values.get("first_names"),  # type: ignore[arg-type]
        last_names=values.get("last_names"),  # type: ignore[arg-type]
        doc_type=values.get("doc_type"),  # type: ignore[arg-type]
        doc_number=values.get("doc_number"),  # type: ignore[arg-type]
        birth_date=values.get("birth_date"),  # type: ignore[arg-type]
        relationship=values.get("relationship"),  # type: ignore[arg-type]
        sex=values.get("sex"),  # type: ignore[arg-type]
        sex_valid=sex_valid,
        answers=None if isinstance(answers, list) else answers,
    )
    return draft, problems


def read_booking(
    request: BookingRequest,
    *,
    today: date,
    sex_required: bool,
    phone_countries: Collection[str] = PHONE_COUNTRIES,
) -> BookingReading:
    """Check every field and keep what could be read, problems or not. The contact phone must
    be a mobile of one of ``phone_countries`` (see :func:`parse_phone`).

    Entries left completely blank are skipped (the page offers optional extra visitors), but
    keep their position so that field names still point at the right part of the form. Two
    entries with the same valid document are one person twice, whatever else is wrong with
    them: the later one is refused as a duplicate with the other problems.
    """
    problems: list[Problem] = []
    slot_id = parse_slot_id(request.slot_id)
    if slot_id is None:
        problems.append(Problem(Code.SLOT_NOT_FOUND, "slot_id"))

    entries = [
        (i, v) for i, v in enumerate(request.visitors[:MAX_VISITOR_ENTRIES]) if not v.is_blank()
    ]
    if not entries:
        problems.append(Problem(Code.NO_VISITORS, "visitors"))
    drafts: list[VisitorDraft] = []
    for index, raw in entries:
        draft, found = _visitor(index, raw, today, sex_required)
        drafts.append(draft)
        problems.extend(found)

    seen: set[tuple[DocumentType, str]] = set()
    for draft in drafts:
        if draft.key is None:
            continue
        if draft.key in seen:
            field_name = f"visitors.{draft.index}.doc_number"
            problems.append(Problem(Code.DUPLICATE_VISITOR, field_name))
        seen.add(draft.key)

    phone = parse_phone(request.contact_phone, phone_countries)
    if isinstance(phone, Problem):
        problems.append(Problem(phone.code, "contact_phone", phone.params))
    # A language tag, read as such ("en-US" is English); none, or one not offered, is the
    # language the request came in (the page's, or the API caller's Accept-Language).
    language = supported_locale(request.language) or current_locale()
    return BookingReading(
        problems=tuple(problems),
        visitors=tuple(drafts),
        slot_id=slot_id,
        contact_phone=phone if isinstance(phone, str) else None,
        language=language,
    )


def parse_booking(
    request: BookingRequest,
    *,
    today: date,
    sex_required: bool,
    phone_countries: Collection[str] = PHONE_COUNTRIES,
) -> ValidBooking:
    """Check every field; raise :class:`~visits.problems.Rejected` with every field problem (see
    :func:`read_booking`)."""
    read = read_booking(
        request, today=today, sex_required=sex_required, phone_countries=phone_countries
    )
    reject_if(list(read.problems))
    return read.valid()
