"""How kdlib names things: students (`DW-e-d`), λ tags, runs on a pool, the pools in use, cache folder names."""

from __future__ import annotations

import math
import re
import unicodedata

from kdlib.config.schema import Params, ParamsError

STUDENT_NAME = re.compile(r"^DW-(\d+)-(\d+)$")


def parse_student(name: str) -> tuple[int, int]:
    """`"DW-8-8"` → `(8, 8)`: encoder and decoder layers of a distilled student."""
    match = STUDENT_NAME.match(name)
    if not match or min(int(match.group(1)), int(match.group(2))) < 1:
        raise ParamsError(f"student {name!r} is not of the form 'DW-<encoder layers>-<decoder layers>' with layers ≥ 1")
    encoder, decoder = int(match.group(1)), int(match.group(2))
    if name != f"DW-{encoder}-{decoder}":  # DW-01-1 would be a second name (and folder) of DW-1-1
        raise ParamsError(f"student {name!r}: write it 'DW-{encoder}-{decoder}' (no leading zeros)")
    return encoder, decoder


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


def safe_component(name: str, kind: str = "dataset") -> str:
    """`name` if it can be one folder name inside the cache; else a ValueError naming the `kind` and `name`."""
    problems = [
        (not name, "it is empty"),
        (any(unicodedata.category(c) == "Cc" for c in name), "it holds a NUL or control character"),
        ("/" in name or "\\" in name, "it holds a path separator"),
        (".." in name, "it holds '..'"),
        (name.startswith("."), "it starts with a dot"),
    ]
    for found, problem in problems:
        if found:
            raise ValueError(f"{kind} {name!r}: not usable as a folder name ({problem})")
    return name
