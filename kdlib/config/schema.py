"""Experiment parameters: one YAML file per profile, parsed once, strictly, into frozen dataclasses.

Every key of a params file must be known, of its type and within its range: a typo or an
out-of-range number is an error that names the key, the file and what is allowed (the
closest valid spelling, the range), before any work starts. Each field carries a one-line
help text (`describe_params` lists them; `kdlib params` prints them). Relative paths in a
params file are relative to the repository that holds it (else to the file's folder), so a
stage finds the same folders from whatever directory it is started.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

View = Literal[
    "orthographic", "normalized", "authors", "english"
]  # how a transcript is scored (`kdlib.scoring.normalizers`)
Tracker = Literal["tensorboard", "wandb", "mlflow", "comet_ml", "aim", "clearml", "dvclive"]  # accelerate's names


class ParamsError(ValueError):
    """A params file is malformed: unknown key, wrong type, value out of range, unreadable file.

    One error may carry several problems, one line each (`problems`), so that every problem of a file is
    reported at once; its message is those lines."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = [" ".join(problem.split()) for problem in problems]


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

    Sentences (the shipped hand-written ones and templated ones, `kdlib.corpus.grammar`) are dealt
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
    cut_keep: tuple[float, float] = param(
        (0.35, 0.7), "range of the share of a cut clip's audio kept", above=0, at_most=1
    )
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
    seed: int = param(0, "seed of the sentences, their split and the voice draws", at_least=0, below=2**32)


@dataclass(frozen=True)
class DataParams:
    """The corpora: teacher training (when trained here), the distillation pool, the test sets."""

    sampling_rate: int = param(16000, "sampling rate every clip is resampled to (Hz)", at_least=1)
    max_duration_s: float = param(30.0, "longest clip kept (s): the teacher's window", above=0)
    long_clips: Literal["skip", "chunk", "truncate"] = param(
        "skip",
        "test clips over max_duration_s: skipped; cut in windows whose transcripts are joined (chunk); or cut to "
        "the model's window, the first 30 s for Whisper, and scored against the whole reference (truncate: the authors')",
    )
    audio_format: Literal["flac", "wav"] = param(
        "flac", "how prepared clips are stored: 16-bit FLAC (lossless, 25-40 % smaller) or WAV"
    )
    prepare_workers: int | None = param(
        None, "processes decoding clips while preparing (null: one per core)", at_least=1
    )
    shard_mib: int = param(500, "size of one Arrow shard of a prepared set (MiB)", at_least=1)
    loader_workers: int | None = param(
        None,
        "DataLoader workers reading batches for labelling, training and evaluation (null: by the cores of each "
        "process, its share when several are launched on one machine: 0 on up to 2, else cores - 1)",
        at_least=0,
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
    global_batch_size: int | None = param(
        None,
        "clips per optimiser step over every process; the micro-batches accumulated follow from it, global / "
        "(batch_size × processes), which must divide it, and epochs are ⌊clips / global⌋ steps (null: batch_size × "
        "processes × gradient_accumulation_steps)",
        at_least=1,
    )
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
    seed: int = param(0, "seed of initialisation and data order", at_least=0, below=2**32)
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
    seed: int = param(0, "seed of the initial weights", at_least=0, below=2**32)


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
        "hub id (source: hub), a teacher a registry package carries (source: package) or checkpoint folder "
        "(source: local; `kdlib teacher PARAMS --retrain` trains it by `architecture` and `training` and writes it there)",
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
    max_new_tokens: int | None = param(
        128,
        "longest generated transcript, in tokens (null: the checkpoint's generation max_length less the decoder "
        "prompt, as transformers' generate uses it when given no length: 444 for Whisper)",
        at_least=1,
    )
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
    max_label_tokens: int | None = param(
        None,
        "drop pairs whose training label is longer, at every λ (none included): the teacher's token ids as the "
        "authors build a label (start, language, task, timestamp mode, text, end), after its timestamp draw "
        "(the authors': 225; null: no length filter)",
        at_least=1,
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
    targets: Literal["text", "ids"] = param(
        "text",
        "what a student learns to predict: the pseudo-label's text tokenised again (text), or the token ids the "
        "teacher generated (ids: the authors', `--decode_token_ids False`)",
    )
    condition_on_prev_probability: float = param(
        0.0,
        "share of training pairs (drawn per clip id and seed) given the previous pair's text as a <|startofprev|> "
        "prompt, left out of the loss (distil-whisper's condition_on_prev_probability; the authors': 0.2)",
        at_least=0,
        at_most=1,
    )
    prompt_batch_size: int | None = param(
        1000,
        "with prompts: the previous pair is taken within batches of this many training pairs, whose first pair gets "
        "no prompt (the authors' --preprocessing_batch_size; null: one batch)",
        at_least=1,
    )
    prompt_shards: int = param(
        4,
        "with prompts: the training pairs are first cut into this many contiguous shards, each in its own batches "
        "(the authors' --preprocessing_num_workers)",
        at_least=1,
    )


@dataclass(frozen=True)
class BootstrapParams:
    """Bootstrap intervals of average WER and of paired differences between models (`kdlib.scoring.intervals`)."""

    resamples: int = param(1000, "resamples of the test clips (within each test set, with replacement)", at_least=10)
    seed: int = param(0, "seed of the resamples", at_least=0, below=2**32)
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
    """Which rules the ``normalized`` view applies; each field names a rule function of `kdlib.scoring.normalizers`."""

    remove_diacritics: bool = param(True, "remove harakat, tanwin, shadda, sukun and Quranic marks")
    remove_tatweel: bool = param(True, "remove the tatweel (kashida)")
    remove_punctuation: bool = param(True, "replace punctuation by spaces")
    unify_alef: bool = param(True, "أ إ آ ٱ → ا")
    normalize_alef_maqsura: bool = param(True, "ى → ي")
    normalize_taa_marbuta: bool = param(True, "ة → ه")
    map_eastern_arabic_digits: bool = param(True, "٠-٩ and ۰-۹ → 0-9")
    lowercase_latin: bool = param(True, "lower-case Latin letters")
    remove_format_characters: bool = param(
        True, "remove invisible format characters (direction marks, joiners, soft hyphen; not ZWSP, ZWNJ, BOM)"
    )


@dataclass(frozen=True)
class ErrorRules:
    """Thresholds of the error categories (`kdlib.stages.error_analysis` documents their use)."""

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
