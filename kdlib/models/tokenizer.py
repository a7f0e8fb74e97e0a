"""Whisper's multilingual tokenizer, built offline from the `multilingual.tiktoken` file openai-whisper ships.

openai-whisper (`pip install openai-whisper`, kdlib's `smoke` extra) keeps the byte-level BPE of the
multilingual Whisper models as a tiktoken file: one line per token, its bytes in base64 and its rank,
which is its id. This module turns that file into a transformers `WhisperTokenizer`, with no network:

- the vocabulary is the file's ranks, each token's bytes written with GPT-2's byte-to-unicode alphabet;
- the merges are recovered from the ranks as tiktoken applies them: a token of rank r is the merge of
  the two parts BPE reaches on its bytes with the tokens of rank below r (a token BPE cannot reach
  is kept in the vocabulary, without a merge);
- the special tokens follow it in openai-whisper's order (`whisper/tokenizer.py`, `get_encoding`):
  `<|endoftext|>`, `<|startoftranscript|>`, one token per language (the first `languages` codes
  of `LANGUAGES`: 99 for large-v2, 100 for large-v3), `<|translate|>`, `<|transcribe|>`,
  `<|startoflm|>`, `<|startofprev|>`, `<|nospeech|>`, `<|notimestamps|>`, then the 1,501 timestamp
  tokens `<|0.00|>` … `<|30.00|>` (added as ordinary tokens, as on the hub, so that decoding drops them).

For whisper-large-v2 this gives its ids: `<|endoftext|>` 50257, `<|startoftranscript|>` 50258, `<|ar|>`
50272, `<|transcribe|>` 50359, `<|notimestamps|>` 50363, `<|0.00|>` 50364, and 51,865 tokens in all, its
`vocab_size` (`tests/test_whisper_tokenizer.py` checks the ids, and that encoding and decoding Arabic give what
openai-whisper's own tokenizer gives). `suppress_tokens` and `begin_suppress_tokens` are the lists Whisper's
decoding suppresses (its `non_speech_tokens` and the special tokens), as in the hub's generation config.
"""

from __future__ import annotations

import base64
import importlib.util
from collections.abc import Sequence
from pathlib import Path

from tokenizers import AddedToken
from transformers import WhisperTokenizer

from kdlib.config.vocabulary import LANGUAGES, LARGE_V2_LANGUAGES, TASKS, TIMESTAMPS


def special_tokens(languages: int | Sequence[str] = LARGE_V2_LANGUAGES, tasks: Sequence[str] = TASKS) -> list[str]:
    """Whisper's special tokens in id order, before the timestamps (openai-whisper's `get_encoding`): its first
    `languages` language tokens, or those of the codes `languages` (a small Whisper's), and its task tokens."""
    codes = LANGUAGES[:languages] if isinstance(languages, int) else languages
    return [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *(f"<|{code}|>" for code in codes),
        *(f"<|{task}|>" for task in tasks),
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nospeech|>",
        "<|notimestamps|>",
    ]


def tiktoken_file() -> Path:
    """openai-whisper's `assets/multilingual.tiktoken`, found without importing the package."""
    spec = importlib.util.find_spec("whisper")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    path = next((Path(f) / "assets" / "multilingual.tiktoken" for f in folders), None)
    if path is None or not path.is_file():
        raise RuntimeError(
            "Whisper's multilingual tokenizer is built from openai-whisper's multilingual.tiktoken, and "
            "openai-whisper is not installed: pip install -e '.[smoke]' (or pip install openai-whisper)"
        )
    return path


def read_ranks(path: str | Path) -> dict[bytes, int]:
    """A tiktoken file's token bytes → rank."""
    ranks = {}
    for line in Path(path).read_text(encoding="ascii").splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def byte_alphabet() -> dict[int, str]:
    """GPT-2's printable stand-in of every byte (byte-level BPE vocabularies are written in it)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            mapping[byte] = chr(byte)
        else:
            mapping[byte] = chr(256 + extra)
            extra += 1
    return mapping


def _bpe(ranks: dict[bytes, int], token: bytes, below: int) -> list[bytes]:
    """The parts BPE reaches on `token`'s bytes merging only tokens of rank < `below` (tiktoken's order)."""
    parts = [bytes([byte]) for byte in token]
    while len(parts) > 1:
        best, best_rank = None, below
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < best_rank:
                best, best_rank = i, rank
        if best is None:
            break
        parts[best : best + 2] = [parts[best] + parts[best + 1]]
    return parts


def vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE vocabulary and merge list equivalent to tiktoken `ranks`."""
    alphabet = byte_alphabet()

    def text(token: bytes) -> str:
        return "".join(alphabet[byte] for byte in token)

    vocab = {text(token): rank for token, rank in ranks.items()}
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) > 1:
            parts = _bpe(ranks, token, rank)
            if len(parts) == 2:
                merges.append((text(parts[0]), text(parts[1])))
    return vocab, merges


def multilingual_tokenizer(
    path: str | Path | None = None, languages: int = LARGE_V2_LANGUAGES, model_max_length: int = 448
) -> WhisperTokenizer:
    """Whisper's multilingual tokenizer (large-v2's with the default 99 languages) from a tiktoken file
    (default: openai-whisper's `multilingual.tiktoken`)."""
    if not 1 <= languages <= len(LANGUAGES):
        raise ValueError(f"Whisper has 1..{len(LANGUAGES)} language tokens, not {languages}")
    ranks = read_ranks(tiktoken_file() if path is None else path)
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise ValueError(f"{path}: the ranks are not 0..{len(ranks) - 1}")
    vocab, merges = vocab_and_merges(ranks)
    tokenizer = WhisperTokenizer(
        vocab=vocab, merges=merges, pad_token="<|endoftext|>", model_max_length=model_max_length
    )  # <|endoftext|> (bos, eos, unk and padding) comes first, right after the text tokens
    specials = special_tokens(languages)
    tokenizer.add_special_tokens({"additional_special_tokens": specials[1:]})
    tokenizer.add_tokens([AddedToken(stamp, special=False, normalized=False) for stamp in TIMESTAMPS])
    expected = {token: len(ranks) + i for i, token in enumerate([*specials, *TIMESTAMPS])}
    found = dict(zip(expected, tokenizer.convert_tokens_to_ids(list(expected))))
    if found != expected or len(tokenizer) != len(ranks) + len(expected):
        wrong = next((token for token in expected if found[token] != expected[token]), "its length")
        raise RuntimeError(f"Whisper's tokenizer came out with other ids than openai-whisper's (first: {wrong})")
    return tokenizer


def suppress_tokens(tokenizer: WhisperTokenizer) -> list[int]:
    """What Whisper's decoding suppresses by default (`suppress_tokens="-1"`): its non-speech tokens (speaker
    tags, music symbols, brackets; openai-whisper's `non_speech_tokens`) and the special tokens that never
    occur in a transcript."""
    symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
    symbols += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
    miscellaneous = set("♩♪♫♬♭♮♯")  # a symbol of several tokens: its first is suppressed

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    result = {encode(" -")[0], encode(" '")[0]}
    for symbol in symbols + sorted(miscellaneous):
        for tokens in (encode(symbol), encode(" " + symbol)):
            if len(tokens) == 1 or symbol in miscellaneous:
                result.add(tokens[0])
    specials = ("<|translate|>", "<|transcribe|>", "<|startoftranscript|>", "<|startofprev|>", "<|startoflm|>")
    result.update(tokenizer.convert_tokens_to_ids([*specials, "<|nospeech|>"]))
    return sorted(result)


def begin_suppress_tokens(tokenizer: WhisperTokenizer) -> list[int]:
    """Tokens Whisper suppresses as a transcript's first: a lone space and end-of-text."""
    return [*tokenizer.encode(" ", add_special_tokens=False), tokenizer.eos_token_id]
