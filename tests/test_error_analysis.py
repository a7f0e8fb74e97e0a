import math
from html.parser import HTMLParser

import pandas as pd
import pytest

from kdlib.config import ParamsError, params_from_dict
from kdlib.scoring.alignment import aligned_example, aligned_html
from kdlib.stages.error_analysis import (
    CATEGORIES,
    DialectLexicon,
    ErrorRules,
    categorise,
    categorise_frame,
    category_shares,
)

# Words that the normalized view leaves as they are, and distinct fillers for errors.
W = ("ذهب", "الولد", "الي", "المدرسه", "في", "الصباح", "مع", "اخيه", "الكبير", "وعاد")
OTHER = ("كتاب", "قلم", "بيت", "شمس", "قمر", "بحر", "نهر", "جبل", "سماء", "ارض")
LEXICON = DialectLexicon.from_rows(
    [
        ("want", "MSA", "أريد"),
        ("want", "PAL", "بدي"),
        ("want", "JOR", "بدي"),
        ("want", "ALG", "نحب"),
        ("what", "MSA", "ماذا"),
        ("what", "PAL", "شو"),
        ("what", "JOR", "شو"),
        ("what", "PAL", "ايش"),
    ]
)


def s(*words: str) -> str:
    return " ".join(words)


def test_categories_in_precedence_order():
    assert CATEGORIES == ("correct", "empty", "hallucination", "incomplete", "dialectal", "substitution")


def test_correct_after_normalisation():
    assert categorise("قالَ أحمدُ: نعم.", "قال احمد نعم") == "correct"
    assert categorise("", "") == "correct"
    assert categorise("؟", " ") == "correct"  # nothing to say, nothing said


@pytest.mark.parametrize("hypothesis", ["", "   ", "؟!", "\u200c"])
def test_empty(hypothesis):
    assert categorise(s(*W[:6]), hypothesis) == "empty"


def test_anything_said_for_an_empty_reference_is_a_hallucination():
    assert categorise("", "نعم") == "hallucination"


def test_hallucination_by_length_ratio_is_strict():
    reference = s(*W[:6])
    assert categorise(reference, s(*OTHER[:9])) == "substitution"  # 9 = 1.5 × 6
    assert categorise(reference, s(*OTHER[:10])) == "hallucination"
    assert categorise(reference, s(*OTHER[:9]), rules=ErrorRules(length_ratio=1.4)) == "hallucination"


def test_hallucination_by_length_needs_enough_extra_words():
    reference = s(*W[:2])
    assert categorise(reference, s(*OTHER[:4])) == "substitution"  # 2 extra < 3
    assert categorise(reference, s(*OTHER[:5])) == "hallucination"
    assert categorise(reference, s(*OTHER[:4]), rules=ErrorRules(min_extra_words=2)) == "hallucination"


def test_hallucination_by_insertions():
    reference = s(*W)
    three = s(*W[:3], OTHER[5], *W[3:6], OTHER[6], *W[6:8], OTHER[7], *W[8:])
    two = s(*W[:3], OTHER[5], *W[3:6], OTHER[6], *W[6:])
    assert categorise(reference, three) == "hallucination"
    assert categorise(reference, two) == "substitution"  # fewer than min_extra_words


def test_insertions_must_be_strictly_dominant():
    reference = s(*W)
    three_subs_three_ins = s(*OTHER[:3], *W[3:5], OTHER[5], *W[5:7], OTHER[6], *W[7:9], OTHER[7], W[9])
    three_subs_four_ins = s(*OTHER[:3], *W[3:5], OTHER[5], *W[5:7], OTHER[6], *W[7:9], OTHER[7], W[9], OTHER[8])
    assert categorise(reference, three_subs_three_ins) == "substitution"  # 3/6 = 0.5
    assert categorise(reference, three_subs_four_ins) == "hallucination"  # 4/7 > 0.5


def test_hallucination_by_repetition_loop():
    reference = s(*W)
    assert categorise(reference, s(*W[:7], "قمر", "قمر", "قمر")) == "hallucination"
    assert categorise(reference, s(*W[:8], "قمر", "قمر")) == "substitution"  # 2 < 3 repeats
    bigram_loop = s(*W[:4], "بحر", "نهر", "بحر", "نهر", "بحر", "نهر")
    assert categorise(reference, bigram_loop) == "hallucination"
    assert categorise(reference, bigram_loop, rules=ErrorRules(max_ngram=1)) == "substitution"
    assert categorise(reference, bigram_loop, rules=ErrorRules(min_repeats=4)) == "substitution"


def test_repetition_in_the_reference_is_not_a_loop():
    reference = s(*W[:5], "لا", "لا", "لا")
    assert categorise(reference, s(OTHER[0], *W[1:5], "لا", "لا", "لا")) == "substitution"
    assert categorise(reference, s(*W[:5], "لا", "لا", "لا", "لا")) == "hallucination"  # one more


def test_incomplete_when_stopping_early():
    reference = s(*W[:6])
    assert categorise(reference, s(*W[:5])) == "incomplete"
    assert categorise(reference, W[0]) == "incomplete"
    assert categorise(reference, s(*W[1:6])) == "substitution"  # a suffix, not a prefix


def test_incomplete_by_deletions():
    reference = s(*W[:8])
    assert categorise(reference, s(*W[:2], *W[5:8])) == "incomplete"  # 3 deleted
    assert categorise(reference, s(*W[:2], *W[4:8])) == "substitution"  # 2 < 3 deleted
    assert categorise(reference, s(*W[:2], *W[4:8]), rules=ErrorRules(min_missing_words=2)) == "incomplete"


def test_deletions_must_be_strictly_dominant():
    reference = s(*W)
    assert categorise(reference, s(*OTHER[:3], *W[3:5], *W[8:])) == "substitution"  # 3 del / 6
    assert categorise(reference, s(*OTHER[:3], *W[3:5], W[9])) == "incomplete"  # 4 del / 7


def test_same_concept_other_variety():
    assert LEXICON.same_concept_other_variety("بدي", "أريد")
    assert LEXICON.same_concept_other_variety("أريد", "بدي")
    assert LEXICON.same_concept_other_variety("نحب", "بدّي")  # ALG vs PAL/JOR, diacritics ignored
    assert LEXICON.same_concept_other_variety("بدي", "أُرِيدُ")
    assert not LEXICON.same_concept_other_variety("شو", "ايش")  # both Palestinian
    assert not LEXICON.same_concept_other_variety("بدي", "ماذا")  # other concept
    assert not LEXICON.same_concept_other_variety("كتاب", "أريد")  # not in the lexicon


def test_dialectal():
    assert categorise("بدي اروح عالبيت", "أريد اروح عالبيت", LEXICON) == "dialectal"
    assert categorise("بدي اروح عالبيت", "أريد اروح عالبيت", None) == "substitution"
    assert categorise("شو بدك", "ايش بدك", LEXICON) == "substitution"


def test_dialectal_share_is_inclusive():
    half = ("بدي اروح علي البيت", "أريد اذهب علي البيت")  # 1 swap of 2 substitutions
    third = ("بدي اروح علي البيت", "أريد اذهب الي البيت")  # 1 swap of 3
    assert categorise(*half, LEXICON) == "dialectal"
    assert categorise(*third, LEXICON) == "substitution"
    assert categorise(*third, LEXICON, ErrorRules(dialect_share=0.3)) == "dialectal"


def test_precedence_conflicts():
    assert categorise(s(*W), "قمر قمر قمر") == "hallucination"  # a loop that also stops early
    assert categorise(s(*W), "") == "empty"
    dialect_reference = ("بدي",) + W[1:8]
    deleted = s("أريد", *W[1:3], *W[6:8])  # 1 swap, 3 deletions
    assert categorise(s(*dialect_reference), deleted, LEXICON) == "incomplete"
    assert categorise(s(*dialect_reference), s("أريد", *W[1:8]), LEXICON) == "dialectal"
    too_long = s("أريد", *W[1:4], *OTHER[:4])
    assert categorise(s("بدي", *W[1:4]), too_long, LEXICON) == "hallucination"


def test_lexicon_from_tsv(tmp_path):
    path = tmp_path / "lexicon.tsv"
    path.write_text("concept\tvariety\tform\nwant\tMSA\tأريد\n\nwant\tPAL\tبدي\n", encoding="utf-8")
    rows = [("want", "MSA", "أريد"), ("want", "PAL", "بدي")]
    assert DialectLexicon.from_tsv(path) == DialectLexicon.from_rows(rows)
    assert DialectLexicon.from_tsv(path).same_concept_other_variety("بدي", "اريد")


def test_lexicon_from_tsv_rejects_malformed_files(tmp_path):
    path = tmp_path / "lexicon.tsv"
    path.write_text("concept,variety,form\nwant,MSA,أريد\n", encoding="utf-8")
    with pytest.raises(ValueError, match="header"):
        DialectLexicon.from_tsv(path)
    path.write_text("concept\tvariety\tform\nwant\tMSA\tأريد\nwant\tPAL\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"lexicon.tsv:3: expected 3"):  # names the file and line
        DialectLexicon.from_tsv(path)


MINIMAL = {"profile": "t", "run_dir": "r", "reports_dir": "s"}


def test_rules_come_from_params():
    params = params_from_dict({**MINIMAL, "error_rules": {"length_ratio": 2, "min_repeats": 4}})
    assert params.error_rules == ErrorRules(length_ratio=2.0, min_repeats=4)
    assert isinstance(params.error_rules.length_ratio, float)
    assert params_from_dict(MINIMAL).error_rules == ErrorRules()


@pytest.mark.parametrize(
    ("d", "message"),
    [
        ({"length_ratios": 2.0}, "length_ratios"),
        ({"min_repeats": 2.5}, "min_repeats"),
        ({"dialect_share": "half"}, "dialect_share"),
        ({"max_ngram": True}, "max_ngram"),
        ({"min_repeats": 1}, "min_repeats"),
        ({"dominant_share": 1.0}, "dominant_share"),
    ],
)
def test_rules_from_params_reject(d, message):
    with pytest.raises(ParamsError, match=message):
        params_from_dict({**MINIMAL, "error_rules": d})


def test_categorise_frame():
    frame = pd.DataFrame(
        {"reference": [s(*W[:3]), s(*W[:3]), ""], "hypothesis": [s(*W[:3]), None, "نعم"]}, index=[10, 20, 30]
    )
    categories = categorise_frame(frame)
    assert categories.name == "category"
    assert categories.to_dict() == {10: "correct", 20: "empty", 30: "hallucination"}
    other = frame.rename(columns={"reference": "ref", "hypothesis": "hyp"})
    assert categorise_frame(other, ref_col="ref", hyp_col="hyp").equals(categories)


def test_category_shares():
    frame = pd.DataFrame(
        {
            "model": ["m1"] * 6 + ["m2"],
            "variety": ["PAL"] * 4 + ["MSA"] * 2 + ["PAL"],
            "category": ["correct", "empty", "empty", "hallucination", "correct", "correct", "dialectal"],
        }
    )
    shares = category_shares(frame, ["model", "variety"])
    assert list(shares.columns) == ["model", "variety", "category", "count", "share"]
    assert len(shares) == 3 * 5 and "correct" not in set(shares["category"])
    assert shares["category"].tolist()[:5] == list(CATEGORIES[1:])
    table = shares.set_index(["model", "variety", "category"])
    assert table.loc[("m1", "PAL", "empty")].tolist() == [2, pytest.approx(2 / 3)]
    assert table.loc[("m1", "PAL", "hallucination")].tolist() == [1, pytest.approx(1 / 3)]
    assert table.loc[("m1", "PAL", "incomplete")].tolist() == [0, 0.0]
    assert table.loc[("m2", "PAL", "dialectal")].tolist() == [1, 1.0]
    assert table.loc[("m1", "MSA"), "count"].sum() == 0
    assert table.loc[("m1", "MSA"), "share"].map(math.isnan).all()


def test_aligned_example():
    assert aligned_example("a b c", "a c") == "REF: a  b(D)    c\nHYP: a  ***(D)  c"
    assert aligned_example(s(*W[:4]), s(W[0], "البنت", *W[2:4], "اليوم")) == (
        "REF: ذهب  الولد(S)  الي  المدرسه  ***(I)\nHYP: ذهب  البنت(S)  الي  المدرسه  اليوم(I)"
    )
    assert aligned_example("", "") == "REF:\nHYP:"


class Cells(HTMLParser):
    """The rows of cells of an HTML table, and the attributes of its <table>."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.table: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.table = dict(attrs)
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.rows[-1].append("")

    def handle_data(self, data: str) -> None:
        if self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


def test_aligned_html_reads_right_to_left_one_column_per_word():
    parsed = Cells()
    parsed.feed(aligned_html(s(*W[:4]), s(W[0], "<b>", *W[2:4], "اليوم")))
    assert parsed.table["dir"] == "rtl" and parsed.table["lang"] == "ar"
    ref, hyp, ops = parsed.rows
    assert ref == ["REF", W[0], W[1], W[2], W[3], "***"]  # in reading order: the first word is rightmost under rtl
    assert hyp == ["HYP", W[0], "<b>", W[2], W[3], "اليوم"]  # escaped in the page, text again once parsed
    assert ops == ["", "", "S", "", "", "I"]
    assert "<b>" not in aligned_html("a", "<b>")
