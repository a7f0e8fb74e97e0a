"""Whisper's multilingual tokenizer, built offline from openai-whisper's multilingual.tiktoken: the ids of
whisper-large-v2, and the same tokens as openai-whisper's own tokenizer on Arabic text."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdlib.config.vocabulary import LANGUAGES, TIMESTAMPS, VOCAB_SIZE
from kdlib.corpus import resources
from kdlib.models.tokenizer import (
    begin_suppress_tokens,
    multilingual_tokenizer,
    read_ranks,
    special_tokens,
    suppress_tokens,
    tiktoken_file,
    vocab_and_merges,
)

whisper_tokenizer = pytest.importorskip("whisper.tokenizer", reason="openai-whisper (the smoke extra) is not installed")

TEXTS = [
    "كَتَبَ الوَلَدُ الدَّرْسَ",  # diacritics
    "ٱلْحَمْدُ لِلَّهِ رَبِّ ٱلْعَٰلَمِينَ",  # alef wasla, dagger alef
    "الأرقام ٠١٢٣٤٥٦٧٨٩ و 2024، والنسبة 15%؟",  # Arabic-Indic and ASCII digits, Arabic punctuation
    "جـــميل جداً!! ﻻ ﷲ",  # tatweel, presentation forms
    "Whisper يكتب: «مرحبا» — hello, WORLD.\n\tسطر  جديد   ",  # Latin, quotes, whitespace runs
    " بداية بمسافة",
    "🙂 إيموجي ♪♪ [موسيقى]",
]


@pytest.fixture(scope="module")
def tokenizer():
    return multilingual_tokenizer()


@pytest.fixture(scope="module")
def reference():
    return whisper_tokenizer.get_tokenizer(multilingual=True, num_languages=99, language="ar", task="transcribe")


def test_the_ids_are_whisper_large_v2s(tokenizer) -> None:
    ids = {
        "<|endoftext|>": 50257,
        "<|startoftranscript|>": 50258,
        "<|en|>": 50259,
        "<|ar|>": 50272,
        "<|translate|>": 50358,
        "<|transcribe|>": 50359,
        "<|startoflm|>": 50360,
        "<|startofprev|>": 50361,
        "<|nospeech|>": 50362,
        "<|notimestamps|>": 50363,
        "<|0.00|>": 50364,
        "<|0.02|>": 50365,
        "<|30.00|>": 51864,
    }
    assert {token: tokenizer.convert_tokens_to_ids(token) for token in ids} == ids
    assert len(tokenizer) == VOCAB_SIZE == 51865
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id) == (50257, 50257, 50257)
    assert tokenizer.all_special_ids[-1] == 50363  # transformers finds the first timestamp right after it
    assert tokenizer.convert_tokens_to_ids("<|30.00|>") - tokenizer.convert_tokens_to_ids("<|0.00|>") == 1500


def test_every_special_token_has_openai_whispers_id(tokenizer, reference) -> None:
    specials = reference.encoding._special_tokens
    assert len(specials) == len(special_tokens()) + len(TIMESTAMPS)
    assert {token: tokenizer.convert_tokens_to_ids(token) for token in specials} == specials
    assert list(LANGUAGES) == list(whisper_tokenizer.LANGUAGES)
    assert reference.sot_sequence_including_notimestamps == tuple(
        tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|ar|>", "<|transcribe|>", "<|notimestamps|>"])
    )


@pytest.mark.parametrize("text", TEXTS)
def test_encoding_and_decoding_match_openai_whisper(tokenizer, reference, text: str) -> None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert ids == reference.encode(text)
    assert tokenizer.decode(ids) == reference.decode(ids) == text


def test_every_shipped_sentence_round_trips_as_in_openai_whisper(tokenizer, reference) -> None:
    for sentence in resources.load_sentences():
        ids = tokenizer.encode(sentence.text, add_special_tokens=False)
        assert ids == reference.encode(sentence.text), sentence.id
        assert tokenizer.decode(ids) == sentence.text, sentence.id


def test_timestamps_and_specials_are_dropped_from_decoded_text(tokenizer, reference) -> None:
    text = "مرحبا بكم"
    ids = [*reference.sot_sequence, 50364, *reference.encode(text), 50414, reference.eot]
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert tokenizer.decode(ids, decode_with_timestamps=True, skip_special_tokens=True) == f"<|0.00|>{text}<|1.00|>"


def test_suppressed_tokens_are_whispers(tokenizer, reference) -> None:
    expected = {*reference.non_speech_tokens, reference.transcribe, reference.translate, reference.sot}
    expected |= {reference.sot_prev, reference.sot_lm, reference.no_speech}
    assert suppress_tokens(tokenizer) == sorted(expected)
    assert begin_suppress_tokens(tokenizer) == [*reference.encode(" "), reference.eot] == [220, 50257]


def test_the_merges_reproduce_tiktoken_on_every_token() -> None:
    ranks = read_ranks(tiktoken_file())
    vocab, merges = vocab_and_merges(ranks)
    assert len(vocab) == len(ranks) == 50257 and sorted(vocab.values()) == list(range(50257))
    assert len(merges) == 50000  # 256 single bytes, one merge for every other token but one unreachable
    assert len(set(merges)) == len(merges)


def test_it_saves_and_loads_back_with_the_same_ids(tokenizer, tmp_path: Path) -> None:
    from transformers import WhisperTokenizer

    tokenizer.save_pretrained(tmp_path)
    loaded = WhisperTokenizer.from_pretrained(tmp_path)
    probe = ["<|ar|>", "<|notimestamps|>", "<|0.00|>", "<|30.00|>"]
    assert loaded.convert_tokens_to_ids(probe) == tokenizer.convert_tokens_to_ids(probe)
    assert loaded.encode(TEXTS[0], add_special_tokens=False) == tokenizer.encode(TEXTS[0], add_special_tokens=False)
    assert len(loaded) == VOCAB_SIZE


def test_a_missing_tiktoken_file_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match=r"pip install -e '\.\[smoke\]'"):
        tiktoken_file()
