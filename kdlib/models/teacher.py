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
import shlex
import time
from dataclasses import replace
from pathlib import Path

import torch
from accelerate import PartialState
from transformers import (
    WhisperForConditionalGeneration,
    WhisperProcessor,
)

from kdlib.config import Params, params_arguments
from kdlib.corpus.preparation import Corpus, load_mixture, load_test_sets
from kdlib.models import tokenizer as whisper_tokenizer
from kdlib.models.cards import CARD, random_teacher_facts, teacher_facts, write_card
from kdlib.models.ctranslate2 import teacher as packaged_teacher
from kdlib.models.families import SpeechModel, WhisperModel, load_model
from kdlib.models.machine import describe_machine, machine_info
from kdlib.models.runtime import compute_signature, cpu_only, resolve_device
from kdlib.models.training import Seq2SeqData, recipe, train
from kdlib.models.transcription import transcribe
from kdlib.models.whisper import build_processor, multilingual_processor, new_model, random_model
from kdlib.scoring.metrics import corpus_scores
from kdlib.storage.cache import (
    atomic_directory,
    atomic_write_json,
    build_once,
    entry_lock,
    file_digest,
    fingerprint,
)
from kdlib.storage.paths import RunLayout
from kdlib.storage.whole import discard_unless_whole, safetensors_problem, whole_checkpoint


def teacher_key(params: Params, corpus_fingerprint: str) -> str:
    """The content key of a teacher trained here: its architecture, recipe and training data, and what its bytes
    depend on besides (`compute_signature`: the device, the CPU threads, the platform, torch)."""
    return fingerprint(
        "teacher-v4",
        params.teacher.architecture,
        recipe(params.teacher.training),
        corpus_fingerprint,
        params.data.sampling_rate,
        compute_signature(params.device),
    )


def train_teacher(params: Params) -> Path:
    """Train the small teacher on `data.teacher_train`, once (cached by every input that shapes it);
    return its model folder."""
    corpus = load_mixture(params.data.teacher_train, params, "teacher")
    root = RunLayout(params).trained_teacher(teacher_key(params, corpus.dataset._fingerprint))
    weights = root / "model" / "model.safetensors"
    if discard_unless_whole(weights, safetensors_problem, "the cached teacher", "making it again", root / "model"):
        if not (root / "model" / CARD).exists() and PartialState(cpu=cpu_only(params.device)).is_main_process:
            write_card(root / "model", teacher_facts(params, len(corpus.dataset)))  # a teacher trained before cards
        return root / "model"
    if PartialState(cpu=cpu_only(params.device)).num_processes > 1:
        raise RuntimeError(
            f"the teacher of {params.source_file or params.profile} is not trained yet: train it first, in one "
            f"process (`kdlib teacher {shlex.join(params_arguments(params))}`), then launch the stage again"
        )
    with entry_lock(root):  # one run trains it (two profiles may share it); one that waited reuses it
        if safetensors_problem(weights) is not None:  # not made meanwhile by the run that held the lock
            _train_into(root, corpus, params)
    return root / "model"


def _train_into(root: Path, corpus: Corpus, params: Params) -> None:
    """Train the teacher on `corpus`, then publish it in `root / "model"` with its card and training time."""
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
    atomic_write_json(
        root / TIMING, {"seconds": round(time.perf_counter() - started, 1), "machine": describe_machine(machine_info())}
    )


def random_teacher_key(params: Params) -> str:
    """The content key of a teacher with random weights: its architecture (seed included), the tokenizer
    file it is made from, and the sampling rate of its front end."""
    tokens = file_digest(whisper_tokenizer.tiktoken_file())
    return fingerprint("random-teacher-v1", params.teacher.architecture, tokens, params.data.sampling_rate)


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


def find_teacher(params: Params) -> str:
    """The teacher's hub id or folder: a checkpoint folder (`local`), a teacher trained first (`train`), one with
    random weights made first (`random`), one converted from registry packages first (`package`), each once."""
    if params.teacher.source == "train":
        return str(train_teacher(params))
    if params.teacher.source == "random":
        return str(random_teacher(params))
    if params.teacher.source == "local":
        return str(local_teacher(params))
    if params.teacher.source == "package":
        return str(packaged_teacher(params))
    return params.teacher.model
