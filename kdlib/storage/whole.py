"""Whether a file or folder an earlier run left is whole, before it is reused: a run killed mid-write, or a full
disk, leaves a truncated file behind, and what is not whole is made again instead of failing later.

Each `*_problem` check returns what is wrong (one line) or None when the file is whole, reading no more than it
must: a safetensors file's header and size (not its tensors), a Parquet file's footer, a `datasets` folder's
metadata. `whole_checkpoint` and `loads_from_disk` are the yes/no forms that `build_once` takes;
`discard_unless_whole` names an unreadable file on stderr and removes it, so that the caller makes it again.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

HUB_CHECKPOINT = ("config.json", "generation_config.json", "processor_config.json", "tokenizer.json")


def safetensors_problem(path: str | Path) -> str | None:
    """What is wrong with a safetensors file: missing, or shorter or longer than its header says (a truncated
    file is caught without reading gigabytes of tensors); None if whole."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(length))
        end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
        size = path.stat().st_size
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        return f"{type(error).__name__}: {' '.join(str(error).split())}"
    return None if size == 8 + length + end else f"{size} bytes where its header says {8 + length + end}"


def parquet_problem(path: str | Path) -> str | None:
    """What is wrong with a Parquet file (its footer unreadable: missing or truncated); None if whole."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
    except (OSError, pa.ArrowException) as error:
        return str(error)
    return None


def dataset_problem(path: str | Path) -> str | None:
    """What keeps `datasets.load_from_disk` from reading a Dataset or DatasetDict folder back; None if it does."""
    import datasets

    try:
        datasets.load_from_disk(str(path))
    except (OSError, ValueError, LookupError) as error:
        return str(error)
    return None


def checkpoint_problem(folder: str | Path, needed: Sequence[str] = HUB_CHECKPOINT) -> str | None:
    """What is wrong with a checkpoint folder: a `needed` file missing or, for JSON, unreadable (default: a
    hub-like model's configs and processor), no `*.safetensors` file, or one not whole; None if whole."""
    folder = Path(folder)
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        return f"no {', '.join(missing)}"
    for name in needed:
        if name.endswith(".json"):
            try:
                json.loads((folder / name).read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                return f"{name}: {type(error).__name__}: {' '.join(str(error).split())}"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        return "no safetensors file"
    for path in weights:
        problem = safetensors_problem(path)
        if problem is not None:
            return f"{path.name}: {problem}"
    return None


def whole_checkpoint(folder: Path) -> bool:
    """Whether a model folder holds its configs, processor and weights (`model.safetensors`), whole."""
    return (Path(folder) / "model.safetensors").is_file() and checkpoint_problem(folder) is None


def loads_from_disk(path: str | Path) -> bool:
    """Whether `path` holds a `datasets` Dataset or DatasetDict that `load_from_disk` reads back."""
    return dataset_problem(path) is None


def discard_unless_whole(
    path: Path, problem_of: Callable[[Path], str | None], what: str, then: str, remove: Path | None = None
) -> bool:
    """Whether `path` is there and whole (`problem_of` finds nothing); one that is not is named on stderr
    (`<what> <path> is unreadable (<problem>): <then>`) and removed (or the folder `remove` holding it)."""
    if not path.exists():
        return False
    problem = problem_of(path)
    if problem is None:
        return True
    print(f"{what} {path} is unreadable ({problem}): {then}", file=sys.stderr, flush=True)
    target = path if remove is None else remove
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    return False
