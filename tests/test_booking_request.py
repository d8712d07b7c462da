"""Field checks of a booking request: what families type, and what they get told."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import visitor
from visits.booking_request import (
    BookingRequest,
    VisitorInput,
    clean_name,
    parse_booking,
    parse_date,
    parse_phone,
    read_booking,
)
from visits.problems import Code, Problem, Rejected
from visits.visitor import DocumentType, normalise_document

TODAY = date(2026, 12, 1)


@pytest.mark.parametrize(
    "name",
    ["María de los Ángeles", "O'Brien", "Quispe-Mamani", "Ma. Elena", "Ñahui", "José  Luis"],
)
def test_real_names_are_accepted(name):
    assert clean_name(name) == " ".join(name.split())


@pytest.mark.parametrize(
    "name", ["<b>Ana</b>", "Ana1", "Robert'); DROP TABLE visitor;--", "--", "Ana\x00"]
)
def test_markup_digits_and_symbols_are_not_names(name):
    assert clean_name(name) == Problem(Code.INVALID_NAME)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("987654321", "+51987654321"),
        ("987 654 321", "+51987654321"),
        ("+51 987-654-321", "+51987654321"),
        ("0051987654321", "+51987654321"),
        ("+34 612 345 678", "+34612345678"),
    ],
)
def test_mobile_numbers_are_stored_in_e164(typed, stored):
    assert parse_phone(typed) == stored


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("", Code.REQUIRED),
        ("12", Code.INVALID_PHONE),
        ("abc", Code.INVALID_PHONE),
        ("(01) 427 2020", Code.PHONE_NOT_MOBILE),  # a Lima landline cannot get SMS
        ("9" * 31, Code.TOO_LONG),
    ],
)
def test_bad_phone_numbers(typed, code):
    assert parse_phone(typed).code is code


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("1985-07-25", date(1985, 7, 25)),
        ("25/07/1985", date(1985, 7, 25)),
        ("5/7/1985", date(1985, 7, 5)),
        ("25-07-1985", date(1985, 7, 25)),
        ("31/02/1985", None),
        ("25/07/85", None),
        ("yesterday", None),
        ("2" * 11, None),
        ("２５/07/1985", date(1985, 7, 25)),
    ],
)
def test_dates_as_families_write_them(typed, expected):
    assert parse_date(typed) == expected


@pytest.mark.parametrize(
    ("kind", "typed", "result"),
    [
        (DocumentType.DNI, "45.678.912", "45678912"),
        (DocumentType.DNI, "4567891", Problem(Code.INVALID_DNI)),
        (DocumentType.DNI, "4567891A", Problem(Code.INVALID_DNI)),
        (DocumentType.DNI, "４５６７８９１２", "45678912"),  # a full-width phone keyboard
        (DocumentType.DNI, "٤٥٦٧٨٩١٢", Problem(Code.INVALID_DNI)),  # other scripts' digits
        (DocumentType.DNI, "00000000", Problem(Code.INVALID_DNI)),  # the placeholder, no one's
        (DocumentType.DNI, "0000-0000", Problem(Code.INVALID_DNI)),
        (DocumentType.DNI, "00000001", "00000001"),
        (DocumentType.DNI, "11111111", "11111111"),  # may have been issued: not refused
        (DocumentType.CE, "00000000", "00000000"),  # only the DNI's number zero is refused
        (DocumentType.CE, "001234567", "001234567"),
        (DocumentType.PASSPORT, "ab 123456", "AB123456"),
        (
            DocumentType.PASSPORT,
            "12-34",
            Problem(Code.INVALID_DOCUMENT_NUMBER, params={"min": 6, "max": 12}),
        ),
    ],
)
def test_document_numbers(kind, typed, result):
    assert normalise_document(kind, typed) == result


@given(st.text(alphabet="0123456789", min_size=8, max_size=8).filter(lambda n: n != "00000000"))
def test_every_eight_digit_dni_but_zero_is_valid(number):
    assert normalise_document(DocumentType.DNI, number) == number


def test_blank_extra_visitors_are_skipped_but_keep_their_position():
    request = BookingRequest(
        slot_id="7",
        visitors=[visitor(), VisitorInput(), visitor("40000001", birth_date="31/02/2000")],
        contact_phone="987654321",
    )
    with pytest.raises(Rejected) as caught:
        parse_booking(request, today=TODAY, sex_required=False)
    assert [(p.code, p.field) for p in caught.value.problems] == [
        (Code.INVALID_DATE, "visitors.2.birth_date")
    ]


def test_dni_zero_is_refused_beside_its_field():
    """Typed for "no document", 00000000 would be one visitor shared by every such booking:
    its bans, its one visit a day and its exposure tracing would fall on strangers."""
    request = BookingRequest("7", [visitor("0000 0000")], "987654321")
    with pytest.raises(Rejected) as caught:
        parse_booking(request, today=TODAY, sex_required=False)
    assert [(p.code, p.field) for p in caught.value.problems] == [
        (Code.INVALID_DNI, "visitors.0.doc_number")
    ]


def test_a_duplicate_document_is_said_with_the_other_field_problems():
    twice = visitor(first_names="Otra", relationship="")
    unreadable = visitor("4567891", first_names="Eva")  # not a DNI: no person to compare
    request = BookingRequest("7", [visitor(), twice, unreadable, visitor("4567891")], "")
    read = read_booking(request, today=TODAY, sex_required=False)
    assert {(p.code, p.field) for p in read.problems} == {
        (Code.REQUIRED, "visitors.1.relationship"),
        (Code.DUPLICATE_VISITOR, "visitors.1.doc_number"),
        (Code.INVALID_DNI, "visitors.2.doc_number"),
        (Code.INVALID_DNI, "visitors.3.doc_number"),
        (Code.REQUIRED, "contact_phone"),
    }
    with pytest.raises(Rejected) as caught:
        parse_booking(request, today=TODAY, sex_required=False)
    assert caught.value.problems == read.problems


def test_what_could_be_read_of_each_visitor_is_kept():
    wrong = visitor("40000001", first_names="M4ria", birth_date="31/02/1990", sex="X")
    read = read_booking(BookingRequest("7", [VisitorInput(), wrong], "987654321"), today=TODAY,
                        sex_required=True)  # fmt: skip
    (draft,) = read.visitors
    assert (draft.index, draft.first_names, draft.last_names) == (1, None, "Quispe Huamán")
    assert (draft.key, draft.full_name, draft.birth_date) == ((DocumentType.DNI, "40000001"),
                                                             None, None)  # fmt: skip
    assert (draft.sex, draft.sex_valid, draft.details()) == (None, False, None)
    assert read.contact_phone == "+51987654321"


@pytest.mark.parametrize(
    ("given", "asking", "kept"),
    [
        ("en-US", "es", "en"),
        ("EN", "es", "en"),
        ("en_GB", "es", "en"),
        (" en-PE ", "es", "en"),
        ("fr", "en", "en"),  # not offered: the language of the request, as with none
        ("", "en", "en"),
    ],
)
def test_the_language_is_read_as_a_language_tag(given, asking, kept):
    from visits.i18n import use_locale

    request = BookingRequest("7", [visitor()], "987654321", language=given)
    with use_locale(asking):
        assert parse_booking(request, today=TODAY, sex_required=False).language == kept


def test_a_valid_request_is_normalised():
    request = BookingRequest(
        slot_id=" 7 ",
        visitors=[visitor(first_names="  Ana   María ", dni="45 678 912")],
        contact_phone="987 654 321",
        language="en",
    )
    valid = parse_booking(request, today=TODAY, sex_required=True)
    assert valid.slot_id == 7
    assert valid.contact_phone == "+51987654321"
    assert valid.language == "en"
    only = valid.visitors[0].identity
    assert (only.first_names, only.doc_number, only.birth_date) == (
        "Ana María",
        "45678912",
        date(1985, 7, 25),
    )


def test_birth_dates_must_be_plausible():
    future = visitor(birth_date="2030-01-01")
    ancient = visitor("40000002", birth_date="1800-01-01")
    with pytest.raises(Rejected) as caught:
        parse_booking(
            BookingRequest("1", [future, ancient], "987654321"), today=TODAY, sex_required=False
        )
    assert {p.code for p in caught.value.problems} == {
        Code.BIRTH_DATE_IN_FUTURE,
        Code.BIRTH_DATE_IMPLAUSIBLE,
    }


def test_sex_is_asked_only_where_the_day_needs_it():
    no_sex = visitor(sex="")
    assert parse_booking(BookingRequest("1", [no_sex], "987654321"), today=TODAY,
                         sex_required=False).visitors[0].identity.sex is None  # fmt: skip
    with pytest.raises(Rejected) as caught:
        parse_booking(BookingRequest("1", [no_sex], "987654321"), today=TODAY, sex_required=True)
    assert [(p.code, p.field) for p in caught.value.problems] == [(Code.REQUIRED, "visitors.0.sex")]


@pytest.mark.parametrize("typed", ["²", "٣", "1e3", "-1", " ", "9" * 13])
def test_slot_ids_are_plain_digits(typed):
    from visits.booking_request import parse_slot_id

    assert parse_slot_id(typed) is None


@pytest.mark.parametrize(
    "typed",
    ["2147483648", "99999999999", 999999999999, 2**31, 0, pytest.param(10**5000, id="huge")],
)
def test_slot_ids_no_database_integer_holds_are_unknown(typed):
    """PostgreSQL's integer stops at 2**31 - 1: a larger id would be a database error."""
    from visits.booking_request import parse_slot_id

    assert parse_slot_id(typed) is None
    assert parse_slot_id("2147483647") == parse_slot_id(2**31 - 1) == 2**31 - 1
