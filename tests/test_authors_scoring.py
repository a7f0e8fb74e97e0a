"""The authors' scoring normaliser: `normalize_authors` agrees with their function character for character."""

from __future__ import annotations

import random
import re
import sys

import pytest

from kdlib.config import NormalizationConfig
from kdlib.scoring.normalizers import VIEWS, apply_view, normalize, normalize_authors


def authors_preprocess(text: str) -> str:
    """Verbatim transcription of `preprocess` in UBC-NLP/uDistilWhisper `evaluate.py` (the same body as
    `preprocessor` in macabdul9/N-Shot-Benchmarking-of-Whisper `utils.py`); only comments shortened."""
    # 1- remove the special characters and diacritics (and all Latin letters)
    text = re.sub(r"[^0-9\u0621-\u064A\u0660-\u0669%@\s]", "", text)
    # 2- transliterating all Arabic digits to Arabic numerals
    text = re.sub(r"[٠-٩]", lambda x: str(int(x.group())), text)
    # 3- Normalize alefs
    text = re.sub("[إأٱآا]", "ا", text)
    # - Remove extra spaces
    text = " ".join(text.split())
    return text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("مدرسة", "مدرسة"),  # ة kept
        ("على", "على"),  # ى kept
        ("مؤتمر", "مؤتمر"),  # ؤ kept
        ("سائل", "سائل"),  # ئ kept
        ("جميـــل", "جميـــل"),  # tatweel kept
        ("ٱلكتاب", "لكتاب"),  # alef wasla deleted, not unified
        ("أحمد إلى آخر", "احمد الى اخر"),  # hamza and madda alefs unified
        ("كَتَبَ الْكِتَابُ", "كتب الكتاب"),  # diacritics deleted, no space left behind
        ("Whisper قال hello", "قال"),  # Latin deleted
        ("٠١٢٣٤٥٦٧٨٩ 42", "0123456789 42"),  # Arabic-Indic digits mapped, ASCII kept
        ("50% a@b", "50% @"),  # % and @ kept
        ("نعم، لا؛ لماذا؟", "نعم لا لماذا"),  # Arabic punctuation deleted
        ("قال:لا", "قاللا"),  # punctuation deleted, not replaced by a space
        ("\ufefb \ufdf2", ""),  # presentation forms (lam-alef, Allah ligature) deleted
        ("۱۲ ٪", ""),  # Persian digits and the Arabic percent sign deleted
        ("  واحد\t\n اثنان\u00a0ثلاثة  ", "واحد اثنان ثلاثة"),  # whitespace, NBSP included, collapsed
        ("واحد\u200cاثنان", "واحداثنان"),  # ZWNJ is not whitespace: deleted
        ("😀 كلمة 𝟘", "كلمة"),  # characters beyond the BMP deleted
    ],
)
def test_brief_examples(text: str, expected: str) -> None:
    assert authors_preprocess(text) == expected
    assert normalize_authors(text) == expected


def test_every_code_point_alone() -> None:
    text = " ".join(map(chr, range(sys.maxunicode + 1)))
    assert normalize_authors(text) == authors_preprocess(text)


_POOLS = [
    [chr(c) for c in range(0x0621, 0x064B)],  # Arabic letters, tatweel
    list("ٱپچژگکیۀە"),  # alef wasla, Persian and other extended letters
    [chr(c) for c in range(0xFB50, 0xFDFE)] + [chr(c) for c in range(0xFE70, 0xFEFD)],  # presentation forms
    [chr(c) for c in range(0x064B, 0x0660)] + ["\u0670", "\u0610", "\u06d6", "\u06ed"],  # diacritics, marks
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéàçÉ"),  # Latin
    list("0123456789٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹"),  # ASCII, Arabic-Indic and Persian digits
    list("!\"#$&'()*+,-./:;<=>?[\\]^_`{|}~،؛؟«»…٪٫٬۔"),  # punctuation, ASCII and Arabic
    list("%@"),
    list(" \t\n\r\v\f\u00a0\u2002\u2009\u202f\u3000\u0085\u2028\u001c"),  # whitespace
    list("\u200b\u200c\u200d\u200e\u200f\ufeff\u061c\u00ad"),  # zero-width and directional marks
    list("😀𝟘\U0001ee00\ud800"),  # beyond the BMP, a lone surrogate
]


def test_random_strings_agree_with_the_authors_function() -> None:
    rng = random.Random(2406_04512)
    for _ in range(20_000):
        text = "".join(rng.choice(rng.choice(_POOLS)) for _ in range(rng.randint(0, 40)))
        assert normalize_authors(text) == authors_preprocess(text), repr(text)


def test_the_authors_view_scores_with_their_normaliser() -> None:
    config = NormalizationConfig(normalize_taa_marbuta=False)
    assert VIEWS == ("orthographic", "normalized", "authors", "english")
    assert apply_view(" مدرسةٌ  علىٰ ", "authors") == normalize_authors("مدرسةٌ علىٰ") == "مدرسة على"
    assert apply_view("مدرسةٌ على", "normalized", config) == normalize("مدرسةٌ على", config) == "مدرسة علي"
    with pytest.raises(ValueError):
        apply_view("نص", "raw")  # type: ignore[arg-type]
