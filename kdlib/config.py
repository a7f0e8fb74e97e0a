"""Experiment parameters: one YAML file per profile, parsed strictly into frozen dataclasses.

Every key of a params file must be known: a typo is an error that names the key, the
file and the closest valid spelling, so that a run never silently ignores a setting.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml


class ParamsError(ValueError):
    """A params file is malformed: unknown key, wrong type or invalid value."""


@dataclass(frozen=True)
class DatasetSpec:
    """One corpus to read: the embedded synthetic corpus, a local folder or a hub dataset."""

    name: str
    source: Literal["synthetic", "local", "hub"]
    split: str = "test"
    path: str | None = None  # hub id, or local folder (audiofolder + metadata.csv)
    config: str | None = None  # hub dataset configuration
    variety: str | None = None  # fixed variety of the whole set (else `variety_column`)
    variety_column: str | None = None
    text_column: str = "text"
    audio_column: str = "audio"
    id_column: str | None = None
    max_samples: int | None = None
    streaming: bool = False


@dataclass(frozen=True)
class SyntheticCorpusParams:
    """How the embedded corpus is spoken from the shipped sentences with espeak-ng."""

    teacher_renditions: int = 3  # renditions of each teacher-training sentence
    pool_renditions: int = 2  # renditions of each distillation-pool sentence
    test_renditions: int = 1
    test_fraction: float = 0.2  # share of each variety's sentences in its test set (new voices)
    teacher_msa_fraction: float = 0.6  # share of MSA sentences the teacher learns from
    teacher_dialect_fraction: float = 0.25  # ... and of each dialect's
    max_sentences_per_variety: int | None = None
    speed_wpm: tuple[int, int] = (125, 175)
    pitch: tuple[int, int] = (25, 75)
    voices: tuple[str, ...] = ("ar", "ar+m1", "ar+m3", "ar+f2", "ar+f4")
    noise_fraction: float = 0.3
    snr_db: tuple[float, float] = (8.0, 25.0)
    seed: int = 0


@dataclass(frozen=True)
class DataParams:
    sampling_rate: int = 16000
    max_duration_s: float = 30.0
    long_clips: Literal["skip", "chunk"] = "skip"
    synthetic: SyntheticCorpusParams = SyntheticCorpusParams()
    teacher_train: tuple[DatasetSpec, ...] = ()  # only used when the teacher is trained here
    train: tuple[DatasetSpec, ...] = ()  # the distillation pool (a mixture of corpora)
    test: tuple[DatasetSpec, ...] = ()


@dataclass(frozen=True)
class TeacherTrainingParams:
    """A small Whisper-architecture teacher trained here when no pretrained one is at hand."""

    d_model: int = 192
    encoder_layers: int = 4
    decoder_layers: int = 4
    attention_heads: int = 4
    ffn_dim: int = 768
    vocab_size: int = 400  # byte-level BPE learnt on the training text, plus Whisper's specials
    chunk_length_s: int = 8  # the model's audio window (Whisper: 30 s)
    hop_length: int = 160  # log-mel frame shift in samples (Whisper: 160, i.e. 10 ms)
    max_target_positions: int = 96
    steps: int = 1200
    batch_size: int = 16
    learning_rate: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    seed: int = 0


@dataclass(frozen=True)
class TeacherParams:
    source: Literal["hub", "train"] = "hub"
    model: str = "openai/whisper-large-v2"  # hub id or local folder when source == "hub"
    train: TeacherTrainingParams = TeacherTrainingParams()


@dataclass(frozen=True)
class GenerationParams:
    language: str = "ar"
    task: str = "transcribe"
    num_beams: int = 1
    max_new_tokens: int = 128
    batch_size: int = 16
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: bf16 on GPU
    attn_implementation: Literal["auto", "sdpa", "eager"] = "auto"


@dataclass(frozen=True)
class PseudoLabelParams:
    generation: GenerationParams = GenerationParams()
    chunk_size: int = 64  # clips per resumable chunk


@dataclass(frozen=True)
class FilterParams:
    thresholds: tuple[float | None, ...] = (10.0, 20.0, 40.0, 80.0, None)  # WER in %, None: keep all
    selected: float | None = 80.0  # the paper's λ
    view: Literal["orthographic", "normalized"] = "normalized"


@dataclass(frozen=True)
class StudentRun:
    """Which students to distil, and for which thresholds of the sweep."""

    student: str  # "DW-e-d"
    thresholds: tuple[float | None, ...] = (80.0,)


@dataclass(frozen=True)
class DistillParams:
    runs: tuple[StudentRun, ...] = ()
    kl_weight: float = 0.8
    ce_weight: float = 1.0
    hidden_weight: float = 0.0
    temperature: float = 2.0
    max_steps: int = 5000
    batch_size: int = 32
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    warmup_steps: int = 500
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    eval_fraction: float = 0.05
    eval_every: int = 1000
    save_every: int = 1000
    log_every: int = 25
    gradient_checkpointing: bool = False
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    cache_teacher_logits: bool = False
    deterministic: bool = True  # deterministic kernels: bit-identical reruns (slower on GPUs)
    seed: int = 0


@dataclass(frozen=True)
class EvaluateParams:
    baselines: tuple[str, ...] = ()  # hub ids or local folders of other models, evaluated as they are
    language_codes: Mapping[str, str] = field(default_factory=dict)  # per family, e.g. {seamless: arb, ctc: ara}
    generation: GenerationParams = GenerationParams()
    latency_clips: int = 32  # clips timed one at a time for latency and real-time factor


@dataclass(frozen=True)
class Params:
    profile: str
    run_dir: str
    reports_dir: str
    cache_dir: str = ".cache/kdlib"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    data: DataParams = DataParams()
    normalization: Mapping[str, bool] = field(default_factory=dict)
    teacher: TeacherParams = TeacherParams()
    pseudo_label: PseudoLabelParams = PseudoLabelParams()
    filter: FilterParams = FilterParams()
    distill: DistillParams = DistillParams()
    evaluate: EvaluateParams = EvaluateParams()
    error_rules: Mapping[str, float] = field(default_factory=dict)
    source_file: str | None = None

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir)

    @property
    def reports_path(self) -> Path:
        return Path(self.reports_dir)

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir)


STUDENT_NAME = re.compile(r"^DW-(\d+)-(\d+)$")


def parse_student(name: str) -> tuple[int, int]:
    """`"DW-8-8"` → `(8, 8)`: encoder and decoder layers of a distilled student."""
    match = STUDENT_NAME.match(name)
    if not match:
        raise ParamsError(f"student {name!r} is not of the form 'DW-<encoder layers>-<decoder layers>'")
    return int(match.group(1)), int(match.group(2))


def threshold_label(threshold: float | None) -> str:
    """`80.0` → `"80"`, `None` → `"none"`: the λ tag used in file names and tables."""
    return "none" if threshold is None else f"{threshold:g}"


def load_params(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Params:
    """Read and validate a params YAML file (optionally with a nested override mapping)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: the top level must be a mapping of keys")
    if overrides:
        raw = _deep_merge(raw, overrides)
    raw.setdefault("source_file", str(path))
    return params_from_dict(raw, source=str(path))


def params_from_dict(raw: Mapping[str, Any], source: str = "<params>") -> Params:
    """Validate a plain mapping (e.g. one injected into a notebook by papermill)."""
    params = _build(Params, raw, source, "")
    _check_semantics(params, source)
    return params


def params_to_dict(params: Params) -> dict[str, Any]:
    """The plain, YAML/JSON-friendly form of `params` (round-trips through `params_from_dict`)."""
    return _plain(dataclasses.asdict(params))


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
    missing = [
        name
        for name, f in fields.items()
        if name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ParamsError(f"{source}: missing required key '{_join(where, missing[0])}'")
    return cls(**values)


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
        return dict(value)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, where)
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
    if hint is type(None):
        if value is not None:
            raise ParamsError(f"{source}: '{where}' must be null")
        return None
    raise ParamsError(f"{source}: '{where}' has an unsupported type {hint!r}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else str(key)


def _check_semantics(params: Params, source: str) -> None:
    """Cross-field checks that a type alone cannot express."""
    from kdlib.errors import ErrorRules
    from kdlib.text import NormalizationConfig

    for section, factory in (("normalization", NormalizationConfig), ("error_rules", ErrorRules)):
        try:
            factory.from_dict(getattr(params, section))
        except ValueError as error:
            raise ParamsError(f"{source}: {section}: {error}") from error
    for run in params.distill.runs:
        try:
            parse_student(run.student)
        except ParamsError as error:
            raise ParamsError(f"{source}: distill.runs: {error}") from error
        unknown = [t for t in run.thresholds if t not in params.filter.thresholds]
        if unknown:
            raise ParamsError(
                f"{source}: distill.runs: threshold {threshold_label(unknown[0])} of {run.student} "
                f"is not in filter.thresholds {[threshold_label(t) for t in params.filter.thresholds]}"
            )
    for family, code in params.evaluate.language_codes.items():
        if family not in ("seamless", "ctc") or not isinstance(code, str):
            raise ParamsError(
                f"{source}: evaluate.language_codes: expected a code (string) per family 'seamless' or 'ctc', got {family}: {code!r}"
            )
    if params.filter.selected not in params.filter.thresholds:
        raise ParamsError(f"{source}: filter.selected must be one of filter.thresholds")
    for role in ("teacher_train", "train", "test"):
        names = [spec.name for spec in getattr(params.data, role)]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ParamsError(f"{source}: data.{role}: dataset name {duplicates[0]!r} is used twice")
    if params.teacher.source == "train" and not params.data.teacher_train:
        raise ParamsError(f"{source}: teacher.source is 'train' but data.teacher_train is empty")
