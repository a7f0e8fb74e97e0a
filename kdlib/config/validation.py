"""Validating params: every key known, of its type and range, and the cross-field rules a type cannot say.

Every problem is reported, not only the first: the checks append one line each to a list of problems
(`collect` runs a check that raises and keeps its problems) and the list is raised as one ParamsError.
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
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from kdlib.config.naming import parse_student, safe_component, threshold_label
from kdlib.config.schema import Params, ParamsError, SyntheticCorpusParams
from kdlib.config.vocabulary import LANGUAGES, LARGE_V2_LANGUAGES, TRAINED_TEACHER_LANGUAGES, VOCAB_SIZE

# teachers that registry packages carry (`teacher.source: package`, `kdlib.models.ctranslate2`): their layers
PACKAGED_TEACHERS = {"openai/whisper-base": (6, 6)}

REQUIRED = {
    "Params": ("profile", "run_dir", "reports_dir"),
    "DatasetSpec": ("name", "source"),
    "StudentRun": ("student",),
}


def bounds_text(bounds: Mapping[str, float]) -> str:
    words = {"at_least": "≥", "above": ">", "at_most": "≤", "below": "<"}
    return f" ({', '.join(f'{words[k]} {_number(v)}' for k, v in bounds.items())})" if bounds else ""


def _number(value: float) -> str:
    """A bound as a reader writes it: integers in full (4294967296, not 4.29497e+09)."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


T = TypeVar("T")


def collect(problems: list[str], check: Callable[[], T]) -> T | None:
    """Run `check`; the problems of a ParamsError it raises are appended to `problems` (and None returned)."""
    try:
        return check()
    except ParamsError as error:
        problems.extend(error.problems)
        return None


def build_section(cls: type, raw: Any, source: str, where: str) -> Any:
    """A params section of dataclass `cls` from its mapping; every unknown key, bad value and missing key in it
    (and in its subsections) is one problem of the ParamsError raised."""
    if not isinstance(raw, Mapping):
        raise ParamsError(f"{source}: '{where or '<top>'}' must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    problems: list[str] = []
    for key in (key for key in raw if key not in fields):
        close = difflib.get_close_matches(str(key), fields, n=1)
        hint = f" (did you mean '{join_key(where, close[0])}'?)" if close else ""
        problems.append(f"{source}: unknown key '{join_key(where, key)}'{hint}")
    required = REQUIRED.get(cls.__name__, ())
    values = {}
    for name, item in raw.items():
        if name not in fields or (item is None and name in required):
            continue
        key, bounds = join_key(where, name), fields[name].metadata.get("bounds", {})

        def checked(name=name, item=item, key=key, bounds=bounds) -> Any:
            value = coerce(hints[name], item, source, key)
            check_bounds(value, bounds, source, key)
            return value

        before = len(problems)
        value = collect(problems, checked)
        if len(problems) == before:
            values[name] = value
    problems += [
        f"{source}: missing required key '{join_key(where, name)}'" for name in required if raw.get(name) is None
    ]
    if problems:
        raise ParamsError(*problems)
    return cls(**values)


def check_bounds(value: Any, bounds: Mapping[str, float], source: str, where: str) -> None:
    """Numbers (and the numbers of a list) must be finite and within the field's bounds."""
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            continue
        allowed = bounds_text(bounds).strip(" ()") or "a finite number"
        if not math.isfinite(item):
            raise ParamsError(f"{source}: '{where}' must be a finite number ({allowed}), got {item!r}")
        if (
            ("at_least" in bounds and item < bounds["at_least"])
            or ("above" in bounds and item <= bounds["above"])
            or ("at_most" in bounds and item > bounds["at_most"])
            or ("below" in bounds and item >= bounds["below"])
        ):
            raise ParamsError(f"{source}: '{where}' must be {allowed}, got {item!r}")


def coerce(hint: Any, value: Any, source: str, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(arg, value, source, where)
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
            problems: list[str] = []
            items = [
                collect(problems, lambda i=i, item=item: coerce(args[0], item, source, f"{where}[{i}]"))
                for i, item in enumerate(value)
            ]
            if problems:
                raise ParamsError(*problems)
            return tuple(items)
        if len(value) != len(args):
            raise ParamsError(f"{source}: '{where}' must have {len(args)} items, got {len(value)}")
        return tuple(coerce(arg, item, source, f"{where}[{i}]") for i, (arg, item) in enumerate(zip(args, value)))
    if origin in (collections.abc.Mapping, dict) or hint in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise ParamsError(f"{source}: '{where}' must be a mapping, got {value!r}")
        key_type, value_type = args or (str, Any)
        problems = []
        items = {
            collect(problems, lambda k=k: coerce(key_type, k, source, where)): collect(
                problems, lambda k=k, v=v: coerce(value_type, v, source, f"{where}.{k}")
            )
            for k, v in value.items()
        }
        if problems:
            raise ParamsError(*problems)
        return items
    if dataclasses.is_dataclass(hint):
        return build_section(hint, value, source, where)
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


def join_key(where: str, key: str) -> str:
    return f"{where}.{key}" if where else str(key)


def check_semantics(params: Params, source: str) -> None:
    """Cross-field checks that a type and a range alone cannot express. Each check appends its problem, one line,
    to `problems` and the checks go on; every problem found is raised at the end, as one ParamsError."""
    problems: list[str] = []
    data = params.data
    roles = {"teacher_train": data.teacher_train, "train": data.train, "test": data.test}
    roles.update({f"pools.{name}": specs for name, specs in data.pools.items()})
    for role, specs in roles.items():
        names = [spec.name for spec in specs]
        for index, spec in enumerate(specs):
            try:
                safe_component(spec.name)
            except ValueError as error:
                problems.append(f"{source}: 'data.{role}[{index}].name': {error}")
            if spec.revision == "refs/convert/parquet" and spec.config is not None:
                problems.append(
                    f"{source}: 'data.{role}[{index}].config': a parquet export has no configurations; "
                    f"name its folder instead (data_dir: {spec.config})"
                )
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            problems.append(f"{source}: data.{role}: dataset name {duplicates[0]!r} is used twice")
    for key, name in [("default_pool", data.default_pool), *((f"pools.{name}", name) for name in data.pools)]:
        try:
            safe_component(name, "pool")
        except ValueError as error:
            problems.append(f"{source}: 'data.{key}': {error}")
    if data.default_pool in data.pools:
        problems.append(f"{source}: 'data.pools.{data.default_pool}' has the name of the default pool (data.train)")
    problems += [f"{source}: 'data.pools.{name}' lists no set" for name, specs in data.pools.items() if not specs]
    architecture = params.teacher.architecture
    layers = teacher_layers(params)
    teacher = "the teacher" if params.teacher.source in ("train", "random") else f"the teacher {params.teacher.model}"
    students = [(f"distill.runs[{i}].student", run.student) for i, run in enumerate(params.distill.runs)]
    students += [(f"distill.count_only[{i}]", name) for i, name in enumerate(params.distill.count_only)]
    for where, name in students:
        try:
            encoder, decoder = parse_student(name)
        except ParamsError as error:
            problems.append(f"{source}: '{where}': {error}")
            continue
        if layers and (encoder > layers[0] or decoder > layers[1]):
            problems.append(
                f"{source}: '{where}' {name} has more layers than {teacher} ({layers[0]} encoder, {layers[1]} "
                "decoder): choose a student of at most as many"
            )
    for index, run in enumerate(params.distill.runs):
        if run.pool is not None:
            try:
                data.pool(run.pool)
            except ParamsError as error:
                problems.append(f"{source}: 'distill.runs[{index}].pool': {error}")
        unknown = [t for t in run.thresholds if t not in params.filter.thresholds]
        if unknown:
            problems.append(
                f"{source}: distill.runs: threshold {threshold_label(unknown[0])} of {run.student} "
                f"is not in filter.thresholds {[threshold_label(t) for t in params.filter.thresholds]}"
            )
    for family in params.evaluate.language_codes:
        if family not in ("seamless", "ctc"):
            problems.append(f"{source}: 'evaluate.language_codes.{family}': families are 'seamless' and 'ctc'")
    for section, training in (
        ("teacher.training", params.teacher.training),
        ("distill.training", params.distill.training),
    ):
        if (training.max_steps is None) == (training.epochs is None):
            problems.append(f"{source}: '{section}': give exactly one of max_steps and epochs (the other null)")
        if training.global_batch_size is not None:
            if training.gradient_accumulation_steps != 1:
                problems.append(
                    f"{source}: '{section}.gradient_accumulation_steps' follows from global_batch_size: "
                    "leave it at 1 or set global_batch_size to null"
                )
            if training.global_batch_size % training.batch_size:
                problems.append(
                    f"{source}: '{section}.global_batch_size' {training.global_batch_size} is not a multiple of "
                    f"batch_size {training.batch_size}"
                )
    if params.evaluate.headline_view not in params.evaluate.views:
        problems.append(
            f"{source}: 'evaluate.headline_view' {params.evaluate.headline_view!r} is not in evaluate.views"
        )
    if params.filter.selected not in params.filter.thresholds:
        problems.append(f"{source}: filter.selected must be one of filter.thresholds")
    if architecture.d_model % architecture.attention_heads:
        problems.append(f"{source}: 'teacher.architecture.d_model' must be a multiple of attention_heads")
    if params.teacher.source == "package" and params.teacher.model not in PACKAGED_TEACHERS:
        problems.append(
            f"{source}: 'teacher.model': registry packages carry {sorted(PACKAGED_TEACHERS)} only "
            f"(teacher.source: package), got {params.teacher.model!r}"
        )
    synthetic = params.data.synthetic
    if synthetic.language == "en" and not all(re.match(r"en([-+]|$)", voice) for voice in synthetic.voices):
        problems.append(
            f"{source}: 'data.synthetic.voices': language 'en' is spoken by English espeak-ng voices "
            f"(en, en-us, en+m3, ...), got {list(synthetic.voices)}"
        )
    if params.teacher.source == "train" and not params.data.teacher_train:
        problems.append(f"{source}: teacher.source is 'train' but data.teacher_train is empty")
    if params.teacher.source == "random" and architecture.vocab_size != VOCAB_SIZE:
        problems.append(
            f"{source}: 'teacher.architecture.vocab_size' must be {VOCAB_SIZE}, the size of Whisper's "
            f"multilingual tokenizer that a teacher of source 'random' has, got {architecture.vocab_size}"
        )
    for check in SEMANTIC_CHECKS:  # issue 25: each a self-contained check yielding its problems
        try:
            problems += [f"{source}: {problem}" for problem in check(params)]
        except ParamsError:  # a malformed value that a check above has already reported
            continue
    if problems:
        raise ParamsError(*problems)


# ------------------------------------------------------------------------------------------------------------
# Self-contained cross-field checks (issue 25). Each yields one line per problem: the key, what is wrong, what
# to do (without the params file, which `check_semantics` puts first).

WHISPER_POSITIONS = 448  # the decoder positions of every hub Whisper (openai/whisper-*)


def repeated_thresholds(params: Params) -> Iterator[str]:
    """A λ listed twice in `filter.thresholds` or in one run's thresholds (80 and 80.0 are one λ)."""
    lists = [("filter.thresholds", params.filter.thresholds)]
    lists += [(f"distill.runs[{i}].thresholds", run.thresholds) for i, run in enumerate(params.distill.runs)]
    for where, thresholds in lists:
        repeated = [t for i, t in enumerate(thresholds) if t in thresholds[:i]]
        if repeated:
            shown = threshold_label(repeated[0])
            yield f"'{where}': λ {shown} is listed twice ({shown} and {repeated[0]!r} are one λ): list each λ once"


def repeated_runs(params: Params) -> Iterator[str]:
    """The same (student, pool, λ) in two runs: it would be trained and reported twice under one name."""
    seen: dict[tuple, int] = {}
    for index, run in enumerate(params.distill.runs):
        pool = run.pool or params.data.default_pool
        for threshold in dict.fromkeys(run.thresholds):
            key = (parse_student(run.student), pool, threshold)
            if key in seen and seen[key] != index:
                yield (
                    f"'distill.runs[{index}]': {run.student} on pool {pool!r} at λ={threshold_label(threshold)} is "
                    f"already in distill.runs[{seen[key]}]: list each (student, pool, λ) once"
                )
            seen.setdefault(key, index)


def ordered_ranges(params: Params) -> Iterator[str]:
    """Every [low, high] range of `data.synthetic` (speed_wpm, pitch, snr_db, cut_keep, …) with low ≤ high."""
    hints = typing.get_type_hints(SyntheticCorpusParams)
    for field in dataclasses.fields(SyntheticCorpusParams):
        args = typing.get_args(hints[field.name])
        if typing.get_origin(hints[field.name]) is tuple and len(args) == 2 and set(args) <= {int, float}:
            low, high = getattr(params.data.synthetic, field.name)
            if low > high:
                yield (
                    f"'data.synthetic.{field.name}' is a range [low, high], got [{low}, {high}]: "
                    "give the lower bound first"
                )


def teacher_file(params: Params, name: str) -> dict[str, Any] | None:
    """A JSON file of the teacher's checkpoint (`config.json`, `generation_config.json`): of its folder (source:
    local), or of the local hub cache (source: hub; no download); None when it is not there yet (a teacher not
    made or downloaded yet is checked when it is loaded)."""
    if params.teacher.source == "local":
        path: Any = params.resolve(params.teacher.model) / name
    elif params.teacher.source == "hub":
        try:
            from huggingface_hub import try_to_load_from_cache  # here: only hub teachers need it

            path = try_to_load_from_cache(params.teacher.model, name)
        except Exception:  # noqa: BLE001 (an id the hub would refuse, a cache it cannot read: checked when loaded)
            return None
        if not isinstance(path, str):
            return None
    else:
        return None
    try:
        found = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def teacher_layers(params: Params) -> tuple[int, int] | None:
    """The teacher's (encoder, decoder) layers: of its architecture (trained here, random), of a packaged one, or
    of a local or (cached) hub checkpoint's `config.json`; None when not known before it is loaded."""
    source = params.teacher.source
    if source in ("train", "random"):
        return (params.teacher.architecture.encoder_layers, params.teacher.architecture.decoder_layers)
    if source == "package":
        return PACKAGED_TEACHERS.get(params.teacher.model)
    config = teacher_file(params, "config.json") or {}
    layers = (config.get("encoder_layers"), config.get("decoder_layers"))
    return layers if all(isinstance(count, int) for count in layers) else None


def teacher_languages(params: Params) -> tuple[str, ...]:
    """The language codes the teacher's tokenizer has."""
    source = params.teacher.source
    if source == "train":
        return TRAINED_TEACHER_LANGUAGES
    if source == "random":
        return LANGUAGES[:LARGE_V2_LANGUAGES]
    tokens = (teacher_file(params, "generation_config.json") or {}).get("lang_to_id")
    if isinstance(tokens, dict) and tokens:
        return tuple(token.strip("<|>") for token in tokens)
    return LANGUAGES


def teacher_positions(params: Params) -> int | None:
    """The teacher's decoder positions (its students have as many); None when not known before it is made."""
    if params.teacher.source in ("train", "random"):
        return params.teacher.architecture.max_target_positions
    positions = (teacher_file(params, "config.json") or {}).get("max_target_positions")
    if isinstance(positions, int):
        return positions
    return WHISPER_POSITIONS if params.teacher.source == "hub" else None


def generation_fits_the_teacher(params: Params) -> Iterator[str]:
    """The language a Whisper language code the teacher knows, and the longest transcript within its positions."""
    known = teacher_languages(params)
    positions = teacher_positions(params)
    for section, generation in (
        ("pseudo_label.generation", params.pseudo_label.generation),
        ("evaluate.generation", params.evaluate.generation),
    ):
        if generation.language not in known:
            close = difflib.get_close_matches(generation.language, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            yield (
                f"'{section}.language' {generation.language!r} is not a language code of the teacher's tokenizer "
                f"({hint}it knows {', '.join(known[:12])}{', …' if len(known) > 12 else ''})"
            )
        prompt = 3 if generation.return_timestamps else 4  # start of transcript, language, task (, no timestamps)
        if positions is not None and (generation.max_new_tokens or 0) + prompt > positions:
            yield (
                f"'{section}.max_new_tokens' {generation.max_new_tokens} is more than the teacher's {positions} "
                f"target positions allow after its {prompt} prompt tokens: at most {positions - prompt}"
            )


SEMANTIC_CHECKS = (
    repeated_thresholds,
    repeated_runs,
    ordered_ranges,
    generation_fits_the_teacher,
)
