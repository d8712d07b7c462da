"""SMS text encoding: keep every outbox message in GSM-7 and count what it costs.

Every standard message must fit one 160-character GSM-7 segment. Spanish á í ó ú are not in
GSM-7, and a single such character turns the whole message into UCS-2, which holds only 70
characters per segment: a short reminder would cost two or three texts. So texts are
transliterated to GSM-7 before they are queued, and :func:`segments` counts the cost the way
carriers bill it.

Standard library only: this package imports nothing from ``visits`` or ``web``.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

SINGLE_SEGMENT = 160  # septets in a lone GSM-7 segment
PART_SEGMENT = 153  # septets per segment of a concatenated message (7 go to the UDH)
_UCS2_SINGLE = 70  # UTF-16 code units in a lone UCS-2 segment
_UCS2_PART = 67

# GSM 03.38 default alphabet in code-point order, 0x00-0x7F, without ESC (0x1B).
GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Reached through ESC, so each costs two septets.
GSM7_EXTENDED: frozenset[str] = frozenset("^{}\\[~]|€\f")
_GSM7 = GSM7_BASIC | GSM7_EXTENDED

# Look-alikes that Unicode decomposition does not reach (or reaches badly, like ´ → space).
_REPLACEMENTS = {
    **dict.fromkeys("‘’‚‛′`´", "'"),
    **dict.fromkeys("“”„‟″«»", '"'),
    **dict.fromkeys("‐‑‒–—―−•", "-"),
    "…": "...",
    "\t": " ",
    "\u2028": "\n",
    "\u2029": "\n",
    "º": "o",
    "ª": "a",
}


@lru_cache(maxsize=4096)  # texts repeat the same few characters; each is worked out once
def _transliterate_char(char: str) -> str:
    if char in _GSM7:
        return char
    if char in _REPLACEMENTS:
        return _REPLACEMENTS[char]
    category = unicodedata.category(char)
    if category == "Zs":  # no-break, thin, ideographic... spaces
        return " "
    if category[0] == "M" or category == "Cf":
        # A mark left over after NFC (its base had no precomposed form) or an invisible format
        # character (zero-width space, soft hyphen, joiner): a "?" would show what was unseen.
        return ""
    # á → a, ç → c, ﬁ → fi, full-width Ａ → A: decompose and drop the accents.
    base = "".join(
        c
        for c in unicodedata.normalize("NFKD", char)
        if not unicodedata.category(c).startswith("M")
    )
    return base if base and all(c in _GSM7 for c in base) else "?"


def transliterate(text: str) -> str:
    """Return ``text`` in GSM-7 only, as close to the original as the alphabet allows.

    Characters already in GSM-7 (é ñ ü ¿ ¡ among them) are kept; others become their nearest
    look-alike, or "?". Composing first (NFC) lets a decomposed "e" + accent stay "é".
    """
    composed = unicodedata.normalize("NFC", text)
    if _GSM7.issuperset(composed):  # the usual case, checked in one pass in C
        return composed
    return "".join(map(_transliterate_char, composed))


def is_gsm7(text: str) -> bool:
    """Whether the text can be sent in GSM-7 (otherwise the whole message goes as UCS-2)."""
    return _GSM7.issuperset(text)


def encoding(text: str) -> str:
    """The encoding a phone would pick for the text: "GSM-7" or "UCS-2"."""
    return "GSM-7" if is_gsm7(text) else "UCS-2"


def septets(text: str) -> int:
    """Length of GSM-7 text in septets: extended characters cost two (ESC and the char)."""
    return len(text) + sum(text.count(c) for c in GSM7_EXTENDED)


def _packed(costs: list[int], part: int) -> int:
    """Segments needed when no character's units may be split across two segments."""
    count, used = 1, 0
    for cost in costs:
        if used + cost > part:
            count, used = count + 1, 0
        used += cost
    return count


def segments(text: str) -> int:
    """How many SMS segments the text is billed as; an empty text still costs one."""
    if is_gsm7(text):
        if septets(text) <= SINGLE_SEGMENT:  # the usual case
            return 1
        costs = [2 if c in GSM7_EXTENDED else 1 for c in text]
        single, part = SINGLE_SEGMENT, PART_SEGMENT
    else:  # UTF-16 code units: a character beyond the BMP takes a surrogate pair
        costs = [2 if ord(c) > 0xFFFF else 1 for c in text]
        single, part = _UCS2_SINGLE, _UCS2_PART
    return 1 if sum(costs) <= single else _packed(costs, part)
