"""Text normalisers: kdlib's Arabic views and the authors' evaluation normaliser (`arabic`), and transformers'
Whisper English normaliser, the authors' filter normaliser (`english`)."""

from kdlib.scoring.normalizers.arabic import (
    VIEWS,
    apply_view,
    lowercase_latin,
    map_eastern_arabic_digits,
    normalize,
    normalize_alef_maqsura,
    normalize_authors,
    normalize_taa_marbuta,
    orthographic,
    remove_diacritics,
    remove_format_characters,
    remove_punctuation,
    remove_tatweel,
    unify_alef,
)
from kdlib.scoring.normalizers.english import normalize_english

__all__ = [
    "apply_view",
    "lowercase_latin",
    "map_eastern_arabic_digits",
    "normalize",
    "normalize_alef_maqsura",
    "normalize_authors",
    "normalize_english",
    "normalize_taa_marbuta",
    "orthographic",
    "remove_diacritics",
    "remove_format_characters",
    "remove_punctuation",
    "remove_tatweel",
    "unify_alef",
    "VIEWS",
]
