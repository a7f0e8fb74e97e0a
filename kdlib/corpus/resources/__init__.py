"""Shipped text resources: the sentences of the synthetic corpus and the dialect↔MSA lexicon.

`sentences.tsv` holds the Arabic sentences (MSA and the five dialects); `sentences_en.tsv` English ones, of one
variety, EN, that a profile speaks with `data.synthetic.language: en` (a real Whisper's conformance check).

The English sentences are 160 written for kdlib (its licence): plain everyday words, no digits, abbreviations,
contractions, names or spellings that differ between British and American English, so that a reference has one
spelling in every view. They were split once, by a seeded shuffle, before any model heard them: 80 dev sentences
(`sentences_en_dev.tsv`, read by no stage) on which the espeak-ng settings of `params/real-base.yaml` were chosen,
and 80 held-out sentences (`sentences_en.tsv`), the ones the corpus speaks, never used to choose anything. None was
selected by a model's output (an earlier set kept only the sentences whisper-base read exactly)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VARIETIES = ("MSA", "ALG", "JOR", "PAL", "UAE", "YEM")
ENGLISH = "EN"  # the one variety of the English sentences
LANGUAGE_VARIETIES = {"ar": VARIETIES, "en": (ENGLISH,)}  # what `data.synthetic.language` speaks

_HERE = Path(__file__).parent
_SENTENCES_HEADER = ("id", "variety", "text")
_LEXICON_HEADER = ("concept", "variety", "form")


@dataclass(frozen=True)
class Sentence:
    """One shipped sentence: a unique id, its variety (one of VARIETIES) and its reference text."""

    id: str
    variety: str
    text: str


def sentences_path(language: str = "ar") -> Path:
    """Path of the shipped sentences file of `language` (`ar`: Arabic, `en`: English)."""
    return _HERE / ("sentences.tsv" if language == "ar" else f"sentences_{language}.tsv")


def english_dev_sentences_path() -> Path:
    """Path of the English dev sentences, on which the English synthesis settings were chosen (read by no stage)."""
    return _HERE / "sentences_en_dev.tsv"


def lexicon_path() -> Path:
    """Path of the shipped dialect↔MSA lexicon."""
    return _HERE / "lexicon.tsv"


def _read_tsv(
    path: Path, header: tuple[str, str, str], varieties: tuple[str, ...] | None = VARIETIES
) -> list[tuple[int, tuple[str, str, str]]]:
    """Rows of a three-column UTF-8 TSV file with its line numbers; blank lines are skipped.

    Raises ValueError naming the file and line for a wrong header, a wrong number of
    columns, an empty field or a variety (second column) not among `varieties` (if given).
    """
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    expected = "\t".join(header)
    if not lines or lines[0] != expected:
        raise ValueError(f"{path}:1: expected header {expected!r}")
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3 or not all(field.strip() for field in fields):
            raise ValueError(f"{path}:{lineno}: expected 3 non-empty tab-separated fields, got {line!r}")
        if varieties is not None and fields[1] not in varieties:
            raise ValueError(f"{path}:{lineno}: unknown variety {fields[1]!r}")
        rows.append((lineno, (fields[0].strip(), fields[1], fields[2].strip())))
    return rows


def load_sentences(path: Path | None = None, language: str = "ar") -> list[Sentence]:
    """Sentences of `path` (default: the shipped file of `language`), in file order, each of one of the
    language's varieties; duplicate ids raise ValueError."""
    path = sentences_path(language) if path is None else Path(path)
    sentences: list[Sentence] = []
    seen: set[str] = set()
    for lineno, (sentence_id, variety, text) in _read_tsv(path, _SENTENCES_HEADER, LANGUAGE_VARIETIES[language]):
        if sentence_id in seen:
            raise ValueError(f"{path}:{lineno}: duplicate id {sentence_id!r}")
        seen.add(sentence_id)
        sentences.append(Sentence(sentence_id, variety, text))
    return sentences


def load_lexicon_rows(path: Path | None = None) -> list[tuple[str, str, str]]:
    """(concept, variety, form) rows of `path` (default: the shipped lexicon); forms are single words.

    The shipped lexicon covers the embedded varieties; a user's lexicon may name any variety
    (e.g. EGY or MOR for the paper's MGB-3 and MGB-5)."""
    path = lexicon_path() if path is None else Path(path)
    rows = []
    for lineno, row in _read_tsv(path, _LEXICON_HEADER, varieties=VARIETIES if path == lexicon_path() else None):
        if len(row[2].split()) != 1:
            raise ValueError(f"{path}:{lineno}: form {row[2]!r} is not a single word")
        rows.append(row)
    return rows
