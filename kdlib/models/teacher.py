"""The teacher: a hub Whisper (openai/whisper-large-v2 in the paper), a checkpoint folder, a small one trained
here, or one with random weights at a hub model's shapes.

With no network and no pretrained multilingual Whisper in a registry package in
transformers' format, kdlib trains a small Whisper-architecture model on the
teacher-training split of the synthetic corpus: a byte-level BPE tokenizer with Whisper's
special tokens, Whisper's log-mel front end with a shorter window, and
`WhisperForConditionalGeneration` itself. It is saved like a hub checkpoint (safetensors,
processor, generation config) and loaded through the same code as whisper-large-v2.

The tiny profile ships such a teacher (`teacher.source: local`), made by

    kdlib teacher params/tiny.yaml --retrain

which trains it (cached), scores it on the profile's held-out test sets and writes it in float16,
with its card, to `teacher.model`. The ci profile trains its own (`teacher.source: train`).

`teacher.source: random` makes, once (cached by its architecture, seed and tokenizer file), a Whisper of
`teacher.architecture` with random weights, Whisper's real multilingual tokenizer (`kdlib.models.tokenizer`)
and a generation config like the hub's (language and task tokens, timestamps, suppressed tokens), saved like a
hub checkpoint in float32: with whisper-large-v2's architecture (`params/paper-smoke.yaml`), the paper
profile's code path runs at the paper's shapes, offline. It has learnt nothing: its transcripts are noise.
"""

from __future__ import annotations

import json
import platform
import shlex
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from accelerate import PartialState
from safetensors import SafetensorError
from safetensors.torch import load_file
from tokenizers import ByteLevelBPETokenizer
from transformers import (
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizer,
)

from kdlib.config import Params, TeacherArchitecture, params_arguments
from kdlib.corpus.preparation import Corpus, load_mixture, load_test_sets
from kdlib.models import tokenizer as whisper_tokenizer
from kdlib.models.cards import CARD, random_teacher_facts, teacher_facts, write_card
from kdlib.models.families import SpeechModel, WhisperModel, load_model
from kdlib.models.runtime import cpu_only, resolve_device
from kdlib.models.training import Seq2SeqData, recipe, train
from kdlib.models.transcription import transcribe
from kdlib.scoring.metrics import corpus_scores
from kdlib.storage.cache import atomic_directory, atomic_write_json, build_once, file_digest, fingerprint
from kdlib.storage.paths import RunLayout

LANGUAGES = ("en", "ar", "fr", "es", "de", "tr", "fa", "ur", "he", "sw")  # multilingual, Arabic among them
TASKS = ("transcribe", "translate")
SPECIALS = (
    "<|endoftext|>",
    "<|startoftranscript|>",
    *(f"<|{code}|>" for code in LANGUAGES),
    *(f"<|{task}|>" for task in TASKS),
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nospeech|>",
    "<|notimestamps|>",
)


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
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        eos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
        max_length=settings.max_target_positions,
        is_multilingual=True,
        lang_to_id={f"<|{code}|>": ids[f"<|{code}|>"] for code in LANGUAGES},
        task_to_id={task: ids[f"<|{task}|>"] for task in TASKS},
        no_timestamps_token_id=ids["<|notimestamps|>"],
        suppress_tokens=[],
        begin_suppress_tokens=[],
    )
    return model


def teacher_key(params: Params, corpus_fingerprint: str) -> str:
    """The content key of a teacher trained here: its architecture, recipe and training data."""
    return fingerprint(
        "teacher-v3",
        params.teacher.architecture,
        recipe(params.teacher.training),
        corpus_fingerprint,
        params.data.sampling_rate,
    )


def _readable(weights: Path) -> bool:
    """Whether the cached teacher's weights are there and whole; unreadable ones are named and made again."""
    if not weights.exists():
        return False
    try:
        load_file(str(weights))
    except (SafetensorError, OSError) as error:
        print(f"the cached teacher {weights} is unreadable ({error}): making it again", file=sys.stderr, flush=True)
        shutil.rmtree(weights.parent)
        return False
    return True


def train_teacher(params: Params) -> Path:
    """Train the small teacher on `data.teacher_train`, once (cached by every input that shapes it);
    return its model folder."""
    corpus = load_mixture(params.data.teacher_train, params, "teacher")
    root = RunLayout(params).trained_teacher(teacher_key(params, corpus.dataset._fingerprint))
    if _readable(root / "model" / "model.safetensors"):
        if not (root / "model" / CARD).exists() and PartialState(cpu=cpu_only(params.device)).is_main_process:
            write_card(root / "model", teacher_facts(params, len(corpus.dataset)))  # a teacher trained before cards
        return root / "model"
    if PartialState(cpu=cpu_only(params.device)).num_processes > 1:
        raise RuntimeError(
            f"the teacher of {params.source_file or params.profile} is not trained yet: train it first, in one "
            f"process (`kdlib teacher {shlex.join(params_arguments(params))}`), then launch the stage again"
        )
    architecture = params.teacher.architecture
    processor = build_processor(corpus.dataset["text"], architecture, params.data.sampling_rate)
    model = new_model(processor, architecture)
    data = Seq2SeqData(corpus.dataset, "text", processor, "ar", "transcribe")
    held_out = load_test_sets(params) if params.teacher.training.eval_every else {}

    def evaluate(current: WhisperForConditionalGeneration) -> dict[str, float]:
        """WER (normalized) on each held-out test set: the teacher never hears their sentences."""
        loaded = WhisperModel("teacher", str(root), current, processor)
        return {f"wer_{name}": wer for name, wer in test_set_wer(loaded, held_out, params).items()}

    started = time.perf_counter()
    outcome = train(
        model,
        processor,
        data,
        params.teacher.training,
        root / "training",
        device=params.device,
        description="training the teacher",
        evaluate=evaluate if any(len(corpus.dataset) for corpus in held_out.values()) else None,
        workers=params.data.loader_workers,
    )
    with atomic_directory(root / "model") as temporary:
        trained = WhisperForConditionalGeneration.from_pretrained(outcome.model_dir, use_safetensors=True)
        trained.generation_config = model.generation_config
        trained.save_pretrained(temporary, safe_serialization=True)
        processor.save_pretrained(temporary)
        write_card(temporary, teacher_facts(params, len(corpus.dataset)))
    atomic_write_json(root / TIMING, {"seconds": round(time.perf_counter() - started, 1), "machine": machine()})
    return root / "model"


# ------------------------------------------------------------------------------ a teacher with random weights


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
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        eos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
        max_length=settings.max_target_positions,
        is_multilingual=True,
        lang_to_id={token: ids[token] for token in specials[2 : 2 + whisper_tokenizer.LARGE_V2_LANGUAGES]},
        task_to_id={task: ids[f"<|{task}|>"] for task in whisper_tokenizer.TASKS},
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids["<|startofprev|>"],
        max_initial_timestamp_index=50,  # a first timestamp of at most 1 s, as Whisper's decoding allows
        suppress_tokens=suppress,
        begin_suppress_tokens=begin_suppress,
    )
    return model


def random_teacher_key(params: Params) -> str:
    """The content key of a teacher with random weights: its architecture (seed included), the tokenizer
    file it is made from, and the sampling rate of its front end."""
    tokens = file_digest(whisper_tokenizer.tiktoken_file())
    return fingerprint("random-teacher-v1", params.teacher.architecture, tokens, params.data.sampling_rate)


def whole_checkpoint(folder: Path) -> bool:
    """Whether a model folder holds its configs, processor and weights, the weights as long as their header
    says (a truncated file is caught without reading gigabytes of tensors)."""
    needed = ("config.json", "generation_config.json", "processor_config.json", "tokenizer.json")
    weights = folder / "model.safetensors"
    if not all((folder / name).is_file() for name in needed) or not weights.is_file():
        return False
    try:
        with open(weights, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(length))
        end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return weights.stat().st_size == 8 + length + end


def random_teacher(params: Params) -> Path:
    """The model folder of a Whisper of `teacher.architecture` with random weights and Whisper's multilingual
    tokenizer, made once (one process builds it; others wait and reuse it)."""
    architecture = params.teacher.architecture

    def build(folder: Path) -> None:
        processor = multilingual_processor(architecture, params.data.sampling_rate)
        model = random_model(processor, architecture)
        model.save_pretrained(folder, safe_serialization=True)
        processor.save_pretrained(folder)
        write_card(folder, random_teacher_facts(params))

    return build_once(RunLayout(params).random_teacher(random_teacher_key(params)), whole_checkpoint, build)


TIMING = "training_time.json"  # beside the trained model: how long this run of the training took, and where


def machine() -> str:
    """This machine, in words: processor, cores and the torch device kind (no host name or path)."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    cores = f"{torch.get_num_threads()} torch threads"
    return ", ".join(part for part in (platform.processor() or platform.machine(), cores, gpu) if part)


def local_teacher(params: Params) -> Path:
    """The checkpoint folder `teacher.model` (source: local), or FileNotFoundError saying how to make it."""
    folder = params.resolve(params.teacher.model)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"teacher.model: no checkpoint in {params.teacher.model!r} (relative to the repository); make it with "
            f"`kdlib teacher {shlex.join(params_arguments(params))} --retrain`"
        )
    return folder


def test_set_wer(loaded: SpeechModel, test_sets: dict[str, Corpus], params: Params) -> dict[str, float]:
    """The model's corpus WER on each non-empty test set, in the normalized view."""
    scores = {}
    for name, corpus in test_sets.items():
        if len(corpus.dataset):
            texts = [t.text for t in transcribe(loaded, corpus.dataset, params.evaluate.generation, f"on {name}")]
            scores[name] = corpus_scores(corpus.dataset["text"], texts, "normalized", params.normalization)["wer"]
    return scores


def held_out_wer(params: Params, model_dir: Path) -> dict[str, float]:
    """The WER (normalized) of the model in `model_dir` on each non-empty test set of the profile."""
    loaded = load_model(model_dir, resolve_device(params.device), params.evaluate.generation, name="teacher")
    return test_set_wer(loaded, load_test_sets(params), params)


def retrain(params: Params) -> Path:
    """Train the teacher by `teacher.architecture` and `teacher.training` (cached), then write it to
    `teacher.model` in float16 with its processor, generation config and a card holding its recipe,
    data key, training time and held-out WERs; return that folder."""
    trained = train_teacher(replace(params, teacher=replace(params.teacher, source="train")))
    timing = json.loads((trained.parent / TIMING).read_text()) if (trained.parent / TIMING).exists() else {}
    target = params.resolve(params.teacher.model)
    with atomic_directory(target) as temporary:
        model = WhisperForConditionalGeneration.from_pretrained(trained, use_safetensors=True, dtype=torch.float16)
        model.save_pretrained(temporary, safe_serialization=True)
        WhisperProcessor.from_pretrained(trained).save_pretrained(temporary)
        scores = held_out_wer(params, temporary)
        corpus = load_mixture(params.data.teacher_train, params, "teacher")
        facts = teacher_facts(params, len(corpus.dataset))
        facts = replace(
            facts,
            data_key=corpus.dataset._fingerprint,
            training_seconds=timing.get("seconds"),
            machine=timing.get("machine"),
            test_wer=scores,
            view="normalized",
        )
        write_card(temporary, facts)
    return target
