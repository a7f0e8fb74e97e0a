"""Reading a params file: strict YAML, `--set` overrides, the plain form of params and their help texts."""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import json
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from kdlib.config.schema import Params, ParamsError
from kdlib.config.validation import (
    REQUIRED,
    bounds_text,
    build_section,
    check_bounds,
    check_semantics,
    coerce,
    collect,
    join_key,
)


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


MAX_PARAMS_BYTES = 1 << 20  # profiles are a few KB; every notebook of a run parses the file again


def read_yaml(path: Path) -> dict[str, Any]:
    """A params file's mapping; unreadable, non-UTF-8, duplicate-key, oversized or non-mapping files are
    ParamsErrors."""
    if path.is_dir():
        raise ParamsError(f"{path}: is a folder, not a params file")
    try:
        size = path.stat().st_size
    except OSError:
        size = 0  # a missing or unreadable file is named below
    if size > MAX_PARAMS_BYTES:
        raise ParamsError(
            f"{path}: {size / (1 << 20):.0f} MiB, more than a params file may hold (1 MiB; profiles are a few KB): "
            "keep data out of the params file"
        )
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
    problems: list[str] = []
    for setting in settings:
        collect(problems, lambda setting=setting: _apply(merged, setting))
    if problems:
        raise ParamsError(*problems)
    return merged


def _apply(merged: dict[str, Any], setting: str) -> None:
    """Set one `"a.b.c=VALUE"` in `merged`, in place, once it is checked."""
    key, value = parse_setting(setting)
    hint, bounds = _param_at(key, setting)
    checked = coerce(hint, value, f"--set {setting}", key)
    check_bounds(checked, bounds, f"--set {setting}", key)
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
                suggestion = f" (did you mean '{join_key(where, close[0])}'?)" if close else ""
                raise ParamsError(f"--set {setting}: unknown key '{join_key(where, part)}'{suggestion}")
            hint, bounds = typing.get_type_hints(hint)[part], fields[part].metadata.get("bounds", {})
        elif typing.get_origin(hint) in (collections.abc.Mapping, dict):
            hint, bounds = (typing.get_args(hint) or (str, Any))[1], {}
        else:
            raise ParamsError(f"--set {setting}: '{where}' is not a section or a mapping; set it whole")
        where = join_key(where, part)
    return hint, bounds


def params_from_dict(raw: Mapping[str, Any], source: str = "<params>") -> Params:
    """Validate a plain mapping (e.g. one injected into a notebook by papermill)."""
    params = build_section(Params, raw, source, "")
    check_semantics(params, source)
    return params


def params_to_dict(params: Any) -> Any:
    """The plain, YAML/JSON-friendly form of `params` or of one of its sections (round-trips)."""
    return _plain(dataclasses.asdict(params) if dataclasses.is_dataclass(params) else params)


def params_subset(params: Params | Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The plain values of dotted `keys` (e.g. `"distill.eval_fraction"`; `"distill.runs[].pool"`: the pool of
    every run): what a stage is made from. `params` may be given as `params_to_dict(params)` already."""
    plain = params if isinstance(params, Mapping) else params_to_dict(params)
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
            if item.name in REQUIRED.get(cls.__name__, ())
            else json.dumps(_plain(default), ensure_ascii=False)
        )
        yield key, shown, item.metadata.get("help", "") + bounds_text(item.metadata.get("bounds", {}))


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
