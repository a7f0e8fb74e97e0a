"""Stage 01: prepare the corpora, find or train the teacher, and pseudo-label the distillation pool.

The pool is sorted by duration and cut into fixed chunks; chunk i goes to process
i mod N, so `accelerate launch -m kdlib pseudo-label PARAMS` on N processes (GPUs, nodes,
or CPU processes) shares the work, and every chunk is written atomically to its own
file. A killed run, started again, skips the chunks already on disk. When all chunks
exist, the main process merges them into one `datasets` dataset (the pool plus the
pseudo-label columns), checking that every clip appears exactly once. The result is
cached under a key of (teacher, pool, generation settings, WER view).

Per clip: the pseudo-label text, its token ids and length, the teacher's time, and the
pseudo-label's WER and CER against the reference. Products (`kdlib.paths`): `corpora.json`,
`teacher.json`, `pseudo_labels.json`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import datasets
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from accelerate import Accelerator
from tqdm import tqdm

from kdlib.cache import atomic_directory, atomic_write_json, fingerprint, model_digest, replacing_file
from kdlib.config import Params
from kdlib.data import mixture, prepare
from kdlib.families import load_model
from kdlib.metrics import score_pairs
from kdlib.models import cpu_only
from kdlib.paths import RunLayout, in_run, relative
from kdlib.teacher import train_teacher
from kdlib.transcribe import batches, length_sorted, transcribe_rows

LABEL_COLUMNS = ["pseudo_label", "pseudo_token_ids", "pseudo_tokens", "teacher_seconds", "teacher_wer", "teacher_cer"]


@dataclass(frozen=True)
class PseudoLabelRun:
    """Where one pseudo-labelling run keeps its chunks and its merged dataset."""

    root: Path
    chunk_size: int

    @property
    def chunks(self) -> Path:
        return self.root / "chunks"

    @property
    def merged(self) -> Path:
        return self.root / "dataset"

    def chunk_file(self, index: int) -> Path:
        return self.chunks / f"chunk-{index:05d}.parquet"

    def is_complete(self) -> bool:
        return (self.merged / "dataset_info.json").exists()


def plan_run(params: Params, pool: datasets.Dataset, teacher: str) -> PseudoLabelRun:
    """Where the pseudo-labels of this teacher, pool and settings are made (content-keyed)."""
    settings = params.pseudo_label
    key = fingerprint(
        "pseudo-labels-v2", model_digest(teacher), pool._fingerprint, settings, params.filter.view, params.normalization
    )
    return PseudoLabelRun(RunLayout(params).pseudo_label_work(key), settings.chunk_size)


def label_chunk(loaded, pool: datasets.Dataset, rows: list[int], params: Params) -> pd.DataFrame:
    """Pseudo-label the given rows and score each pseudo-label against its reference."""
    generation = params.pseudo_label.generation
    transcripts = [
        t for batch in batches(rows, generation.batch_size) for t in transcribe_rows(loaded, pool, batch, generation)
    ]
    references = pool.select(rows)["text"]
    hypotheses = [t.text for t in transcripts]
    scores = score_pairs(references, hypotheses, params.filter.view, params.normalization)
    return pd.DataFrame(
        {
            "id": [t.id for t in transcripts],
            "pseudo_label": hypotheses,
            "pseudo_token_ids": [list(t.token_ids) for t in transcripts],
            "pseudo_tokens": [len(t.token_ids) for t in transcripts],
            "teacher_seconds": [t.seconds for t in transcripts],
            "teacher_wer": scores["wer"].to_numpy(),
            "teacher_cer": scores["cer"].to_numpy(),
        }
    )


def readable_chunk(path: Path) -> bool:
    """Whether a chunk file is there and whole; a truncated one is named, removed and labelled again."""
    if not path.exists():
        return False
    try:
        pq.read_metadata(path)
    except (OSError, pa.ArrowException) as error:
        print(f"pseudo-label chunk {path} is unreadable ({error}): removed, labelling it again", file=sys.stderr)
        path.unlink(missing_ok=True)
        return False
    return True


def write_chunk(frame: pd.DataFrame, path: Path) -> None:
    with replacing_file(path) as temporary:
        frame.to_parquet(temporary, index=False)


def merge(run: PseudoLabelRun, pool: datasets.Dataset, n_chunks: int) -> datasets.Dataset:
    """Join every chunk onto the pool; fail loudly unless each clip is labelled exactly once."""
    labels = pd.concat([pd.read_parquet(run.chunk_file(i)) for i in range(n_chunks)], ignore_index=True)
    counts = labels["id"].value_counts()
    pool_ids = pool["id"]
    if len(labels) != len(pool_ids) or (counts != 1).any() or set(counts.index) != set(pool_ids):
        raise RuntimeError(f"pseudo-label chunks in {run.chunks} do not cover the pool exactly once")
    labels = labels.set_index("id").loc[pool_ids]
    merged = pool
    for column in LABEL_COLUMNS:
        merged = merged.add_column(column, labels[column].tolist())
    return merged


def pseudo_label(params: Params, pool: datasets.Dataset, teacher: str, accelerator: Accelerator) -> PseudoLabelRun:
    """Run, resume or reuse the pseudo-labelling of `pool` by `teacher`; every process takes its chunks."""
    run = plan_run(params, pool, teacher)
    if run.is_complete():
        return run
    order = length_sorted(pool)
    chunks = [list(chunk) for chunk in batches(order, run.chunk_size)]
    mine = [i for i in range(accelerator.process_index, len(chunks), accelerator.num_processes)]
    todo = [i for i in mine if not readable_chunk(run.chunk_file(i))]
    if todo:
        loaded = load_model(teacher, accelerator.device, params.pseudo_label.generation, name="teacher")
        audio = sum(pool.select([r for i in todo for r in chunks[i]])["duration_s"])
        with tqdm(total=len(todo), desc=f"pseudo-labelling [{accelerator.process_index}]", unit="chunk") as bar:
            for index in todo:
                frame = label_chunk(loaded, pool, chunks[index], params)
                write_chunk(frame, run.chunk_file(index))
                bar.update(1)
                elapsed = bar.format_dict["elapsed"] or 1e-9
                done = sum(len(chunks[i]) for i in todo[: bar.n])
                bar.set_postfix(
                    clips_per_s=f"{done / elapsed:.2f}", audio_s_per_s=f"{audio * bar.n / len(todo) / elapsed:.1f}"
                )
    accelerator.wait_for_everyone()
    if accelerator.is_main_process and not run.is_complete():
        merged = merge(run, pool, len(chunks))
        with atomic_directory(run.merged) as temporary:
            merged.save_to_disk(str(temporary))
    accelerator.wait_for_everyone()
    return run


def find_teacher(params: Params) -> str:
    """The teacher's hub id or folder; a teacher of `teacher.source: train` is trained first (once)."""
    return params.teacher.model if params.teacher.source == "hub" else str(train_teacher(params))


def build(params: Params) -> dict | None:
    """Stage 01: prepare every set, find or train the teacher, pseudo-label the pool; record the products.

    Returns the counts for the manifest (None on processes other than the main one)."""
    accelerator = Accelerator(cpu=cpu_only(params.device))
    with accelerator.main_process_first():
        pool_sets = [prepare(spec, params, "train") for spec in params.data.train]
        test_sets = [prepare(spec, params, "test") for spec in params.data.test]
        teacher = find_teacher(params)
    pool = mixture(params.data.train, pool_sets, "train").dataset
    run = pseudo_label(params, pool, teacher, accelerator)
    if not accelerator.is_main_process:
        return None
    layout = RunLayout(params)
    corpora = [
        {
            "name": spec.name,
            "role": role,
            "path": relative(params, corpus.folder),
            "clips": len(corpus.dataset),
            "skipped": len(corpus.skipped),
        }
        for role, specs, corpora in (("train", params.data.train, pool_sets), ("test", params.data.test, test_sets))
        for spec, corpus in zip(specs, corpora)
    ]
    digest = model_digest(teacher)
    kind = params.teacher.source
    atomic_write_json(layout.corpora, corpora)
    atomic_write_json(
        layout.teacher,
        {"kind": kind, "source": relative(params, teacher) if kind == "train" else teacher, "digest": digest},
    )
    atomic_write_json(
        layout.pseudo_labels, {"path": in_run(params, run.merged), "key": run.root.name, "clips": len(pool)}
    )
    return {
        "pool_clips": len(pool),
        "test_clips": {c["name"]: c["clips"] for c in corpora if c["role"] == "test"},
        "skipped": sum(c["skipped"] for c in corpora),
        "teacher": digest,
        "pseudo_labels": run.root.name,
    }
