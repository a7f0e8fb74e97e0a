"""The corpus layer: any configured training or test set as one `datasets.Dataset` of one schema.

Columns: `id`, `audio` (16 kHz, 16-bit FLAC or WAV bytes, an `Audio` feature), `text`, `dataset`,
`variety`, `duration_s`. Sources: the embedded synthetic corpus, a local folder (audiofolder with a
`metadata.csv`, relative to the repository of the params file) and hub datasets by name (probed once first,
without retries, `kdlib.storage.hub`: one line when gated, missing or unreachable; downloaded, or streamed; at a
`revision`, e.g. the hub's parquet
export `refs/convert/parquet` of a set published with a loading script, which `datasets` 4 and later refuse,
and from a `data_dir`, the export's folder of one configuration). Each clip is decoded once while
preparing: a clip that is missing, corrupt, empty or too long is skipped with its reason, an empty
reference is kept out of distillation (a teacher trained here learns to write nothing for it), and every skip is returned in a table that the reports count. A
set left with no clip is still prepared (and cached) empty, with its skips; a training pool may not be empty.

Preparation streams: clips are decoded on `data.prepare_workers` processes, a few batches at a
time, and written batch by batch to Arrow shards of about `data.shard_mib` MiB, so its memory
does not grow with the set (1K or 1M clips). A prepared set is read back memory-mapped.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import datasets
import pandas as pd
import pyarrow as pa
from datasets.table import InMemoryTable, MemoryMappedTable, concat_tables

from kdlib.config import DataParams, DatasetSpec, Params, safe_component
from kdlib.corpus.audio import dataset_with_audio, screen_batch
from kdlib.corpus.synthesis import build_split
from kdlib.storage import hub
from kdlib.storage.cache import build_once, fingerprint
from kdlib.storage.paths import RunLayout
from kdlib.storage.processes import die_with_parent
from kdlib.storage.progress import progress

Purpose = Literal["teacher", "train", "test"]  # teacher: training a teacher here, non-speech captioned empty kept
SKIP_COLUMNS = ["id", "dataset", "reason", "detail"]
PREPARE_BATCH = 64  # clips decoded per task and written per Arrow record batch


@dataclass(frozen=True)
class Corpus:
    """A prepared set and what was left out of it (or kept with a warning), with reasons."""

    dataset: datasets.Dataset
    skipped: pd.DataFrame
    folder: Path | None = None  # where a prepared set lies in the cache (None for a mixture)


def features(sampling_rate: int) -> datasets.Features:
    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "audio": datasets.Audio(sampling_rate=sampling_rate, decode=False),
            "text": datasets.Value("string"),
            "dataset": datasets.Value("string"),
            "variety": datasets.Value("string"),
            "duration_s": datasets.Value("float32"),
        }
    )


def load_raw(spec: DatasetSpec, params: Params) -> datasets.Dataset | datasets.IterableDataset:
    """Read a set as its source stores it, with its audio column left undecoded (a streamed hub set
    stays an iterable: it is read once, as it is prepared)."""
    if spec.source == "synthetic":
        try:
            path = build_split(params.data.synthetic, spec.split, params.cache_path, params.data.sampling_rate)
        except ValueError as error:
            raise ValueError(f"dataset {spec.name!r}: {error}") from None
        raw = datasets.load_from_disk(str(path))
    elif spec.source == "local":
        raw = read_audiofolder(spec, params.resolve(spec.path or ""))
    else:
        raw = load_hub_set(spec, params)
    columns = list(raw.features) if raw.features is not None else []
    if spec.audio_column not in columns or spec.text_column not in columns:
        raise ValueError(
            f"dataset {spec.name!r}: expected columns {spec.audio_column!r} and {spec.text_column!r}, found {columns}"
        )
    raw = _text_columns(raw, spec, columns)
    raw = raw.cast_column(spec.audio_column, datasets.Audio(decode=False))
    if spec.max_samples is not None:
        raw = raw.take(spec.max_samples) if spec.streaming else raw.select(range(min(spec.max_samples, len(raw))))
    return raw


def load_hub_set(spec: DatasetSpec, params: Params) -> datasets.Dataset | datasets.IterableDataset:
    """A hub set through `datasets.load_dataset`: a folder of that name in the repository (a dataset saved or cloned
    there) is read as it is; otherwise after one probe of the hub (`kdlib.storage.hub.probe`: no retry), a set that
    is gated, missing or unreachable (and not cached) is a `HubError` of one line; one that is unreachable but
    cached is read from the cache in offline mode; after a server error, `load_dataset` tries (and retries) as it
    does. A split the set does not have is one line naming the set and its splits."""
    if spec.path is None:
        raise ValueError(f"dataset {spec.name!r}: a hub dataset needs `path` (its hub id)")
    local_copy = params.resolve(spec.path)  # relative to the repository, as every path of a params file
    arguments = {"split": spec.split, "streaming": spec.streaming, "revision": spec.revision, "data_dir": spec.data_dir}
    if local_copy.is_dir():
        return _load_dataset(spec, str(local_copy), arguments)
    state = hub.probe(spec.path, "dataset", spec.revision)
    if state.status in ("reachable", "error"):  # a server error (429, 5xx) may pass: datasets retries those
        return _load_dataset(spec, spec.path, arguments)
    advice = state.advice(spec.streaming)
    if advice is not None:
        raise hub.HubError(f"dataset {spec.name!r} (hub {spec.path}): {advice}")
    with hub.offline():
        return _load_dataset(spec, spec.path, arguments)


def _load_dataset(
    spec: DatasetSpec, path: str, arguments: dict[str, Any]
) -> datasets.Dataset | datasets.IterableDataset:
    """`datasets.load_dataset`, with a split typo as one line naming the set and the splits it has."""
    try:
        return datasets.load_dataset(path, spec.config, **arguments)
    except ValueError as error:
        splits = re.search(r"(?:Unknown split|Bad split).*?(\[.*\])", str(error))
        if splits is None:
            raise
        raise ValueError(
            f"dataset {spec.name!r}: no split {spec.split!r} in {spec.path} (its splits: {splits.group(1)}): "
            "set its split to one of them"
        ) from None


def _text_columns(
    raw: datasets.Dataset | datasets.IterableDataset, spec: DatasetSpec, columns: list[str]
) -> datasets.Dataset | datasets.IterableDataset:
    """`raw` with its variety and id columns as strings (FLEURS' `gender` is an int); a ValueError naming the set
    and the column when a named column is absent or the transcripts are not text."""
    named = {"variety_column": spec.variety_column, "id_column": spec.id_column}
    for key, column in named.items():
        if column is not None and column not in columns:
            raise ValueError(f"dataset {spec.name!r}: no column {column!r} ({key}); its columns are {columns}")
    features = raw.features or {}
    text = features.get(spec.text_column)
    transcripts = ("string", "large_string", "null")  # null: a set with no rows, whose type nothing fixed
    if text is not None and not (isinstance(text, datasets.Value) and text.dtype in transcripts):
        kind = text.dtype if isinstance(text, datasets.Value) else type(text).__name__
        raise ValueError(
            f"dataset {spec.name!r}: column {spec.text_column!r} holds {kind} values, not transcripts: "
            "set text_column to the column of the reference transcripts"
        )
    for column in filter(None, named.values()):
        feature = features.get(column)
        if isinstance(feature, datasets.Value) and feature.dtype not in ("string", "large_string"):
            raw = raw.cast_column(column, datasets.Value("string"))  # 0, 1 → "0", "1"
    return raw


def read_audiofolder(spec: DatasetSpec, root: Path | None = None) -> datasets.Dataset:
    """A local folder in the audiofolder layout: audio files and a UTF-8 `metadata.csv` whose
    `file_name` column names them (in `<path>/<split>/` if that exists, else in `<path>/`); without
    an `id` column, that file name is the clip's id. Audio stays undecoded (paths), so that a bad
    file is caught per clip while preparing. `root`: the set's folder, `path` resolved against the repository
    (`Params.resolve`); by default `path` as it is."""
    root = Path(spec.path or "") if root is None else root
    folder = root / spec.split if (root / spec.split / "metadata.csv").exists() else root
    metadata = folder / "metadata.csv"
    if not metadata.exists():
        raise FileNotFoundError(
            f"dataset {spec.name!r}: no metadata.csv in local folder {spec.path!r} (relative to the repository) "
            f"nor in its split folder {spec.split!r}"
        )
    try:
        table = pd.read_csv(metadata, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"dataset {spec.name!r}: {metadata} must be UTF-8 text ({error.reason})") from error
    except pd.errors.EmptyDataError as error:
        raise ValueError(f"dataset {spec.name!r}: {metadata} is empty (it needs a 'file_name' header)") from error
    if "file_name" not in table.columns:
        raise ValueError(f"dataset {spec.name!r}: {metadata} has no 'file_name' column")
    columns = {name: table[name].tolist() for name in table.columns if name != "file_name"}
    columns.setdefault("id", table["file_name"].tolist())  # a clip is named by its file unless the table names it
    columns[spec.audio_column] = [{"bytes": None, "path": str(folder / name)} for name in table["file_name"]]
    features = datasets.Features({name: datasets.Value("string") for name in columns})
    features[spec.audio_column] = datasets.Audio(decode=False)
    return dataset_with_audio(columns, features)


def prepare(spec: DatasetSpec, params: Params, purpose: Purpose) -> Corpus:
    """Load, screen and standardise one set (possibly empty, with its skips); cached on disk by its inputs."""
    data = params.data
    name = safe_component(spec.name)
    long_clips = data.long_clips if purpose == "test" else "skip"  # only test sets are cut in windows
    key = fingerprint(
        "prepared-v3", spec, purpose, data.sampling_rate, data.max_duration_s, long_clips, data.audio_format
    )
    raw = load_raw(spec, params)
    source = getattr(raw, "_fingerprint", None)  # a streamed hub set has none: its spec names it
    key = fingerprint(key, source, _local_files(raw, spec, params))
    target = RunLayout(params).prepared(name, key)
    build_once(target, _is_prepared, lambda directory: _screen_to_disk(raw, spec, data, purpose, directory, key))
    return read_prepared(target)


def read_prepared(folder: Path) -> Corpus:
    """A prepared set as `prepare` left it: its dataset (memory-mapped shards) and its skipped or flagged clips."""
    record = json.loads((folder / "prepared.json").read_text(encoding="utf-8"))
    skipped = pd.read_csv(folder / "skipped.csv", dtype=str, keep_default_na=False)
    info = datasets.DatasetInfo(features=features(record["sampling_rate"]))
    tables = [MemoryMappedTable.from_file(str(folder / shard)) for shard in record["shards"]]
    table = concat_tables(tables) if tables else InMemoryTable(info.features.arrow_schema.empty_table())
    return Corpus(datasets.Dataset(table, info=info, fingerprint=record["key"]), skipped, folder)


def _is_prepared(directory: Path) -> bool:
    try:
        corpus = read_prepared(directory)
    except (OSError, ValueError, KeyError, pa.ArrowException):
        return False
    return len(corpus.dataset) == json.loads((directory / "prepared.json").read_text(encoding="utf-8"))["clips"]


def _local_files(raw: datasets.Dataset, spec: DatasetSpec, params: Params) -> list[tuple[str, int, int]]:
    """Name (relative to the set's folder), size and modification time of a local set's audio files: replaced
    audio is prepared anew."""
    if spec.source != "local":
        return []
    folder = params.resolve(spec.path or "")
    paths = [cell["path"] for cell in raw[spec.audio_column]]
    return [
        (os.path.relpath(p, folder), stat.st_size, stat.st_mtime_ns) for p in paths if (stat := _stat(p)) is not None
    ]


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _screened(
    examples: Iterable[dict], spec: DatasetSpec, data: DataParams
) -> Iterator[tuple[dict, tuple[bytes, float] | tuple[str, str]]]:
    """Each example with its screened audio, in order; decoding runs on `data.prepare_workers` processes
    with at most two batches per process in flight, so memory does not grow with the set."""
    batches = _batched(examples, PREPARE_BATCH)
    workers = data.prepare_workers or os.cpu_count() or 1
    if isinstance(examples, datasets.Dataset):  # a small set is not worth starting processes for
        workers = min(workers, -(-len(examples) // (4 * PREPARE_BATCH)))
    if workers <= 1:
        for batch in batches:
            cells = [example[spec.audio_column] for example in batch]
            yield from zip(batch, screen_batch(cells, data.sampling_rate, data.audio_format))
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold torch threads
    with ProcessPoolExecutor(workers, mp_context=context, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        pending: deque = deque()
        for batch in batches:
            cells = [example[spec.audio_column] for example in batch]
            pending.append((batch, pool.submit(screen_batch, cells, data.sampling_rate, data.audio_format)))
            if len(pending) >= 2 * workers:
                done, future = pending.popleft()
                yield from zip(done, future.result())
        while pending:
            done, future = pending.popleft()
            yield from zip(done, future.result())


def _batched(examples: Iterable[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for example in examples:
        batch.append(example)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class _ShardWriter:
    """Rows appended in batches of `PREPARE_BATCH` to Arrow stream files of about `shard_bytes` each."""

    def __init__(self, directory: Path, schema: pa.Schema, shard_bytes: int) -> None:
        self.directory, self.schema, self.shard_bytes = directory, schema, shard_bytes
        self.rows: dict[str, list] = {name: [] for name in schema.names}
        self.shards: list[str] = []
        self.count = 0
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._written = 0

    def append(self, row: dict) -> None:
        for name in self.schema.names:
            self.rows[name].append(row[name])
        self.count += 1
        if len(self.rows["id"]) >= PREPARE_BATCH:
            self._flush()

    def _flush(self) -> None:
        if not self.rows["id"]:
            return
        if self._writer is None or self._written >= self.shard_bytes:
            self._close_shard()
            name = f"shard-{len(self.shards):05d}.arrow"
            self.shards.append(name)
            self._writer = pa.ipc.new_stream(str(self.directory / name), self.schema)
            self._written = 0
        batch = pa.RecordBatch.from_pydict(self.rows, schema=self.schema)
        self._writer.write_batch(batch)
        self._written += batch.nbytes
        self.rows = {name: [] for name in self.schema.names}

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self) -> list[str]:
        self._flush()
        self._close_shard()
        return self.shards


def _screen_to_disk(
    raw: Iterable[dict], spec: DatasetSpec, data: DataParams, purpose: Purpose, directory: Path, key: str
) -> None:
    writer = _ShardWriter(directory, features(data.sampling_rate).arrow_schema, data.shard_mib << 20)
    skipped: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    total = len(raw) if isinstance(raw, datasets.Dataset) else spec.max_samples  # a streamed set: its cap, if any
    screening = progress(_screened(raw, spec, data), desc=f"preparing {spec.name}", total=total, unit="clip")
    for index, (example, screened) in enumerate(screening):
        clip_id = _unique_id(spec, example, index, seen)
        text = str(example[spec.text_column] or "").strip()
        variety = spec.variety or (example[spec.variety_column] if spec.variety_column else "unknown")
        variety = variety if variety is None or isinstance(variety, str) else str(variety)  # a streamed int label
        if isinstance(screened[0], str):
            reason, detail = screened
            skipped.append({"id": clip_id, "dataset": spec.name, "reason": reason, "detail": detail})
            continue
        encoded, duration_s = screened
        too_long = duration_s > data.max_duration_s
        if too_long and (purpose != "test" or data.long_clips == "skip"):
            detail = f"{duration_s:.1f} s > {data.max_duration_s:g} s"
            skipped.append({"id": clip_id, "dataset": spec.name, "reason": "too_long", "detail": detail})
            continue
        if not text:
            kept = purpose != "train"
            detail = {
                "test": "kept: scored as all insertions",
                "teacher": "kept: the teacher learns to write nothing",
                "train": "left out of training",
            }[purpose]
            skipped.append({"id": clip_id, "dataset": spec.name, "reason": "empty_reference", "detail": detail})
            if not kept:
                continue
        writer.append(
            {
                "id": clip_id,
                "audio": {"bytes": encoded, "path": None},
                "text": text,
                "dataset": spec.name,
                "variety": variety,
                "duration_s": duration_s,
            }
        )
    shards = writer.close()
    frame = pd.DataFrame(skipped, columns=SKIP_COLUMNS)
    (directory / "skipped.csv").write_text(frame.to_csv(index=False), encoding="utf-8")
    record = {"key": key, "clips": writer.count, "shards": shards, "sampling_rate": data.sampling_rate}
    (directory / "prepared.json").write_text(json.dumps(record, indent=1), encoding="utf-8")


def _unique_id(spec: DatasetSpec, example: dict, index: int, seen: dict[str, int]) -> str:
    """`<set name>/<source id>` (the row number if the source has none); a repeated source id
    gets `#2`, `#3`, … so that every clip of a mixture has its own id."""
    source_id = example[spec.id_column] if spec.id_column else example.get("id")
    clip_id = f"{spec.name}/{source_id if source_id not in (None, '') else f'{index:06d}'}"
    seen[clip_id] = seen.get(clip_id, 0) + 1
    return clip_id if seen[clip_id] == 1 else f"{clip_id}#{seen[clip_id]}"


def load_mixture(specs: tuple[DatasetSpec, ...], params: Params, purpose: Purpose) -> Corpus:
    """Several sets prepared and concatenated into one (the distillation pool is a mixture of corpora)."""
    return mixture(specs, [prepare(spec, params, purpose) for spec in specs], purpose)


def mixture(specs: tuple[DatasetSpec, ...], parts: list[Corpus], purpose: Purpose) -> Corpus:
    """Prepared sets concatenated into one; a ValueError naming each set and its skips if no clip is left."""
    if not parts:
        raise ValueError(f"no {purpose} datasets are configured")
    combined = datasets.concatenate_datasets([part.dataset for part in parts])
    if len(combined) == 0:
        sets = "; ".join(f"{spec.name!r}: {_skip_counts(part.skipped)}" for spec, part in zip(specs, parts))
        raise ValueError(f"the {purpose} datasets hold no usable clip after screening ({sets})")
    return Corpus(combined, pd.concat([part.skipped for part in parts], ignore_index=True))


def _skip_counts(skipped: pd.DataFrame) -> str:
    """`2 corrupt, 1 missing`, or `no clips` for a set that had none."""
    counts = skipped["reason"].value_counts().sort_index()
    return ", ".join(f"{count} {reason}" for reason, count in counts.items()) or "no clips"


def load_test_sets(params: Params) -> dict[str, Corpus]:
    """Every configured test set, by name, in params order."""
    return {spec.name: prepare(spec, params, "test") for spec in params.data.test}


def skip_summary(skipped: pd.DataFrame) -> pd.DataFrame:
    """Counts of skipped or flagged clips per dataset and reason (a table for the reports)."""
    if skipped.empty:
        return pd.DataFrame(columns=["dataset", "reason", "clips"])
    return skipped.groupby(["dataset", "reason"]).size().rename("clips").reset_index()
