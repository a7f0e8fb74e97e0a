"""Training targets built from the teacher's token ids, as the authors built them.

The authors train on the ids their teacher generated (`--decode_token_ids False`), not on its text tokenised
again, and their `prepare_train_dataset` (their distil-whisper fork's `training/run_distillation.py`,
L1134-1207; `docs/authors-protocol.md` §3-§5) turns each into a label:

1. every <|endoftext|> (the end and the padding) is removed and one is appended: a transcript cut at the length
   cap ends with an <|endoftext|> the teacher never produced;
2. a label with timestamp tokens keeps them for a share of the pairs (`distill.timestamp_probability`, drawn per
   pair); the others lose every timestamp and get <|notimestamps|> after <|startoftranscript|>, language, task;
3. a share of the pairs (`distill.condition_on_prev_probability`) is prefixed with the previous pair's text as a
   prompt, <|startofprev|> + its text tokens, when the whole stays shorter than the length limit. The previous
   pair is the one before in pool order among the pairs the WER filter kept, within the authors' preprocessing
   batches (1,000 pairs, in 4 contiguous shards): the first pair of a batch has none.

The draws are fixed by the clip's id and the seed (`keeps_timestamps`, `takes_prompt`), so a pair gets the same
label at every λ. The length filter of stage 02 (`filter.max_label_tokens`) measures step 1-2's label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from kdlib.storage.cache import fingerprint


@dataclass(frozen=True)
class Specials:
    """The special token ids a label is built with (Whisper's: 50258, 50257, 50363, 50361)."""

    start: int  # <|startoftranscript|>
    end: int  # <|endoftext|>
    no_timestamps: int  # <|notimestamps|>: Whisper's timestamp tokens are the ids after it
    previous: int  # <|startofprev|>

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase) -> Specials:
        names = ["<|startoftranscript|>", "<|endoftext|>", "<|notimestamps|>", "<|startofprev|>"]
        ids = tokenizer.convert_tokens_to_ids(names)
        unknown = tokenizer.unk_token_id  # Whisper's is <|endoftext|> itself
        missing = [
            name
            for name, index in zip(names, ids)
            if index is None or (index == unknown and name != tokenizer.unk_token)
        ]
        if missing:
            raise ValueError(f"the teacher's tokenizer has no special token {missing[0]}")
        return cls(*ids)


def checkpoint_specials(source: str) -> Specials:
    """The special token ids of the tokenizer saved with a checkpoint (a hub id or a folder)."""
    return Specials.of(AutoTokenizer.from_pretrained(str(source)))


def _draw(kind: str, clip_id: str, probability: float, seed: int) -> bool:
    return int(fingerprint(kind, seed, clip_id), 16) / 16**16 < probability


def keeps_timestamps(clip_id: str, probability: float, seed: int) -> bool:
    """Whether a pair is trained on its timestamped pseudo-label: a draw fixed by the clip's id and the seed."""
    return _draw("timestamps", clip_id, probability, seed)


def takes_prompt(clip_id: str, probability: float, seed: int) -> bool:
    """Whether a pair is given the previous pair's text as a prompt: a draw fixed by the clip's id and the seed."""
    return _draw("previous-text", clip_id, probability, seed)


def teacher_label(ids: Sequence[int], keep_timestamps: bool, specials: Specials) -> list[int]:
    """The label of one pair from the teacher's ids (steps 1 and 2 above): <|startoftranscript|>, language, task,
    <|notimestamps|> or the timestamped text, the text, one <|endoftext|>."""
    label = [token for token in ids if token != specials.end] + [specials.end]
    if keep_timestamps or not any(token > specials.no_timestamps for token in label):
        return label
    plain = [token for token in label if token < specials.no_timestamps]
    return [*plain[:3], specials.no_timestamps, *plain[3:]]


def previous_text_prompt(previous: Sequence[int], specials: Specials) -> list[int]:
    """<|startofprev|> and the text tokens of the previous pair's label (no timestamps, no special token)."""
    text = [token for token in previous if token < specials.no_timestamps]
    return [specials.previous, *text[3:-1]]


def batch_starts(size: int, batch_size: int | None, shards: int) -> set[int]:
    """Positions of the first row of each preprocessing batch: `size` rows cut into `shards` contiguous shards as
    `datasets.Dataset.shard(contiguous=True)` cuts them, each in batches of `batch_size` (None: one batch)."""
    base, extra = divmod(size, shards)
    starts: set[int] = set()
    for shard in range(shards):
        begin, length = base * shard + min(shard, extra), base + (shard < extra)
        starts.update(range(begin, begin + length, batch_size or max(length, 1)))
    return starts


def with_prompts(
    labels: Sequence[list[int]],
    clip_ids: Sequence[str],
    probability: float,
    seed: int,
    limit: int,
    specials: Specials,
    batch_size: int | None = 1000,
    shards: int = 4,
) -> list[list[int]]:
    """The labels (in pool order) with the previous row's text prompt prefixed where `takes_prompt` draws one,
    the row is not the first of its batch, and prompt and label together are shorter than `limit` tokens."""
    if probability <= 0:
        return [list(label) for label in labels]
    starts = batch_starts(len(labels), batch_size, shards)
    prompted = []
    for row, (label, clip_id) in enumerate(zip(labels, clip_ids)):
        if row not in starts and takes_prompt(clip_id, probability, seed):
            prompt = previous_text_prompt(labels[row - 1], specials)
            if len(prompt) + len(label) < limit:
                label = [*prompt, *label]
        prompted.append(list(label))
    return prompted


def prompt_mask_end(labels: Sequence[int], start: int) -> int:
    """How many leading positions of a row's (shifted) labels a prompt takes, <|startoftranscript|> included:
    the authors' collator masks every position before the first <|startoftranscript|> and that one too, unless
    it is the very first (a prompt of <|startofprev|> alone, whose <|startoftranscript|> stays a target)."""
    position = next((i for i, token in enumerate(labels) if token == start), 0)
    return position + 1 if position > 0 else 0
