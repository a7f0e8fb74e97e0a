"""Stage 05: automatic categorisation of transcription errors for the paper's error analysis.

Each prediction is compared with its reference in the ``normalized`` view and given the
first category whose rule holds, in this precedence order (see :class:`ErrorRules` for
the thresholds):

1. ``correct``: no word error.
2. ``empty``: nothing transcribed for a non-empty reference.
3. ``hallucination``: anything transcribed for an empty reference; or a hypothesis much
   longer than the reference (more than ``length_ratio`` × its words and at least
   ``min_extra_words`` more); or insertions dominating the errors (at least
   ``min_extra_words`` of them); or a loop, an n-gram (n ≤ ``max_ngram``) repeated at least
   ``min_repeats`` times in a row, and more times in a row than in the reference.
4. ``incomplete``: the hypothesis is a proper prefix of the reference (it stops early), or
   deletions dominate the errors (at least ``min_missing_words`` of them).
5. ``dialectal``: among the substituted word pairs, dialect↔MSA (or dialect↔dialect) swaps
   of one concept, per a :class:`DialectLexicon`, make up at least ``dialect_share``.
6. ``substitution``: every other error; substitution-dominated by construction.

An edit type dominates when its share of the errors (substitutions + deletions +
insertions) is strictly above ``dominant_share``. Product (`kdlib.storage.paths`): `categories.parquet`,
every prediction of stage 04 with its category.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kdlib.config import ErrorRules, NormalizationConfig, Params
from kdlib.corpus.resources import lexicon_path, load_lexicon_rows
from kdlib.scoring.metrics import ErrorCounts, utterance_counts, word_alignment
from kdlib.scoring.normalizers import normalize
from kdlib.stages.products import read_predictions
from kdlib.storage.cache import replacing_file
from kdlib.storage.paths import RunLayout

CORRECT = "correct"
EMPTY = "empty"
HALLUCINATION = "hallucination"
INCOMPLETE = "incomplete"
DIALECTAL = "dialectal"
SUBSTITUTION = "substitution"
CATEGORIES = (CORRECT, EMPTY, HALLUCINATION, INCOMPLETE, DIALECTAL, SUBSTITUTION)


@dataclass(frozen=True)
class DialectLexicon:
    """Word forms of concepts in several varieties (MSA, ALG, JOR, PAL, UAE, YEM, ...).

    ``varieties`` maps each form, in the normalized view of ``config``, to the concepts it
    expresses and, for each, the varieties in which it does.
    """

    varieties: Mapping[str, Mapping[str, frozenset[str]]]
    config: NormalizationConfig = NormalizationConfig()

    @classmethod
    def from_rows(
        cls, rows: Iterable[tuple[str, str, str]], config: NormalizationConfig = NormalizationConfig()
    ) -> DialectLexicon:
        """From ``(concept, variety, form)`` rows."""
        table: defaultdict[str, defaultdict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for concept, variety, form in rows:
            table[normalize(form, config)][concept.strip()].add(variety.strip())
        frozen = {
            form: {concept: frozenset(varieties) for concept, varieties in concepts.items()}
            for form, concepts in table.items()
        }
        return cls(frozen, config)

    @classmethod
    def from_tsv(cls, path: str | Path, config: NormalizationConfig = NormalizationConfig()) -> DialectLexicon:
        """From a UTF-8 TSV file with header ``concept<TAB>variety<TAB>form`` (blank lines skipped)."""
        return cls.from_rows(load_lexicon_rows(Path(path)), config)

    def same_concept_other_variety(self, ref_word: str, hyp_word: str) -> bool:
        """Whether the words express a common concept but share no variety in which they do
        (e.g. the Palestinian بدي read as the MSA أريد)."""
        ref = self.varieties.get(normalize(ref_word, self.config), {})
        hyp = self.varieties.get(normalize(hyp_word, self.config), {})
        return any(concept in hyp and not ref[concept] & hyp[concept] for concept in ref)


def _longest_runs(words: tuple[str, ...], max_n: int) -> dict[tuple[str, ...], int]:
    """The most consecutive repetitions of each n-gram of `words`, 1 ≤ n ≤ `max_n`."""
    runs: dict[tuple[str, ...], int] = {}
    for n in range(1, max_n + 1):
        for start in range(len(words) - n + 1):
            gram = words[start : start + n]
            if start >= n and words[start - n : start] == gram:
                continue  # inside a run, already counted from its first occurrence
            end = start + n
            while words[end : end + n] == gram:
                end += n
            runs[gram] = max(runs.get(gram, 0), (end - start) // n)
    return runs


def _has_loop(ref_words: tuple[str, ...], hyp_words: tuple[str, ...], rules: ErrorRules) -> bool:
    ref_runs = _longest_runs(ref_words, rules.max_ngram)
    return any(
        repeats >= rules.min_repeats and repeats > ref_runs.get(gram, 0)
        for gram, repeats in _longest_runs(hyp_words, rules.max_ngram).items()
    )


def _dominates(count: int, counts: ErrorCounts, minimum: int, rules: ErrorRules) -> bool:
    return count >= minimum and count > rules.dominant_share * counts.errors


def _is_hallucination(
    ref_words: tuple[str, ...], hyp_words: tuple[str, ...], counts: ErrorCounts, rules: ErrorRules
) -> bool:
    extra = len(hyp_words) - len(ref_words)
    return (
        not ref_words
        or (len(hyp_words) > rules.length_ratio * len(ref_words) and extra >= rules.min_extra_words)
        or _dominates(counts.insertions, counts, rules.min_extra_words, rules)
        or _has_loop(ref_words, hyp_words, rules)
    )


def _is_incomplete(
    ref_words: tuple[str, ...], hyp_words: tuple[str, ...], counts: ErrorCounts, rules: ErrorRules
) -> bool:
    stops_early = len(hyp_words) < len(ref_words) and ref_words[: len(hyp_words)] == hyp_words
    return stops_early or _dominates(counts.deletions, counts, rules.min_missing_words, rules)


def _is_dialectal(reference: str, hypothesis: str, lexicon: DialectLexicon, rules: ErrorRules) -> bool:
    pairs = [
        pair
        for chunk in word_alignment(reference, hypothesis)
        if chunk.op == "substitute"
        for pair in zip(chunk.ref_words, chunk.hyp_words)
    ]
    swaps = sum(lexicon.same_concept_other_variety(ref, hyp) for ref, hyp in pairs)
    return swaps > 0 and swaps >= rules.dialect_share * len(pairs)


def categorise(
    reference: str,
    hypothesis: str,
    lexicon: DialectLexicon | None = None,
    rules: ErrorRules = ErrorRules(),
    config: NormalizationConfig = NormalizationConfig(),
) -> str:
    """The error category of one prediction, in the normalized view; without a lexicon no
    prediction is ``dialectal``."""
    reference, hypothesis = normalize(reference, config), normalize(hypothesis, config)
    ref_words, hyp_words = tuple(reference.split()), tuple(hypothesis.split())
    counts = utterance_counts([reference], [hypothesis], "word")[0]
    if counts.errors == 0:
        return CORRECT
    if not hyp_words:
        return EMPTY
    if _is_hallucination(ref_words, hyp_words, counts, rules):
        return HALLUCINATION
    if _is_incomplete(ref_words, hyp_words, counts, rules):
        return INCOMPLETE
    if lexicon is not None and _is_dialectal(reference, hypothesis, lexicon, rules):
        return DIALECTAL
    return SUBSTITUTION


def categorise_frame(
    df: pd.DataFrame,
    lexicon: DialectLexicon | None = None,
    rules: ErrorRules = ErrorRules(),
    config: NormalizationConfig = NormalizationConfig(),
    ref_col: str = "reference",
    hyp_col: str = "hypothesis",
) -> pd.Series:
    """:func:`categorise` for each row (missing text counts as empty), as a Series named
    ``category`` with `df`'s index."""
    texts = zip(df[ref_col].fillna(""), df[hyp_col].fillna(""))
    return pd.Series(
        [categorise(ref, hyp, lexicon, rules, config) for ref, hyp in texts], index=df.index, name="category"
    )


def category_shares(df: pd.DataFrame, by: Sequence[str], category_col: str = "category") -> pd.DataFrame:
    """Tidy ``count`` and ``share`` of each error category (all but ``correct``) per group of
    the `by` columns; shares are over the group's erroneous predictions (NaN if it has none)."""
    counts = (
        df.groupby(list(by))[category_col]
        .value_counts()
        .unstack(fill_value=0)
        .reindex(columns=list(CATEGORIES[1:]), fill_value=0)
    )
    shares = counts.div(counts.sum(axis=1), axis=0)
    return (
        pd.concat({"count": counts.stack(), "share": shares.stack()}, axis=1)
        .rename_axis([*by, "category"])
        .reset_index()
    )


def build(params: Params) -> dict:
    """Stage 05: every prediction of stage 04 with its error category."""
    predictions = read_predictions(params)
    lexicon = DialectLexicon.from_tsv(lexicon_path(), params.normalization)
    predictions["category"] = categorise_frame(predictions, lexicon, params.error_rules, params.normalization)
    with replacing_file(RunLayout(params).categories) as temporary:
        predictions.to_parquet(temporary, index=False)
    return {
        "predictions": len(predictions),
        "categories": predictions["category"].value_counts().sort_index().to_dict(),
    }
