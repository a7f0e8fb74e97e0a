import dataclasses

import pytest

from kdlib.config import NormalizationConfig
from kdlib.scoring.normalizers import (
    VIEWS,
    apply_view,
    lowercase_latin,
    map_eastern_arabic_digits,
    normalize,
    normalize_alef_maqsura,
    normalize_taa_marbuta,
    orthographic,
    remove_diacritics,
    remove_format_characters,
    remove_punctuation,
    remove_tatweel,
    unify_alef,
)

RULES = {
    "remove_diacritics": remove_diacritics,
    "remove_tatweel": remove_tatweel,
    "remove_punctuation": remove_punctuation,
    "unify_alef": unify_alef,
    "normalize_alef_maqsura": normalize_alef_maqsura,
    "normalize_taa_marbuta": normalize_taa_marbuta,
    "map_eastern_arabic_digits": map_eastern_arabic_digits,
    "lowercase_latin": lowercase_latin,
    "remove_format_characters": remove_format_characters,
}
# One sentence exercising every rule: diacritics, Quranic mark, tatweel, punctuation,
# hamza/madda/wasla alefs, alef maqsura, taa marbuta, Eastern and Persian digits, Latin, a right-to-left mark.
SAMPLE = "قَالَ أَحمدُ إلى ٱلْمَدرسةِ: «جميـــل»، هٰذا ۝ في ٢٠٢٤ و۱۲ مع Whisper؟\u200f"


@pytest.mark.parametrize(
    ("rule", "text", "expected"),
    [
        (remove_diacritics, "مُحَمَّدٌ", "محمد"),
        (remove_diacritics, "هٰذا", "هذا"),  # superscript alef
        (remove_diacritics, "محمد\u0610 ۝", "محمد "),  # Quranic marks U+0610, U+06DD
        (remove_diacritics, "أُسْرَة", "أسرة"),  # hamza letters and taa marbuta are letters
        (remove_tatweel, "جميـــل", "جميل"),
        (remove_punctuation, "مرحبا،كيف حالك؟", "مرحبا كيف حالك "),
        (remove_punctuation, "«نعم»؛٥٪۔a.b-c!", " نعم  ٥  a b c "),
        (unify_alef, "أحمد إلى آخر ٱلبيت", "احمد الى اخر البيت"),
        (normalize_alef_maqsura, "على مستشفى", "علي مستشفي"),
        (normalize_taa_marbuta, "مدرسة جميلة", "مدرسه جميله"),
        (map_eastern_arabic_digits, "٢٠٢٤ و۱۲۳", "2024 و123"),
        (lowercase_latin, "Whisper ÉCOLE عربي", "whisper école عربي"),
        (remove_format_characters, "\u200fذهب\u200d الو\u00adلد\u2066", "ذهب الولد"),
        (remove_format_characters, "a\u200bb\u200cc\ufeff ۝", "a\u200bb\u200cc\ufeff ۝"),  # separators, ayah
    ],
)
def test_rule_does_exactly_what_it_says(rule, text, expected):
    assert rule(text) == expected


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
def test_rules_only_touch_their_characters(rule):
    untouched = "ذهب الولد في البيت"
    assert rule(untouched) == untouched


def test_orthographic_keeps_text_as_written():
    text = "  قَالَ\u00a0أَحمدُ\t\tإلى ٱلْمَدرسةِ،\u200cجميـــل ٢٠٢٤\u200b Whisper؟\n"
    assert orthographic(text) == "قَالَ أَحمدُ إلى ٱلْمَدرسةِ، جميـــل ٢٠٢٤ Whisper؟"


def test_normalize_applies_all_default_rules():
    assert normalize(SAMPLE) == "قال احمد الي المدرسه جميل هذا في 2024 و12 مع whisper"


@pytest.mark.parametrize("order", [1, -1], ids=["field order", "reverse order"])
def test_normalize_equals_rules_applied_one_by_one_in_any_order(order):
    text = SAMPLE
    for rule in list(RULES.values())[::order]:
        text = rule(text)
    assert normalize(SAMPLE) == orthographic(text)


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(NormalizationConfig)])
def test_disabling_a_rule_keeps_what_it_would_change(field):
    config = dataclasses.replace(NormalizationConfig(), **{field: False})
    others_only = SAMPLE
    for name, rule in RULES.items():
        if name != field:
            others_only = rule(others_only)
    assert normalize(SAMPLE, config) == orthographic(others_only)
    assert normalize(SAMPLE, config) != normalize(SAMPLE)


def test_normalize_folds_unicode_variants():
    assert normalize("\ufefb") == "لا"  # lam-alef ligature, presentation form
    assert normalize("ا\u0654حمد") == "احمد"  # decomposed alef + hamza above
    assert normalize("نعم 😀") == "نعم 😀"  # beyond the BMP: left as it is


def test_default_config_enables_every_rule():
    assert all(dataclasses.asdict(NormalizationConfig()).values())


def test_apply_view():
    assert VIEWS == ("orthographic", "normalized", "authors", "english")
    assert apply_view(" أَحمد ", "orthographic") == "أَحمد"
    assert apply_view(" أَحمد ", "normalized") == "احمد"
    assert apply_view("أَحمد", "normalized", NormalizationConfig(unify_alef=False)) == "أحمد"
    with pytest.raises(ValueError, match="raw"):
        apply_view("نص", "raw")
