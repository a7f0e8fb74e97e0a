"""Arabic text normalisation and the scoring views.

* ``orthographic``: the text as written; only whitespace is tidied.
* ``normalized``: kdlib's rich "normalized + no diacritics" rule set:
  Unicode NFKC (folds presentation forms such as the lam-alef ligature), then the rules
  enabled in a :class:`NormalizationConfig`, then whitespace tidying.
* ``authors``: the paper's authors' own normaliser, character for character (:func:`normalize_authors`).
* ``english``: transformers' Whisper ``EnglishTextNormalizer``, the normaliser of the authors' pseudo-label
  filter (`kdlib.scoring.normalizers.english`).

Every rule is a character-wise map over its own set of characters, and no rule outputs a
character that another rule reads, so the rules commute: applying the enabled ones in
:class:`NormalizationConfig` field order is the same as applying them in any order.
:func:`normalize` relies on that to fuse them into a single ``str.translate`` table.
"""

from __future__ import annotations

import re
import string
import unicodedata
from functools import cache
from typing import get_args

from kdlib.config import NormalizationConfig, View
from kdlib.scoring.normalizers.english import normalize_english

VIEWS: tuple[View, ...] = get_args(View)

_Table = dict[int, str | None]


def _ranges(*spans: tuple[int, int]) -> list[int]:
    return [code for first, last in spans for code in range(first, last + 1)]


# Zero-width characters that separate words like a space does: ZWSP, ZWNJ, BOM.
_SPACE_LIKE = "\u200b\u200c\ufeff"
_DIACRITICS: _Table = dict.fromkeys(_ranges((0x0610, 0x061A), (0x064B, 0x0652), (0x0670, 0x0670), (0x06D6, 0x06ED)))
_TATWEEL: _Table = {0x0640: None}
_PUNCTUATION: _Table = dict.fromkeys(
    [ord(c) for c in string.punctuation]
    + [code for code in range(0x10000) if unicodedata.category(chr(code)).startswith("P")],
    " ",
)
_ALEF: _Table = dict.fromkeys(map(ord, "أإآٱ"), "ا")
_ALEF_MAQSURA: _Table = {ord("ى"): "ي"}
_TAA_MARBUTA: _Table = {ord("ة"): "ه"}
_DIGITS: _Table = {code: str(code - zero) for zero in (0x0660, 0x06F0) for code in range(zero, zero + 10)}
# Invisible format characters (Unicode category Cf): direction marks and embeddings (U+200E/F, U+061C, U+202A–E,
# U+2066–9), joiners (U+200D), the soft hyphen (U+00AD), … Visually identical text differs only by them. Not
# the word-separating ZWSP, ZWNJ and BOM, nor the Quranic end of ayah U+06DD (a diacritic rule's).
_FORMAT: _Table = dict.fromkeys(
    code
    for code in range(0x10000)
    if unicodedata.category(chr(code)) == "Cf" and chr(code) not in _SPACE_LIKE and code not in _DIACRITICS
)
_LATIN_LOWER: _Table = {
    code: chr(code).lower()
    for code in range(0x0041, 0x0250)
    if len(chr(code).lower()) == 1 and chr(code).lower() != chr(code)
}


def orthographic(text: str) -> str:
    """The text as written: strip and collapse whitespace runs (incl. NBSP, ZWSP, ZWNJ) to one space."""
    for char in _SPACE_LIKE:
        text = text.replace(char, " ")
    return " ".join(text.split())


def remove_diacritics(text: str) -> str:
    """Drop tashkeel (U+064B–U+0652), superscript alef (U+0670) and Quranic marks
    (U+0610–U+061A, U+06D6–U+06ED)."""
    return text.translate(_DIACRITICS)


def remove_tatweel(text: str) -> str:
    """Drop the tatweel/kashida elongation character (U+0640)."""
    return text.translate(_TATWEEL)


def remove_punctuation(text: str) -> str:
    """Replace ASCII punctuation and symbols and every Unicode punctuation character
    of the BMP (Arabic ، ؛ ؟ ٪ ۔ ٫, « », …) by a space, so that the words around it stay apart."""
    return text.translate(_PUNCTUATION)


def unify_alef(text: str) -> str:
    """Map the hamza and madda alef forms أ إ آ and alef wasla ٱ to bare alef ا."""
    return text.translate(_ALEF)


def normalize_alef_maqsura(text: str) -> str:
    """Map alef maqsura ى to yaa ي."""
    return text.translate(_ALEF_MAQSURA)


def normalize_taa_marbuta(text: str) -> str:
    """Map taa marbuta ة to haa ه."""
    return text.translate(_TAA_MARBUTA)


def map_eastern_arabic_digits(text: str) -> str:
    """Map Arabic-Indic ٠–٩ and Persian ۰–۹ digits to ASCII 0–9."""
    return text.translate(_DIGITS)


def lowercase_latin(text: str) -> str:
    """Lowercase Latin letters (Basic Latin to Latin Extended-B); Arabic has no case."""
    return text.translate(_LATIN_LOWER)


def remove_format_characters(text: str) -> str:
    """Drop invisible format characters (category Cf: LRM/RLM, ALM, ZWJ, bidi embeddings and isolates, soft
    hyphen, …), but ZWSP, ZWNJ and BOM, which separate words like a space (:func:`orthographic`)."""
    return text.translate(_FORMAT)


_RULE_TABLES: dict[str, _Table] = {
    "remove_diacritics": _DIACRITICS,
    "remove_tatweel": _TATWEEL,
    "remove_punctuation": _PUNCTUATION,
    "unify_alef": _ALEF,
    "normalize_alef_maqsura": _ALEF_MAQSURA,
    "normalize_taa_marbuta": _TAA_MARBUTA,
    "map_eastern_arabic_digits": _DIGITS,
    "lowercase_latin": _LATIN_LOWER,
    "remove_format_characters": _FORMAT,
}


@cache
def _fused_table(config: NormalizationConfig) -> list[str | None]:
    """The enabled rules as one translate table indexed by code point. A list is about twice
    as fast as a dict, whose lookup fails for every unmapped character; characters beyond
    the BMP fall off its end (IndexError), which ``str.translate`` leaves unchanged."""
    table: list[str | None] = [chr(code) for code in range(0x10000)]
    for rule, rule_table in _RULE_TABLES.items():
        if getattr(config, rule):
            for code, replacement in rule_table.items():
                table[code] = replacement
    return table


def normalize(text: str, config: NormalizationConfig = NormalizationConfig()) -> str:
    """The ``normalized`` view: NFKC, the enabled rules (they commute), then the
    whitespace tidying of :func:`orthographic`."""
    return orthographic(unicodedata.normalize("NFKC", text).translate(_fused_table(config)))


def apply_view(text: str, view: View, config: NormalizationConfig = NormalizationConfig()) -> str:
    """Render `text` in one of :data:`VIEWS`; `config` only matters for ``normalized``."""
    if view == "orthographic":
        return orthographic(text)
    if view == "normalized":
        return normalize(text, config)
    if view == "authors":
        return normalize_authors(text)
    if view == "english":
        return normalize_english(text)
    raise ValueError(f"unknown view {view!r}; expected one of {VIEWS}")


def _authors_table() -> list[str | None]:
    """Translate table of :func:`normalize_authors` over the BMP: every character deleted except the kept ones."""
    table: list[str | None] = [None] * 0x10000
    for code in [*range(0x30, 0x3A), ord("%"), ord("@"), *range(0x0621, 0x064B)]:
        table[code] = chr(code)
    for code in range(0x10000):
        if chr(code).isspace():
            table[code] = " "
    for code in range(0x0660, 0x066A):
        table[code] = str(code - 0x0660)
    for char in "أإآ":
        table[ord(char)] = "ا"
    return table


_AUTHORS_TABLE = _authors_table()
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def normalize_authors(text: str) -> str:
    """The authors' scoring normaliser (uDistilWhisper ``evaluate.py`` ``preprocess``, identical to
    N-Shot-Benchmarking-of-Whisper ``utils.py`` ``preprocessor``, after Hussein, Watanabe & Ali 2021), exactly.

    Their steps: delete every character but ASCII digits, U+0621–U+064A, Arabic-Indic digits U+0660–U+0669,
    ``%``, ``@`` and whitespace (``str.isspace``); Arabic-Indic digits → 0–9; إ أ ٱ آ → ا; collapse whitespace.
    Quirks kept on purpose:

    * no NFKC: presentation forms (U+FB50–U+FDFF, U+FE70–U+FEFF, e.g. the lam-alef ligature) are deleted;
    * alef wasla ٱ (U+0671) is deleted by the first step, before the alef rule could map it;
    * ة, ى, ؤ, ئ, tatweel (U+0640) and U+063B–U+063F are kept; no ة→ه, no ى→ي;
    * deletion, not a space: punctuation (ASCII and Arabic ، ؛ ؟ ٪) joins the words around it, as do
      ZWSP and ZWNJ (not whitespace), while NBSP and the other Unicode spaces separate words;
    * all Latin letters, Persian digits ۰–۹ and letters outside U+0621–U+064A (پ چ گ ک ی) are deleted.

    One ``str.translate`` over the BMP plus a regex for the few characters beyond it.
    """
    return " ".join(_ASTRAL.sub("", text).translate(_AUTHORS_TABLE).split())
