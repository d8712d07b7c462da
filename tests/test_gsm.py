"""GSM-7 transliteration and segment counting: what keeps a reminder to one billed text."""

from __future__ import annotations

import string
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifications.gsm import (
    GSM7_BASIC,
    GSM7_EXTENDED,
    SINGLE_SEGMENT,
    encoding,
    is_gsm7,
    segments,
    septets,
    transliterate,
)

GSM7 = sorted(GSM7_BASIC | GSM7_EXTENDED)


def test_the_alphabet_is_gsm_03_38_without_escape():
    assert len(GSM7_BASIC) == 127
    assert "\x1b" not in GSM7_BASIC
    assert GSM7_BASIC.isdisjoint(GSM7_EXTENDED)
    assert (
        set(
            "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./:;<=>?¡ÄÖÑÜ§¿äöñüà"
            + string.ascii_letters
            + string.digits
        )
        == GSM7_BASIC
    )
    assert set("áíóúç\t`").isdisjoint(GSM7_BASIC | GSM7_EXTENDED)
    assert set("^{}\\[~]|€\f") == GSM7_EXTENDED
    assert SINGLE_SEGMENT == 160


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Mañana a las 9:00, Cárcel de Quencoro, José Ñáñez",
            "Mañana a las 9:00, Carcel de Quencoro, José Ñañez",
        ),
        (
            "¿Podrá venir el miércoles? ¡Sí! Visita aprobada para Raúl Ibáñez Muñoz.",
            "¿Podra venir el miércoles? ¡Si! Visita aprobada para Raul Ibañez Muñoz.",
        ),
        ("ÁLVARO RODRÍGUEZ, CÓRDOBA, ÚBEDA, ÉCIJA", "ALVARO RODRIGUEZ, CORDOBA, UBEDA, ÉCIJA"),
        ("pingüino, Güemes, GÜELL", "pingüino, Güemes, GÜELL"),
        (
            "São João, Conceição, français, crêpe, île, hôtel, août",
            "Sao Joao, Conceicao, francais, crepe, ile, hotel, aout",
        ),
        ("Ça va, Ærø, Øresund", "Ça va, Ærø, Øresund"),
    ],
)
def test_accented_text_becomes_the_nearest_gsm7(text, expected):
    assert transliterate(text) == expected
    assert encoding(transliterate(text)) == "GSM-7"


def test_decomposed_accents_are_composed_first():
    assert transliterate("Jose\u0301 Ca\u0301rcel Mun\u0303oz") == "José Carcel Muñoz"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("‘hola’ ‚x‛ 5′", "'hola' 'x' 5'"),
        ("“hola” „x‟ 5″", '"hola" "x" 5"'),
        ("«Sala B»", '"Sala B"'),
        ("9:00–10:00 — sala −2", "9:00-10:00 - sala -2"),
        ("Espere…", "Espere..."),
        ("• DNI\n• Foto", "- DNI\n- Foto"),
        ("1º piso, 2ª planta", "1o piso, 2a planta"),
        ("a\u00a0b\u202fc\u2009d\u3000e\tf\u1680g", "a b c d e f g"),
        ("don`t, don´t", "don't, don't"),
    ],
)
def test_typographic_punctuation_and_spaces_map_to_ascii(text, expected):
    assert transliterate(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Nos vemos 😀", "Nos vemos ?"), ("中文", "??"), ("\x00x\x0b", "?x?"), ("Łódź", "?odz")],
)
def test_characters_without_a_look_alike_become_a_question_mark(text, expected):
    assert transliterate(text) == expected


def test_invisible_format_characters_are_dropped_not_shown_as_question_marks():
    assert transliterate("Jo\u200bsé\u00ad\u200d\ufeff") == "José"


def test_gsm7_text_is_left_exactly_as_it_is():
    everything = "".join(GSM7)
    assert transliterate(everything) == everything


def test_encoding_depends_on_whether_every_character_is_gsm7():
    assert encoding("año") == "GSM-7"
    assert encoding("Perú") == "UCS-2"
    assert encoding("") == "GSM-7"
    assert is_gsm7("{€}")
    assert not is_gsm7("ú")


def test_extended_characters_cost_two_septets():
    assert septets("abc") == 3
    assert septets("{€}") == 6
    assert septets("\f") == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("a" * 158 + "€", 1),  # 160 septets
        ("a" * 159 + "€", 2),  # 161 septets
        ("a" * 151 + "€" + "a" * 153, 2),  # the € ends segment one exactly
        ("a" * 152 + "€" + "a" * 152, 3),  # 306 septets, but the € moves whole to segment two
        ("ú" * 70, 1),
        ("ú" * 71, 2),
        ("ú" * 134, 2),
        ("ú" * 135, 3),
        ("😀" * 35, 1),  # 70 UTF-16 units
        ("😀" + "ú" * 69, 2),  # 71 units
        ("ú" * 66 + "😀" + "ú" * 66, 3),  # 134 units, but the pair moves whole to segment two
        ("ú" * 65 + "😀" + "ú" * 67, 2),
    ],
)
def test_segments_at_the_boundaries(text, expected):
    assert segments(text) == expected


def test_one_accent_would_cost_a_second_segment_without_transliteration():
    reminder = "Recordatorio: visita el martes 14 a las 9:00 en la Cárcel de Quencoro. " * 2
    assert 70 < len(reminder) <= SINGLE_SEGMENT
    assert segments(reminder) == 3
    assert segments(transliterate(reminder)) == 1


# --- properties -----------------------------------------------------------------------------

gsm7_text = st.text(alphabet=GSM7, max_size=400)
# Mostly extended characters too, so that texts land on both sides of every boundary.
dense_gsm7_text = st.text(alphabet=st.sampled_from(["a", "€", "{"]), min_size=60, max_size=340)


@given(st.text())
def test_transliteration_is_gsm7_and_idempotent(text):
    once = transliterate(text)
    assert is_gsm7(once)
    assert transliterate(once) == once


@given(st.text())
def test_every_visible_character_leaves_at_least_one_character(text):
    """Only marks (absorbed by their letter) and invisible format characters may vanish."""
    composed = unicodedata.normalize("NFC", text)
    visible = [c for c in composed if unicodedata.category(c)[0] != "M"]
    visible = [c for c in visible if unicodedata.category(c) != "Cf"]
    assert len(transliterate(text)) >= len(visible)


@given(st.text(alphabet=[*GSM7, *"áíóúÁÍÓÚçãõâêîôû‘’“”–—−«»•ºª\u00a0\u1680\t😀中\uff9e"]))
def test_one_for_one_replacements_keep_the_length(text):
    assert len(transliterate(text)) == len(text)


@given(gsm7_text)
def test_gsm7_text_is_never_changed(text):
    assert transliterate(text) == text


@given(st.text(max_size=300), st.characters())
def test_appending_a_character_never_costs_fewer_segments(text, char):
    assert segments(text + char) >= segments(text)


@given(st.one_of(gsm7_text, dense_gsm7_text))
def test_gsm7_text_is_one_segment_exactly_when_it_fits_160_septets(text):
    assert (segments(text) == 1) == (septets(text) <= SINGLE_SEGMENT)


@given(dense_gsm7_text)
def test_concatenated_segments_are_full_but_for_a_moved_extended_character(text):
    count = segments(text)
    if count > 1:
        assert 152 * (count - 1) < septets(text) <= 153 * count
