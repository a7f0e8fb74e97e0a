"""Building Whisper models: the config of a given size, the log-mel front end, the small teacher's processor
and initial weights, and a Whisper of hub shapes with random weights and the real multilingual tokenizer."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import (
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizer,
)

from kdlib.config import TeacherArchitecture
from kdlib.config.vocabulary import LANGUAGES as WHISPER_LANGUAGES
from kdlib.config.vocabulary import LARGE_V2_LANGUAGES, TRAINED_TEACHER_LANGUAGES
from kdlib.config.vocabulary import TASKS as WHISPER_TASKS
from kdlib.models import tokenizer as whisper_tokenizer

LANGUAGES = TRAINED_TEACHER_LANGUAGES  # the small teacher's: multilingual, Arabic among them
TASKS = ("transcribe", "translate")
SPECIALS = tuple(whisper_tokenizer.special_tokens(LANGUAGES, TASKS))


def log_mel_front_end(settings: TeacherArchitecture, sampling_rate: int) -> WhisperFeatureExtractor:
    """Whisper's log-mel front end (80 mel bins) with the configured window and frame shift."""
    return WhisperFeatureExtractor(
        feature_size=80,
        sampling_rate=sampling_rate,
        chunk_length=settings.chunk_length_s,
        hop_length=settings.hop_length,
    )


def whisper_config(
    processor: WhisperProcessor, settings: TeacherArchitecture, ids: dict[str, int], **extra
) -> WhisperConfig:
    """The config of a Whisper of the configured size, sized to the processor's vocabulary and window and
    wired to its special token ids (`ids`); `extra` goes to the config as it is."""
    return WhisperConfig(
        vocab_size=len(processor.tokenizer),
        num_mel_bins=80,
        d_model=settings.d_model,
        encoder_layers=settings.encoder_layers,
        decoder_layers=settings.decoder_layers,
        encoder_attention_heads=settings.attention_heads,
        decoder_attention_heads=settings.attention_heads,
        encoder_ffn_dim=settings.ffn_dim,
        decoder_ffn_dim=settings.ffn_dim,
        max_source_positions=processor.feature_extractor.nb_max_frames // 2,
        max_target_positions=settings.max_target_positions,
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|endoftext|>"],
        decoder_start_token_id=ids["<|startoftranscript|>"],
        **extra,
    )


def build_processor(texts: list[str], settings: TeacherArchitecture, sampling_rate: int) -> WhisperProcessor:
    """A Whisper processor whose tokenizer is a byte-level BPE learnt on `texts`."""
    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(texts, vocab_size=settings.vocab_size - len(SPECIALS), min_frequency=2, show_progress=False)
    vocab = bpe.get_vocab()
    merges = [
        tuple(pair.split(" ")) if isinstance(pair, str) else tuple(pair)
        for pair in json.loads(bpe.to_str())["model"]["merges"]
    ]
    tokenizer = WhisperTokenizer(
        vocab=vocab, merges=merges, pad_token="<|endoftext|>", model_max_length=settings.max_target_positions
    )  # padding with end-of-text, as Whisper's own tokenizer does
    tokenizer.add_special_tokens({"additional_special_tokens": [t for t in SPECIALS if t != "<|endoftext|>"]})
    return WhisperProcessor(feature_extractor=log_mel_front_end(settings, sampling_rate), tokenizer=tokenizer)


def new_model(processor: WhisperProcessor, settings: TeacherArchitecture) -> WhisperForConditionalGeneration:
    """A randomly initialised Whisper of the configured size, wired to the processor's tokens."""
    tokenizer = processor.tokenizer
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIALS}
    config = whisper_config(processor, settings, ids, suppress_tokens=[], begin_suppress_tokens=[])
    torch.manual_seed(settings.seed)
    model = WhisperForConditionalGeneration(config)
    for conv in (model.model.encoder.conv1, model.model.encoder.conv2):
        # He init: with Whisper's std 0.02 the audio drowns under the positional sinusoids and a
        # model trained from scratch learns a language model that ignores it
        torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        torch.nn.init.zeros_(conv.bias)
    model.generation_config = generation_config(ids, LANGUAGES, TASKS, settings.max_target_positions)
    return model


def generation_config(
    ids: Mapping[str, int],
    languages: Sequence[str],
    tasks: Sequence[str],
    max_length: int,
    suppress: Sequence[int] = (),
    begin_suppress: Sequence[int] = (),
    **extra,
) -> GenerationConfig:
    """A multilingual Whisper's generation config: its special token ids (`ids`, token → id), the language
    and task tokens it knows, the longest transcript, the tokens suppressed always and as the first; `extra`
    goes to the config as it is."""
    return GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        eos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
        max_length=max_length,
        is_multilingual=True,
        lang_to_id={f"<|{code}|>": ids[f"<|{code}|>"] for code in languages},
        task_to_id={task: ids[f"<|{task}|>"] for task in tasks},
        no_timestamps_token_id=ids["<|notimestamps|>"],
        **extra,
        suppress_tokens=list(suppress),
        begin_suppress_tokens=list(begin_suppress),
    )


def multilingual_processor(settings: TeacherArchitecture, sampling_rate: int) -> WhisperProcessor:
    """Whisper's multilingual tokenizer and a log-mel front end of the configured window (80 mel bins)."""
    tokenizer = whisper_tokenizer.multilingual_tokenizer(model_max_length=settings.max_target_positions)
    return WhisperProcessor(feature_extractor=log_mel_front_end(settings, sampling_rate), tokenizer=tokenizer)


def random_model(processor: WhisperProcessor, settings: TeacherArchitecture) -> WhisperForConditionalGeneration:
    """A Whisper of the configured architecture with random weights (transformers' initialisation, seeded),
    configured as the hub's multilingual checkpoints are: special token ids in its config; languages, tasks,
    timestamps and suppressed tokens in its generation config."""
    tokenizer = processor.tokenizer
    specials = whisper_tokenizer.special_tokens()
    ids = dict(zip(specials, tokenizer.convert_tokens_to_ids(specials)))
    suppress = whisper_tokenizer.suppress_tokens(tokenizer)
    begin_suppress = whisper_tokenizer.begin_suppress_tokens(tokenizer)
    config = whisper_config(processor, settings, ids)  # suppressed tokens: in the generation config alone,
    # where transformers 5 reads them
    torch.manual_seed(settings.seed)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = generation_config(
        ids,
        WHISPER_LANGUAGES[:LARGE_V2_LANGUAGES],
        WHISPER_TASKS,
        settings.max_target_positions,
        suppress,
        begin_suppress,
        prev_sot_token_id=ids["<|startofprev|>"],
        max_initial_timestamp_index=50,  # a first timestamp of at most 1 s, as Whisper's decoding allows
    )
    return model
