"""The shipped sentences and dialect↔MSA lexicon: loading, validation and content checks."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from kdlib.corpus import resources
from kdlib.corpus.resources import VARIETIES, Sentence, load_lexicon_rows, load_sentences

DIALECTS = VARIETIES[1:]
MIN_SENTENCES = {"MSA": 160, **{dialect: 50 for dialect in DIALECTS}}
DIACRITICS = re.compile("[\u064b-\u0652]")
ARABIC_LETTER = re.compile("[\u0621-\u063a\u0641-\u064a\u0671-\u06d3]")
PUNCTUATION = re.compile(r"[^\w\s]")
CLITICS = ("وال", "بال", "فال", "عال", "لل", "ال", "و", "ب", "ل")


def _words(text: str) -> list[str]:
    """Words of a text, diacritics and punctuation removed."""
    return PUNCTUATION.sub(" ", DIACRITICS.sub("", text)).split()


def _word_forms(word: str) -> set[str]:
    """A word and its forms with one common proclitic (and/with/to/the) removed."""
    forms = {word}
    for clitic in CLITICS:
        if word.startswith(clitic) and len(word) - len(clitic) >= 2:
            forms.add(word[len(clitic) :])
    return forms


@pytest.fixture(scope="module")
def sentences() -> list[Sentence]:
    return load_sentences()


@pytest.fixture(scope="module")
def lexicon() -> list[tuple[str, str, str]]:
    return load_lexicon_rows()


def test_shipped_files_exist() -> None:
    assert resources.sentences_path().is_file()
    assert resources.lexicon_path().is_file()


def test_variety_minimum_counts(sentences: list[Sentence]) -> None:
    counts = Counter(s.variety for s in sentences)
    assert set(counts) == set(VARIETIES)
    for variety, minimum in MIN_SENTENCES.items():
        assert counts[variety] >= minimum, variety


def test_ids_unique_and_well_formed(sentences: list[Sentence]) -> None:
    ids = [s.id for s in sentences]
    assert len(ids) == len(set(ids))
    for s in sentences:
        assert re.fullmatch(rf"{s.variety.lower()}-\d{{4}}", s.id), s.id


def test_texts_unique_even_without_diacritics(sentences: list[Sentence]) -> None:
    texts = [" ".join(_words(s.text)) for s in sentences]
    duplicates = [t for t, n in Counter(texts).items() if n > 1]
    assert not duplicates


def test_texts_are_short_arabic(sentences: list[Sentence]) -> None:
    for s in sentences:
        assert "\t" not in s.text and "\n" not in s.text, s.id
        letters = [c for c in s.text if c.isalpha()]
        arabic = sum(bool(ARABIC_LETTER.match(c)) for c in letters)
        assert arabic / len(letters) >= 0.7, s.id
        assert 3 <= len(_words(s.text)) <= 10, s.id


def test_some_texts_are_diacritised(sentences: list[Sentence]) -> None:
    by_variety: dict[str, list[Sentence]] = defaultdict(list)
    for s in sentences:
        by_variety[s.variety].append(s)
    for variety, group in by_variety.items():
        share = sum(bool(DIACRITICS.search(s.text)) for s in group) / len(group)
        assert share >= (0.2 if variety == "MSA" else 0.1), variety


def test_normaliser_material_present(sentences: list[Sentence]) -> None:
    texts = [s.text for s in sentences]
    assert sum(bool(re.search("[\u0660-\u0669]", t)) for t in texts) >= 3
    assert any(re.search("[A-Za-z]", t) for t in texts)


def test_lexicon_shape(lexicon: list[tuple[str, str, str]]) -> None:
    concepts = {concept for concept, _, _ in lexicon}
    assert len(concepts) >= 30
    assert {concept for concept, variety, _ in lexicon if variety == "MSA"} == concepts
    for dialect in DIALECTS:
        assert len({c for c, v, _ in lexicon if v == dialect}) >= 15, dialect
    assert len(lexicon) == len(set(lexicon))
    for _, _, form in lexicon:
        assert re.fullmatch("[\u0621-\u064a]+", form), form


def test_dialect_forms_occur_in_sentences(sentences: list[Sentence], lexicon: list[tuple[str, str, str]]) -> None:
    for dialect in DIALECTS:
        vocabulary = {
            form for s in sentences if s.variety == dialect for word in _words(s.text) for form in _word_forms(word)
        }
        forms = {form for _, variety, form in lexicon if variety == dialect}
        found = forms & vocabulary
        assert len(found) / len(forms) >= 0.6, (dialect, sorted(forms - found))


@pytest.mark.parametrize(
    "body, line",
    [
        ("msa-0001\tMSA\tذهب الولد إلى المدرسة.\nmsa-0002\tMSA\n", 3),
        ("msa-0001\tMSA\tذهب الولد إلى المدرسة.\nxxx-0001\tXXX\tكلام\n", 3),
        ("msa-0001\tMSA\tذهب الولد.\nmsa-0001\tMSA\tجاء الولد.\n", 3),
        ("msa-0001\tMSA\t\n", 2),
    ],
)
def test_malformed_sentences_name_the_line(tmp_path: Path, body: str, line: int) -> None:
    path = tmp_path / "sentences.tsv"
    path.write_text("id\tvariety\ttext\n" + body, encoding="utf-8")
    with pytest.raises(ValueError, match=rf"sentences\.tsv:{line}:"):
        load_sentences(path)


def test_wrong_header_raises(tmp_path: Path) -> None:
    path = tmp_path / "sentences.tsv"
    path.write_text("id\ttext\nmsa-0001\tذهب الولد.\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"sentences\.tsv:1:"):
        load_sentences(path)


def test_malformed_lexicon_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "lexicon.tsv"
    path.write_text("concept\tvariety\tform\nnow\tMSA\tالآن\nnow\tJOR\tهلأ هسه\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"lexicon\.tsv:3:"):
        load_lexicon_rows(path)
