import random

import jiwer
import pytest

from kdlib.config import NormalizationConfig
from kdlib.scoring.metrics import (
    AlignedChunk,
    ErrorCounts,
    corpus_rate,
    corpus_scores,
    score_pairs,
    utterance_counts,
    word_alignment,
)


def test_one_substitution_in_four_words():
    [counts] = utterance_counts(["ذهب الولد الى المدرسة"], ["ذهب البنت الى المدرسة"], "word")
    assert counts == ErrorCounts(hits=3, substitutions=1, deletions=0, insertions=0)
    assert counts.rate == 0.25


def test_word_counts_of_each_edit():
    [counts] = utterance_counts(["a b c d"], ["a x c d e f"], "word")
    assert counts == ErrorCounts(hits=3, substitutions=1, deletions=0, insertions=2)
    assert (counts.ref_len, counts.hyp_len, counts.errors, counts.rate) == (4, 6, 3, 0.75)


def test_char_level_counts():
    [missing_alef, space] = utterance_counts(["كتاب", "ab cd"], ["كتب", " abcd "], "char")
    assert missing_alef == ErrorCounts(hits=3, substitutions=0, deletions=1, insertions=0)
    assert missing_alef.rate == 0.25
    assert space.ref_len == 5 and space.deletions == 1 and space.rate == 0.2  # outer spaces stripped


def test_empty_sides_keep_their_position():
    references = ["a b", "", "", "a b c", "  "]
    hypotheses = ["a b", "x y", "", "", "z"]
    counts = utterance_counts(references, hypotheses, "word")
    assert counts == [
        ErrorCounts(hits=2),
        ErrorCounts(insertions=2),
        ErrorCounts(),
        ErrorCounts(deletions=3),
        ErrorCounts(insertions=1),
    ]
    assert [c.rate for c in counts] == [0.0, 2.0, 0.0, 1.0, 1.0]


def test_rate_of_empty_reference_follows_jiwer():
    assert ErrorCounts().rate == 0.0
    assert ErrorCounts(insertions=3).rate == jiwer.wer("", "x y z") == 3.0


def test_error_counts_add():
    total = ErrorCounts(1, 2, 3, 4) + ErrorCounts(10, 20, 30, 40)
    assert total == ErrorCounts(11, 22, 33, 44)


def test_corpus_rate_pools_counts_rather_than_averaging_rates():
    counts = utterance_counts(["a", "b c d e"], ["x", "b c d e"], "word")
    assert [c.rate for c in counts] == [1.0, 0.0]
    assert corpus_rate(counts) == 1 / 5
    assert corpus_rate([]) == 0.0
    assert corpus_rate([ErrorCounts(), ErrorCounts()]) == 0.0


def test_utterance_counts_validates_input():
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        utterance_counts(["a", "b"], ["a"], "word")
    with pytest.raises(ValueError, match="phoneme"):
        utterance_counts(["a"], ["a"], "phoneme")


def test_counts_match_jiwer():
    rng = random.Random(0)
    vocabulary = ["ذهب", "الولد", "الى", "المدرسه", "في", "الصباح", "مع", "اخيه"]
    references = [" ".join(rng.choices(vocabulary, k=rng.randint(1, 12))) for _ in range(300)]
    hypotheses = [" ".join(rng.choices(vocabulary, k=rng.randint(0, 12))) for _ in range(300)]
    for unit, process in (("word", jiwer.process_words), ("char", jiwer.process_characters)):
        counts = utterance_counts(references, hypotheses, unit)
        output = process(references, hypotheses)
        expected = []
        for chunks in output.alignments:
            sizes = {"equal": 0, "substitute": 0, "delete": 0, "insert": 0}
            for chunk in chunks:
                ref_size = chunk.ref_end_idx - chunk.ref_start_idx
                sizes[chunk.type] += ref_size or chunk.hyp_end_idx - chunk.hyp_start_idx
            expected.append(ErrorCounts(*sizes.values()))
        assert counts == expected
        assert corpus_rate(counts) == pytest.approx(output.wer if unit == "word" else output.cer)


def test_score_pairs_per_utterance_columns():
    frame = score_pairs(["ذهب الولد الى المدرسة", "نعم"], ["ذهب البنت الى المدرسة", ""], "normalized")
    assert list(frame.columns) == ["wer", "cer", "sub", "del", "ins", "hits", "ref_words", "hyp_words"]
    assert frame["wer"].tolist() == [0.25, 1.0]
    assert frame["cer"].tolist() == pytest.approx([3 / 21, 1.0])  # الولد→البنت: 3 of 21 chars
    assert frame[["sub", "del", "ins", "hits", "ref_words", "hyp_words"]].values.tolist() == [
        [1, 0, 0, 3, 4, 4],
        [0, 1, 0, 0, 1, 0],
    ]


def test_views_score_differently():
    references, hypotheses = ["قالَ أحمد: نعم."], ["قال احمد نعم"]
    assert corpus_scores(references, hypotheses, "normalized")["wer"] == 0.0
    assert corpus_scores(references, hypotheses, "orthographic")["wer"] == 1.0
    loose = NormalizationConfig(remove_diacritics=False)
    assert corpus_scores(references, hypotheses, "normalized", loose)["wer"] == 1 / 3


def test_corpus_scores_agree_with_per_utterance_counts():
    references = ["ذهب الولد الى المدرسة", "في الصباح", "", "مع اخيه الكبير"]
    hypotheses = ["ذهب الى المدرسة اليوم", "في المساء", "نعم", "مع اخيه الكبير"]
    frame = score_pairs(references, hypotheses, "normalized")
    scores = corpus_scores(references, hypotheses, "normalized")
    errors = frame[["sub", "del", "ins"]].to_numpy().sum()
    assert scores["wer"] == errors / frame["ref_words"].sum() == 4 / 9  # 1 del + 1 ins, 1 sub, 1 ins
    assert scores["n"] == 4
    assert 0 < scores["cer"] < scores["wer"]


def test_word_alignment_ops():
    assert word_alignment("a b c d", "a x c e d") == [
        AlignedChunk("equal", ("a",), ("a",)),
        AlignedChunk("substitute", ("b",), ("x",)),
        AlignedChunk("equal", ("c",), ("c",)),
        AlignedChunk("insert", (), ("e",)),
        AlignedChunk("equal", ("d",), ("d",)),
    ]
    assert word_alignment("a b c", "a") == [
        AlignedChunk("equal", ("a",), ("a",)),
        AlignedChunk("delete", ("b", "c"), ()),
    ]


def test_word_alignment_empty_sides():
    assert word_alignment("", "نعم لا") == [AlignedChunk("insert", (), ("نعم", "لا"))]
    assert word_alignment("نعم لا", " ") == [AlignedChunk("delete", ("نعم", "لا"), ())]
    assert word_alignment("", "") == []
    assert word_alignment("a\u00a0b", "a  b") == [AlignedChunk("equal", ("a", "b"), ("a", "b"))]
