"""Every standard SMS fits one GSM-7 segment, in every language, with long real-world names."""

from __future__ import annotations

import itertools
import re

import pytest

from notifications import gsm
from visits.health import Measures
from visits.i18n import SUPPORTED_LOCALES, gettext, use_locale
from visits.settings import Settings
from visits.sms import (
    HOME_LINKED,
    SEGMENTS,
    TEXTS,
    SmsPolicy,
    measure_sentences,
    render,
    short_token,
    short_token_matches,
    texts_too_long,
)

# A long prison name, a long public address, the largest party and a late hour.
LONG_PRISON = "Establecimiento Penitenciario de Mujeres de Chorrillos Anexo (Santa Mónica)"
POLICY = SmsPolicy(public_base_url="https://visitas-familiares.inpe.gob.pe", secret_key="k")
PARAMS = {
    "ref": "ABCD-EFGH",
    "when": "el 28/12 a las 15:30",
    "prison": LONG_PRISON,
    "people": "3 personas",
    "link": POLICY.short_link("ABCDEFGH"),
    "code": "123456",
    "minutes": 10,
    "measures": "",
}


# Every health measure at once, with the longest visit length.
EVERY_MEASURE = Measures(
    inform=True, masks=True, no_high_risk=True, non_contact=True, visit_minutes=600
)


@pytest.mark.parametrize("language", SUPPORTED_LOCALES)
@pytest.mark.parametrize("kind", sorted(TEXTS))
def test_every_text_is_one_gsm7_segment(kind, language):
    """One segment, or the few :data:`SEGMENTS` allows a text that must say more."""
    params = {**PARAMS, "link": POLICY.public_base_url} if kind in HOME_LINKED else PARAMS
    params = {**params, "measures": measure_sentences(EVERY_MEASURE, language)}
    text = render(kind, language, params)
    assert gsm.is_gsm7(text), text
    assert gsm.segments(text) == SEGMENTS.get(kind, 1), (len(text), text)
    if kind == "health_measure":
        assert gsm.transliterate(params["measures"].strip()) in text  # every measure, uncut
    for key in ("ref", "code", "link"):
        if f"%({key})s" in TEXTS[kind]:
            assert str(params[key]) in text  # only the prison's name is ever shortened


@pytest.mark.parametrize("language", SUPPORTED_LOCALES)
def test_a_long_prison_name_is_shortened_only_as_much_as_needed(language):
    short = render("reminder", language, {**PARAMS, "prison": "Penal de Quencoro"})
    assert "Penal de Quencoro" in short
    long = render("confirmed", language, PARAMS)
    assert LONG_PRISON not in long
    assert "Establecimiento" in long
    assert 155 <= gsm.septets(long) <= 160  # cut where it must, not before


@pytest.mark.parametrize("language", SUPPORTED_LOCALES)
def test_a_cut_name_gets_one_ellipsis_never_four_dots(language):
    name = "E.P. Anexo. Establecimiento Penitenciario de Mujeres de Chorrillos (Santa Monica)"
    for kind in ("closed", "visitor_barred", "health_suspended", "confirmed"):
        for end in range(20, len(name)):
            text = render(kind, language, {**PARAMS, "prison": name[:end]})
            assert "...." not in text, text
            assert ". ..." not in text, text


def test_an_address_too_long_for_the_texts_is_refused_by_the_settings_with_what_it_costs():
    # The longest address that leaves every text in its segments, and one character more.
    fits = next(
        f"https://{'v' * n}.pe"
        for n in range(80, 0, -1)
        if not texts_too_long(f"https://{'v' * n}.pe")
    )
    longer = fits.replace("https://", "https://v")
    Settings(public_base_url=fits, sms_console=True)
    with pytest.raises(ValueError, match=r"VISITS_PUBLIC_BASE_URL \(\d+ characters\)") as refused:
        Settings(public_base_url=longer)
    assert "confirmed/es" in str(refused.value)
    # At the longest address accepted, a long real prison name still leaves every text within
    # its segments (the name is cut, never the address).
    policy = SmsPolicy(public_base_url=fits, secret_key="k")
    for language in SUPPORTED_LOCALES:
        for kind in TEXTS:
            link = fits if kind in HOME_LINKED else policy.short_link("ABCDEFGH")
            when = {"es": "el 28/09 a las 15:30", "en": "on Sep 28 at 15:30"}[language]
            text = render(kind, language, {**PARAMS, "link": link, "when": when})
            assert gsm.segments(text) <= SEGMENTS.get(kind, 1), (kind, language, text)
    assert len(POLICY.public_base_url) <= len(fits)  # the address these tests use is accepted


def test_spanish_texts_are_spanish_and_accents_become_plain_letters():
    reminder = render("reminder", "es", PARAMS)
    assert "Responda 1 si viene, 2 si no puede venir." in reminder
    assert render("code", "es", PARAMS).startswith(
        "Su codigo para la reserva de visita ABCD-EFGH es 123456"
    )


def test_replies_asked_for_are_digits_or_our_own_keywords_never_carrier_opt_outs():
    asked = set()
    for language in SUPPORTED_LOCALES:
        for kind in TEXTS:
            words = render(kind, language, PARAMS).upper().replace(",", " ").split()
            for verb, word in itertools.pairwise(words):
                if verb in {"REPLY", "RESPONDA", "SEND", "ENVIE"}:
                    asked.add(word)
    assert asked == {"1", "BAJA", "ALTA"}


def test_the_short_link_is_signed_and_short():
    link = POLICY.short_link("ABCDEFGH")
    token = link.rsplit("/", 1)[1][8:]
    assert link == f"https://visitas-familiares.inpe.gob.pe/m/ABCDEFGH{token}"
    assert short_token_matches("k", "ABCDEFGH", token)
    assert not short_token_matches("k", "ABCDEFGJ", token)
    assert not short_token_matches("other", "ABCDEFGH", token)
    assert short_token("k", "ABCDEFGH") == token
    assert len(token) == 8


@pytest.mark.parametrize("language", SUPPORTED_LOCALES)
def test_the_contacts_sms_names_the_cough_as_the_screening_question_does(language):
    """MINSA's respiratory symptomatic: a cough for 15 days or more, not "2 weeks"."""
    with use_locale(language):
        asked = gettext("A cough for 15 days or more")  # the screening question's label
    days = re.search(r"\d+", asked).group(0)
    text = render("contact_tier2", language, PARAMS)
    assert re.search(rf"\b{days}\b", text), text
