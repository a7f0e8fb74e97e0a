"""Validating params: every key known, of its type and range, and the cross-field rules a type cannot say."""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import json
import math
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from kdlib.config.naming import parse_student, safe_component, threshold_label
from kdlib.config.schema import Params, ParamsError, SyntheticCorpusParams
from kdlib.config.vocabulary import LANGUAGES, LARGE_V2_LANGUAGES, TRAINED_TEACHER_LANGUAGES, VOCAB_SIZE

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


def build_section(cls: type, raw: Any, source: str, where: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ParamsError(f"{source}: '{where or '<top>'}' must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in raw if key not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), fields, n=1)
        hint = f" (did you mean '{join_key(where, close[0])}'?)" if close else ""
        raise ParamsError(f"{source}: unknown key '{join_key(where, key)}'{hint}")
    values = {}
    for name, item in raw.items():
        values[name] = coerce(hints[name], item, source, join_key(where, name))
        check_bounds(values[name], fields[name].metadata.get("bounds", {}), source, join_key(where, name))
    missing = [name for name in REQUIRED.get(cls.__name__, ()) if values.get(name) is None]
    if missing:
        raise ParamsError(f"{source}: missing required key '{join_key(where, missing[0])}'")
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
            return tuple(coerce(args[0], item, source, f"{where}[{i}]") for i, item in enumerate(value))
        if len(value) != len(args):
            raise ParamsError(f"{source}: '{where}' must have {len(args)} items, got {len(value)}")
        return tuple(coerce(arg, item, source, f"{where}[{i}]") for i, (arg, item) in enumerate(zip(args, value)))
    if origin in (collections.abc.Mapping, dict) or hint in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise ParamsError(f"{source}: '{where}' must be a mapping, got {value!r}")
        key_type, value_type = args or (str, Any)
        return {
            coerce(key_type, k, source, where): coerce(value_type, v, source, f"{where}.{k}") for k, v in value.items()
        }
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
        if params.teacher.source in ("train", "random") and (
            encoder > architecture.encoder_layers or decoder > architecture.decoder_layers
        ):
            raise ParamsError(
                f"{source}: '{where}' {name} has more layers than the teacher "
                f"({architecture.encoder_layers} encoder, {architecture.decoder_layers} decoder)"
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
    if params.teacher.source == "train" and not params.data.teacher_train:
        raise ParamsError(f"{source}: teacher.source is 'train' but data.teacher_train is empty")
    if params.teacher.source == "random":
        if architecture.vocab_size != VOCAB_SIZE:
            raise ParamsError(
                f"{source}: 'teacher.architecture.vocab_size' must be {VOCAB_SIZE}, the size of Whisper's "
                f"multilingual tokenizer that a teacher of source 'random' has, got {architecture.vocab_size}"
            )
    for check in SEMANTIC_CHECKS:  # issue 25: each a self-contained check yielding its problems
        for problem in check(params):
            raise ParamsError(f"{source}: {problem}")


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


def students_fit_the_teacher_checkpoint(params: Params) -> Iterator[str]:
    """A student deeper than a local or (cached) hub teacher checkpoint (the trained and random ones are checked
    above)."""
    config = teacher_file(params, "config.json") or {}
    layers = (config.get("encoder_layers"), config.get("decoder_layers"))
    if not all(isinstance(count, int) for count in layers):
        return
    students = [(f"distill.runs[{i}].student", run.student) for i, run in enumerate(params.distill.runs)]
    students += [(f"distill.count_only[{i}]", name) for i, name in enumerate(params.distill.count_only)]
    for where, name in students:
        encoder, decoder = parse_student(name)
        if encoder > layers[0] or decoder > layers[1]:
            yield (
                f"'{where}' {name} has more layers than the teacher {params.teacher.model} "
                f"({layers[0]} encoder, {layers[1]} decoder): choose a student of at most as many"
            )


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
        if positions is not None and generation.max_new_tokens + prompt > positions:
            yield (
                f"'{section}.max_new_tokens' {generation.max_new_tokens} is more than the teacher's {positions} "
                f"target positions allow after its {prompt} prompt tokens: at most {positions - prompt}"
            )


SEMANTIC_CHECKS = (
    repeated_thresholds,
    repeated_runs,
    ordered_ranges,
    students_fit_the_teacher_checkpoint,
    generation_fits_the_teacher,
)
