"""The stage graph: each stage's notebook, builder, inputs, params and products, and its manifest.

A stage's builder computes its products from its params and its upstream stages' products,
writes them under `<run_dir>/<stage>/` (paths in `kdlib.storage.paths`), and `build` records a
`manifest.json` beside them: the params subset, the digest of each module of its code
(`kdlib.pipeline.code`) and the upstream digests they were made from, library versions, counts and
wall time. A stage is *stale* when it has no manifest, when one of its params changed, when its code
changed (a manifest that records no code counts as changed), or when an upstream stage was rebuilt or
is stale itself; the runner rebuilds exactly the stale stages it is asked to run, and readers
(`kdlib.stages.products`) refuse missing or stale products with "run stage NN first" instead of
recomputing them. Manifests are read once per version on disk (`path`, `mtime_ns`, size, inode) and a
stage's staleness is worked out once per version of the manifests and params it depends on: a reader
of a stage whose staleness is known costs one `stat` per manifest.

    stage              notebook                      reads                          writes
    01_pseudo_label    01_pseudo_label.py            params (data, teacher, pools)  corpora, teacher, pseudo_labels
    02_filter_sweep    02_filter_sweep.py            pseudo_labels                  per pool: split, lambda-<λ>;
                                                                                   sweep_counts
    03_distill         03_distill.py                 teacher, pseudo_labels, 02     students, student_sizes
                                                                                   (+ model folders)
    04_evaluate        04_evaluate.py                corpora, teacher, students     predictions, scores, intervals,
                                                                                   differences, efficiency
    05_error_analysis  05_error_analysis.py          predictions                    categories
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import json
import os
import shlex
import stat
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kdlib.config import Params, params_arguments, params_subset, params_to_dict
from kdlib.config.errors import KdlibError
from kdlib.pipeline.code import changed_modules, stage_code
from kdlib.storage.cache import atomic_write_json, fingerprint
from kdlib.storage.paths import RunLayout, relative


@dataclass(frozen=True)
class Stage:
    """One step of the study: what it runs, reads and writes."""

    name: str  # "01_pseudo_label": its folder, its notebook's name, its number for --only/--from
    command: str  # its `kdlib` subcommand
    builder: str  # "module:function" computing its products: `function(params) -> counts`
    inputs: tuple[str, ...]  # upstream stages whose products it reads
    params: tuple[str, ...]  # dotted params it is made from (a change makes it stale; `a.b[].c`: c of each item)
    products: tuple[str, ...]  # `RunLayout` attributes it writes
    summary: str  # one line for plans and `--help`
    launched: bool = False  # heavy: the runner starts it under `accelerate launch` on several processes
    check: str | None = None  # "module:function(params) -> reason or None": products its manifest points to, gone

    @property
    def number(self) -> str:
        return self.name.split("_", 1)[0]


STAGES: tuple[Stage, ...] = (
    Stage(
        "01_pseudo_label",
        "pseudo-label",
        "kdlib.stages.pseudo_label:build",
        (),
        ("device", "data", "teacher", "pseudo_label", "normalization", "filter.view", "distill.runs[].pool"),
        ("corpora", "teacher", "pseudo_labels"),
        "prepare the corpora, find, train or make the teacher, pseudo-label each pool in use",
        launched=True,
        check="kdlib.stages.presence:pseudo_label_products_gone",
    ),
    Stage(
        "02_filter_sweep",
        "filter",
        "kdlib.stages.filtering:build",
        ("01_pseudo_label",),
        (
            "filter.thresholds",
            "filter.keep",
            "filter.max_label_tokens",
            "distill.eval_fraction",
            "distill.training.seed",
            "distill.timestamp_probability",
        ),
        ("split", "training_set", "sweep_counts"),
        "hold out a share of each pool; keep the pairs each λ keeps",
    ),
    Stage(
        "03_distill",
        "distill",
        "kdlib.stages.distill:build",
        ("01_pseudo_label", "02_filter_sweep"),
        (
            "device",
            "distill",
            "normalization",
            "evaluate.generation",
            "pseudo_label.generation.language",
            "pseudo_label.generation.task",
        ),
        ("students", "student_sizes"),
        "distil every student on the pairs of each of its λ",
        launched=True,
        check="kdlib.stages.presence:student_models_gone",
    ),
    Stage(
        "04_evaluate",
        "evaluate",
        "kdlib.stages.evaluate:build",
        ("01_pseudo_label", "03_distill"),
        ("device", "evaluate", "normalization"),
        ("predictions", "scores", "intervals", "differences", "efficiency"),
        "every model on every test set, bootstrap intervals; efficiency side by side",
        launched=True,
    ),
    Stage(
        "05_error_analysis",
        "error-analysis",
        "kdlib.stages.error_analysis:build",
        ("04_evaluate",),
        ("error_rules", "normalization"),
        ("categories",),
        "sort every erroneous prediction into a category",
    ),
)


class MissingProduct(KdlibError, RuntimeError):
    """A stage's products are not there: the stage has to run first."""


class StaleProduct(KdlibError, RuntimeError):
    """A stage's products were made from other params or other upstream products."""


class UnreadableManifest(ValueError):
    """A stage's `manifest.json` is truncated, empty, not JSON or not a manifest: the stage is rebuilt."""


def stage_named(name: str, graph: tuple[Stage, ...] = STAGES) -> Stage:
    """`"03"`, `"03_distill"` or `"distill"` → the stage."""
    matches = [s for s in graph if name in (s.name, s.number, s.command)]
    if len(matches) != 1:
        raise ValueError(f"unknown stage {name!r}: choose from {', '.join(s.name for s in graph)}")
    return matches[0]


def versions() -> dict[str, str]:
    """The versions of the libraries a product depends on."""
    names = ("kdlib", "torch", "transformers", "datasets", "accelerate")
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _load_manifest(params: Params, path: Path) -> dict[str, Any]:
    """Parse one manifest file (the only place manifests are read); UnreadableManifest, naming the file, if it is
    truncated, empty, not JSON or not a kdlib manifest."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        why = getattr(error, "strerror", None) or getattr(error, "msg", None) or getattr(error, "reason", None)
        raise UnreadableManifest(f"its manifest {relative(params, path)} is unreadable ({why})") from None
    fields = {"digest": str, "params": dict, "inputs": dict}
    if not isinstance(manifest, dict) or any(not isinstance(manifest.get(k), kind) for k, kind in fields.items()):
        raise UnreadableManifest(f"its manifest {relative(params, path)} is unreadable (not a kdlib manifest)")
    return manifest


_MANIFESTS: dict[Path, tuple[tuple[int, int, int], dict[str, Any]]] = {}  # path → (its version, its content)


def _version(path: Path) -> tuple[int, int, int] | None:
    """A manifest file's version (mtime_ns, size, inode: a rewrite is a new file), or None if there is none."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return (found.st_mtime_ns, found.st_size, found.st_ino) if stat.S_ISREG(found.st_mode) else None


def _manifest(params: Params, stage: Stage) -> dict[str, Any] | None:
    """A stage's manifest as on disk now, parsed once per version (shared: not to be changed); UnreadableManifest
    if it is not one."""
    path = RunLayout(params).manifest(stage.name)
    version = _version(path)
    if version is None:
        _MANIFESTS.pop(path, None)
        return None
    cached = _MANIFESTS.get(path)
    if cached is None or cached[0] != version:
        cached = _MANIFESTS[path] = (version, _load_manifest(params, path))
    return cached[1]


def read_manifest(params: Params, stage: Stage) -> dict[str, Any] | None:
    """A stage's manifest (a copy the caller may change), or None if it has none; UnreadableManifest, naming the
    file, if it is not one."""
    return copy.deepcopy(_manifest(params, stage))


_PLAIN: dict[int, dict[str, Any]] = {}  # id(params) → params_to_dict(params), while that Params lives


def _plain(params: Params) -> dict[str, Any]:
    key = id(params)
    if key not in _PLAIN:
        _PLAIN[key] = params_to_dict(params)
        weakref.finalize(params, _PLAIN.pop, key, None)
    return _PLAIN[key]


def _upstream(stage: Stage, graph: tuple[Stage, ...]) -> list[Stage]:
    """`stage` and every stage of `graph` it reads, directly or not, each once (an input the graph lacks is
    `staleness`'s to report, when it gets to it)."""
    found: dict[str, Stage] = {}
    todo = [stage]
    while todo:
        current = todo.pop()
        if current.name not in found:
            found[current.name] = current
            todo += [other for other in graph if other.name in current.inputs]
    return list(found.values())


_STALENESS: dict[tuple, str | None] = {}  # (graph, stage, what it depends on) → its staleness
_REMEMBERED = 4096  # at most: past that, the memo starts afresh


def staleness(params: Params, stage: Stage, graph: tuple[Stage, ...] = STAGES) -> str | None:
    """Why `stage` must be rebuilt (not built, its manifest unreadable, a param changed, its code changed, an input
    rebuilt, a product it points to gone), or None if current. Worked out once per version of the manifests,
    params and code it depends on, and of what their products point to (checked each time: a few file checks)."""
    plain, layout, depends, gone = _plain(params), RunLayout(params), [], {}
    for upstream in _upstream(stage, graph):
        path = layout.manifest(upstream.name)
        version = _version(path)
        subset = json.dumps(params_subset(plain, upstream.params), sort_keys=True, default=str)
        code = tuple(stage_code(upstream.builder).items()) if version is not None else ()
        # what the products point to is not versioned: checked each time
        gone[upstream.name] = _products_gone(params, upstream) if version is not None else None
        depends.append((str(path), version, subset, code, gone[upstream.name]))
    key = (graph, stage, tuple(depends))
    if key not in _STALENESS:
        if len(_STALENESS) >= _REMEMBERED:
            _STALENESS.clear()
        _STALENESS[key] = _staleness(params, stage, graph, gone[stage.name])
    return _STALENESS[key]


def _listed(names: list[str], shown: int = 3) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _staleness(params: Params, stage: Stage, graph: tuple[Stage, ...], gone: str | None) -> str | None:
    """`staleness` worked out; `gone`: what its products point to that is gone (`_products_gone`, found already)."""
    try:
        manifest = _manifest(params, stage)
    except UnreadableManifest as error:
        return f"{error}: rebuilt"
    if manifest is None:
        return "not built yet"
    current = params_subset(_plain(params), stage.params)
    changed = [key for key in current if manifest["params"].get(key) != current[key]]
    if changed or set(manifest["params"]) != set(current):
        return f"params changed: {', '.join(changed) or 'the set of params it reads'}"
    if "code" not in manifest:
        return "code changed: its manifest records none (made by an older kdlib)"
    modules = changed_modules(manifest["code"], stage_code(stage.builder))
    if modules:
        return f"code changed: {_listed(modules)}"
    for upstream in (stage_named(name, graph) for name in stage.inputs):
        try:
            upstream_manifest = _manifest(params, upstream)
        except UnreadableManifest as error:
            return f"{upstream.name} is stale ({error})"
        if upstream_manifest is None:
            return f"{upstream.name} is not built"
        if manifest["inputs"].get(upstream.name) != upstream_manifest["digest"]:
            return f"{upstream.name} was rebuilt since"
        reason = staleness(params, upstream, graph)
        if reason is not None:
            return f"{upstream.name} is stale ({reason})"
    return gone


def _products_gone(params: Params, stage: Stage) -> str | None:
    """What `stage.check` finds gone of what its products point to (files only: quick), or None."""
    if stage.check is None:
        return None
    module, function = stage.check.split(":")
    return getattr(importlib.import_module(module), function)(params)


def require(params: Params, name: str, graph: tuple[Stage, ...] = STAGES) -> dict[str, Any]:
    """The manifest of a current stage, or MissingProduct/StaleProduct saying which stage to run."""
    stage = stage_named(name, graph)
    reason = staleness(params, stage, graph)
    command = f"kdlib run {shlex.join(params_arguments(params))} --only {stage.number}"
    if reason == "not built yet":
        raise MissingProduct(
            f"no products of stage {stage.name} in {params.run_dir}: run stage {stage.number} first ({command})"
        )
    if reason is not None:
        raise StaleProduct(
            f"the products of stage {stage.name} are stale ({reason}): run stage {stage.number} again ({command})"
        )
    return read_manifest(params, stage)


def build(params: Params, stage: Stage, graph: tuple[Stage, ...] = STAGES, **options: Any) -> dict[str, Any]:
    """Run a stage's builder, then record its manifest; the manifest (main process only writes it)."""
    for upstream in stage.inputs:
        require(params, upstream, graph)
    code = stage_code(stage.builder)  # the code that runs now
    module, function = stage.builder.split(":")
    builder: Callable[..., dict[str, Any] | None] = getattr(importlib.import_module(module), function)
    started = time.perf_counter()
    counts = builder(params, **options)
    from kdlib.models.runtime import release_memory  # here: reading the graph needs no torch

    release_memory()  # `kdlib run` builds the next stage in this process
    if counts is None:  # a process other than the main one, or a partial build (one student): no manifest
        return {}
    return record(params, stage, counts, graph, code=code, wall_s=round(time.perf_counter() - started, 2))


def record(
    params: Params,
    stage: Stage,
    counts: dict[str, Any],
    graph: tuple[Stage, ...] = STAGES,
    *,
    code: dict[str, str] | None = None,
    wall_s: float = 0.0,
) -> dict[str, Any]:
    """Write the manifest of a stage whose products were just made from `params`, its current inputs and
    `code` (default: its code now), with the builder's `counts`; the manifest."""
    code = stage_code(stage.builder) if code is None else code
    inputs = {name: _manifest(params, stage_named(name, graph))["digest"] for name in stage.inputs}
    subset = params_subset(params, stage.params)
    manifest = {
        "stage": stage.name,
        "digest": fingerprint(stage.name, subset, code, inputs, counts),
        "params": subset,
        "overrides": list(params.overrides),
        "code": code,
        "inputs": inputs,
        "counts": counts,
        "versions": versions(),
        "wall_s": wall_s,
        "finished": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    atomic_write_json(RunLayout(params).manifest(stage.name), manifest)
    return manifest
