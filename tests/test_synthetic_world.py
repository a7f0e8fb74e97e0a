"""The simulated world of the embedded corpus: held-out sentences and each phenomenon's mechanism."""

from __future__ import annotations

import random
import re
from dataclasses import replace
from pathlib import Path

import datasets
import numpy as np
import pytest

from kdlib.config import Params, SyntheticCorpusParams, load_params
from kdlib.corpus import preparation as data
from kdlib.corpus import synthesis as synth
from kdlib.corpus.grammar import Grammar, distinct_meanings, draw_meaning, read_grammar
from kdlib.corpus.resources import VARIETIES, load_lexicon_rows

REPO = Path(__file__).resolve().parents[1]


def sentences_of(plan: list[synth.Utterance], split_test) -> set[str]:
    """Every sentence heard or read in the clips of the splits `split_test` accepts."""
    return {
        sentence
        for u in plan
        if split_test(u.split)
        for sentence in (*u.spoken, *([u.text] if len(u.spoken) < 2 else []))
        if sentence
    }


@pytest.fixture(scope="module")
def tiny_plan() -> list[synth.Utterance]:
    return synth.plan_utterances(load_params(REPO / "params" / "tiny.yaml").data.synthetic)


def test_test_sentences_are_never_heard_by_the_teacher_nor_in_the_pool(tiny_plan) -> None:
    tests = sentences_of(tiny_plan, lambda split: split.startswith("test_"))
    teacher = sentences_of(tiny_plan, lambda split: split == synth.TEACHER_SPLIT)
    pool = sentences_of(tiny_plan, lambda split: split == synth.POOL_SPLIT)
    assert len(tests) > 200 and len(teacher) > 2000 and len(pool) > 800
    assert not tests & teacher, sorted(tests & teacher)[:5]
    assert not tests & pool, sorted(tests & pool)[:5]
    # nor any MSA caption of a dialect clip the teacher heard
    captions = {u.text for u in tiny_plan if u.phenomenon == "msa_subtitle"}
    assert captions and not captions & tests


def test_each_variety_gets_the_sentences_asked_for(tiny_plan) -> None:
    settings = load_params(REPO / "params" / "tiny.yaml").data.synthetic
    dealt = synth.deal_sentences(settings)
    for variety in VARIETIES:
        parts = dealt[variety]
        assert len(parts["test"]) == settings.test_sentences and len(parts["pool"]) == settings.pool_sentences
        teacher = settings.teacher_sentences if variety == "MSA" else settings.teacher_dialect_sentences
        assert len(parts["teacher"]) == teacher
        assert all(s.variety == variety for part in parts.values() for s in part)
    ids = [s.id for parts in dealt.values() for part in parts.values() for s in part]
    assert len(ids) == len(set(ids))
    assert len({u.id for u in tiny_plan}) == len(tiny_plan)


def test_msa_subtitles_caption_dialect_speech_with_its_msa_rendering() -> None:
    def teacher_dialect(share: float) -> list[synth.Utterance]:
        settings = SyntheticCorpusParams(
            test_sentences=2, pool_sentences=3, teacher_sentences=5, teacher_dialect_sentences=80,
            msa_subtitle_fraction=share,
        )  # fmt: skip
        plan = synth.plan_utterances(settings)
        return [u for u in plan if u.split == synth.TEACHER_SPLIT and u.variety != "MSA" and u.spoken]

    never, always = teacher_dialect(0.0), teacher_dialect(1.0)
    assert all(u.text == u.spoken[0] and u.phenomenon == "plain" for u in never)
    subtitled = [u for u in always if u.phenomenon == "msa_subtitle"]
    templated = [
        u for u in always if re.search(r"-t\d{5}-", u.id)
    ]  # hand-written dialect sentences have no MSA rendering
    assert len(subtitled) > 0.9 * len(templated) > 100
    assert sum(u.text != u.spoken[0] for u in subtitled) > 0.9 * len(subtitled)  # a few render alike in MSA
    lexicon = {form for _, variety, form in load_lexicon_rows() if variety == "MSA"}
    assert all(set(u.text.split()) - set(u.spoken[0].split()) <= lexicon | {"إلى", "في", "مع"} for u in subtitled)


def test_nonspeech_clips_are_captioned_as_their_split_says(tiny_plan) -> None:
    settings = load_params(REPO / "params" / "tiny.yaml").data.synthetic
    for split in (synth.TEACHER_SPLIT, synth.POOL_SPLIT, synth.test_split("PAL")):
        clips = [u for u in tiny_plan if u.split == split]
        silent = [u for u in clips if u.nonspeech is not None]
        assert len(silent) == round(settings.nonspeech_fraction * (len(clips) - len(silent)))
        assert all(not u.spoken and u.phenomenon == "nonspeech" for u in silent)
        if split == synth.POOL_SPLIT:  # stray captions of other pool clips
            assert all(u.text for u in silent) and {u.text for u in silent} <= {u.text for u in clips}
        else:
            assert all(u.text == "" for u in silent)
        if split == synth.TEACHER_SPLIT:
            assert {u.nonspeech for u in silent} == {"noise"}  # the teacher never hears tones


def test_long_cut_and_fast_clips_sound_as_they_should() -> None:
    settings = SyntheticCorpusParams(
        test_sentences=2, pool_sentences=2, teacher_sentences=1, teacher_dialect_sentences=1
    )
    plain = next(u for u in synth.plan_utterances(settings) if u.split == synth.test_split("MSA"))
    plain = replace(plain, spoken=("أريد أذهب إلى السوق الآن",), text="أريد أذهب إلى السوق الآن", snr_db=None)
    seconds = {}
    for name, utterance in {
        "plain": plain,
        "cut": replace(plain, cut_keep=0.4),
        "long": replace(plain, spoken=(*plain.spoken, "أين الكتاب غدا")),
        "fast": replace(plain, speed_wpm=300),
        "tones": replace(plain, spoken=(), nonspeech="tones"),
    }.items():
        audio = synth.speak(utterance, 16_000)
        assert audio.dtype == np.float32 and np.isfinite(audio).all() and np.abs(audio).max() <= 0.9 + 1e-6
        seconds[name] = len(audio) / 16_000
    padding = 0.8  # at most 0.4 s of silence on each side
    assert seconds["cut"] < 0.4 * seconds["plain"] + padding
    assert seconds["long"] > seconds["plain"] + 0.5
    assert seconds["fast"] < seconds["plain"]
    assert 1.0 <= seconds["tones"] <= 4.0 + padding


def test_phenomena_follow_their_shares() -> None:
    base = SyntheticCorpusParams(test_sentences=60, pool_sentences=60, teacher_sentences=1, teacher_dialect_sentences=1)
    none = replace(base, long_fraction=0.0, cut_fraction=0.0, fast_fraction=0.0)
    assert {u.phenomenon for u in synth.plan_utterances(none) if u.split != synth.TEACHER_SPLIT} <= {
        "plain",
        "nonspeech",
    }
    every = replace(base, long_fraction=0.3, cut_fraction=0.3, fast_fraction=0.3)
    clips = [u for u in synth.plan_utterances(every) if u.split == synth.POOL_SPLIT and u.spoken]
    shares = {kind: sum(u.phenomenon == kind for u in clips) / len(clips) for kind in ("long", "cut", "fast")}
    assert all(0.2 < share < 0.4 for share in shares.values()), shares
    assert all(len(u.spoken) == 2 and u.text == " ".join(u.spoken) for u in clips if u.phenomenon == "long")
    assert all(0.35 <= u.cut_keep <= 0.7 for u in clips if u.phenomenon == "cut")
    assert all(240 <= u.speed_wpm <= 320 for u in clips if u.phenomenon == "fast")


def test_the_grammar_speaks_the_lexicon() -> None:
    grammar = read_grammar()
    lexicon = set(load_lexicon_rows())
    for concept, forms in grammar.concepts.items():
        for variety, form in forms.items():
            assert (concept, variety, form) in lexicon, (concept, variety, form)
    meaning = draw_meaning(grammar, random.Random(3))
    renderings = {variety: meaning.render(grammar, variety) for variety in VARIETIES}
    assert len(set(renderings.values())) > 1 and all("{" not in text for text in renderings.values())


def test_a_grammar_too_small_is_a_clear_error() -> None:
    small = Grammar(concepts={}, words={}, fillers={"place": ("السوق", "البيت")}, templates=("في {place}",))
    assert len(distinct_meanings(small, 2, 0)) == 2
    with pytest.raises(ValueError, match="only 2 distinct sentences of the 3"):
        distinct_meanings(small, 3, 0)


def test_each_split_is_built_once_on_its_own(ci_params: Params) -> None:
    settings = ci_params.data.synthetic
    first = synth.build_split(settings, "test_MSA", ci_params.cache_path)
    assert synth.build_split(settings, "test_MSA", ci_params.cache_path) == first
    assert synth.build_split(settings, "test_YEM", ci_params.cache_path) != first
    split = datasets.load_from_disk(str(first))
    planned = [u for u in synth.plan_utterances(settings) if u.split == "test_MSA"]
    assert split["id"] == [u.id for u in planned] and split["phenomenon"] == [u.phenomenon for u in planned]
    with pytest.raises(ValueError, match="no split 'test_EGY'"):
        synth.build_split(settings, "test_EGY", ci_params.cache_path)


def test_only_the_teacher_learns_from_empty_captions(ci_params: Params) -> None:
    spec = ci_params.data.teacher_train[0]
    teacher, pool = data.prepare(spec, ci_params, "teacher"), data.prepare(spec, ci_params, "train")
    empty = teacher.dataset.filter(lambda row: row["text"] == "")
    assert len(empty) > 0 and len(pool.dataset) == len(teacher.dataset) - len(empty)
    reasons = pool.skipped.groupby("reason").size().to_dict()
    assert reasons.get("empty_reference") == len(empty)


# ------------------------------------------------------------- what the committed tiny profile shows

TEACHER = REPO / "models" / "tiny-teacher"
TABLES = REPO / "reports" / "tiny" / "tables"


def test_the_shipped_teacher_is_a_small_safe_hub_style_checkpoint() -> None:
    from kdlib.models.cards import read_facts
    from kdlib.models.teacher import local_teacher

    params = load_params(REPO / "params" / "tiny.yaml")
    assert params.teacher.source == "local" and local_teacher(params) == TEACHER
    files = {path.name for path in TEACHER.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "README.md"} <= files
    assert not {name for name in files if name.endswith((".bin", ".pt", ".pkl", ".pth"))}  # nothing to unpickle
    assert sum(path.stat().st_size for path in TEACHER.iterdir()) <= 25 * 2**20
    facts = read_facts(TEACHER)
    assert facts is not None and facts.kind == "teacher" and facts.data_key and facts.training_seconds
    assert set(facts.test_wer) == {spec.name for spec in params.data.test}
    dialects = [wer for name, wer in facts.test_wer.items() if name != "MSA"]
    assert facts.test_wer["MSA"] <= 0.40 < min(dialects)  # generalises to held-out MSA; dialects clearly worse


def test_a_missing_local_teacher_says_how_to_make_it(ci_params: Params, tmp_path: Path) -> None:
    from kdlib.models.teacher import local_teacher

    params = replace(ci_params, teacher=replace(ci_params.teacher, source="local", model=str(tmp_path / "absent")))
    with pytest.raises(FileNotFoundError, match="--retrain"):
        local_teacher(params)


def test_the_committed_tiny_reports_show_every_phenomenon() -> None:
    import pandas as pd

    categories = pd.read_csv(TABLES / "error_categories_by_model.csv")
    teacher = categories[categories["model"] == "teacher"].set_index("category")["count"]
    for category in ("empty", "hallucination", "incomplete", "dialectal", "substitution"):
        assert teacher[category] > 0, category
    sweep = pd.read_csv(TABLES / "filter_sweep_counts.csv")
    kept = sweep[(sweep["variety"] == "all") & (sweep["pool"] == "default")].set_index("threshold")["kept"]
    ordered = [kept[str(t)] if str(t) in kept.index else kept[t] for t in ("10", "20", "40", "80", "none")]
    assert all(a < b for a, b in zip(ordered, ordered[1:])), ordered
