"""Stage 01: prepare the corpora, find, train or make the teacher, and pseudo-label the distillation pools.

The pools labelled are the default one and every other pool a distillation run names
(`kdlib.config.pools_in_use`), each on its own. A pool is sorted by duration and cut into fixed
chunks; chunk i goes to process i mod N, so `accelerate launch -m kdlib pseudo-label PARAMS` on N
processes (GPUs, nodes, or CPU processes) shares the work, and every chunk is written atomically
to its own file. A killed run, started again, skips the chunks already on disk. When all chunks
exist, the main process merges them into one table in pool order (`labels.parquet`, no audio:
readers join it onto the prepared pool), checking that every clip appears exactly once. The
result is cached under a key of (teacher, pool content, generation settings, WER view). Clips are read
and decoded by `DataLoader` workers while the teacher generates.

Per clip: the pseudo-label text, its token ids and length, the teacher's time, and the
pseudo-label's WER and CER against the reference (and the reference's words) in the filter's view; and
`teacher_token_ids`, the decoder sequence the teacher generated (start, language, task, text, timestamps, and
<|endoftext|> when it ended the transcript itself: one cut at `max_new_tokens` has none), which students learn
from with `distill.targets: ids`, as the authors' did. With `generation.return_timestamps` the teacher
predicts timestamps, as the authors' did: `pseudo_label_timestamped` keeps them (`<|0.00|> text<|2.40|>`),
while `pseudo_label`, the text that is scored and filtered, has none. Products (`kdlib.storage.paths`):
`corpora.json`, `teacher.json`, `pseudo_labels.json` (one record per pool).
"""

from __future__ import annotations

import sys
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import datasets
import pandas as pd
from accelerate import Accelerator

from kdlib.config import Params, pools_in_use
from kdlib.corpus.loader import WaitClock
from kdlib.corpus.preparation import mixture, prepare
from kdlib.models.families import load_model, model_class
from kdlib.models.runtime import compute_signature, cpu_only
from kdlib.models.teacher import find_teacher
from kdlib.models.transcription import Transcript, audio_batches, batches, length_sorted, transcribe_batch
from kdlib.scoring.metrics import score_pairs
from kdlib.stages.products import TIMESTAMPED
from kdlib.storage.cache import atomic_write_json, fingerprint, model_digest, replacing_file
from kdlib.storage.paths import RunLayout, in_run, recorded
from kdlib.storage.progress import progress
from kdlib.storage.whole import discard_unless_whole, parquet_problem


@dataclass(frozen=True)
class PseudoLabelRun:
    """Where one pseudo-labelling run keeps its chunks and its merged dataset."""

    root: Path
    chunk_size: int

    @property
    def chunks(self) -> Path:
        return self.root / "chunks"

    @property
    def labels(self) -> Path:
        return self.root / "labels.parquet"

    def chunk_file(self, index: int) -> Path:
        return self.chunks / f"chunk-{index:05d}.parquet"

    def is_complete(self) -> bool:
        return self.labels.exists()


def plan_run(params: Params, pool: datasets.Dataset, teacher: str) -> PseudoLabelRun:
    """Where the pseudo-labels of this teacher, pool and settings are made (content-keyed)."""
    settings = params.pseudo_label
    key = fingerprint(
        "pseudo-labels-v3",
        model_digest(teacher),
        pool._fingerprint,
        settings,
        params.filter.view,
        params.normalization,
        compute_signature(params.device),  # the teacher's transcripts may differ with the threads or the device
    )
    return PseudoLabelRun(RunLayout(params).pseudo_label_work(key), settings.chunk_size)


def scored_chunk(
    transcripts: list[Transcript], references: list[str], params: Params, special_ids: Collection[int] = ()
) -> pd.DataFrame:
    """One chunk's pseudo-labels, each scored against its reference; `pseudo_token_ids` are the generated ids
    without the `special_ids` (Whisper's prompt and end), `teacher_token_ids` all of them."""
    hypotheses = [t.text for t in transcripts]
    scores = score_pairs(references, hypotheses, params.filter.view, params.normalization)
    text_ids = [[token for token in t.token_ids if token not in special_ids] for t in transcripts]
    frame = pd.DataFrame(
        {
            "id": [t.id for t in transcripts],
            "pseudo_label": hypotheses,
            "pseudo_token_ids": text_ids,
            "pseudo_tokens": [len(ids) for ids in text_ids],
            "teacher_token_ids": [list(t.token_ids) for t in transcripts],
            "teacher_seconds": [t.seconds for t in transcripts],
            "teacher_wer": scores["wer"].to_numpy(),
            "teacher_cer": scores["cer"].to_numpy(),
            "reference_words": scores["ref_words"].to_numpy(),
        }
    )
    if params.pseudo_label.generation.return_timestamps:
        frame.insert(2, TIMESTAMPED, [t.timestamped for t in transcripts])
    return frame


def readable_chunk(path: Path) -> bool:
    """Whether a chunk file is there and whole; a truncated one is named, removed and labelled again."""
    return discard_unless_whole(path, parquet_problem, "pseudo-label chunk", "removed, labelling it again")


def write_chunk(frame: pd.DataFrame, path: Path) -> None:
    with replacing_file(path) as temporary:
        frame.to_parquet(temporary, index=False)


def merge(run: PseudoLabelRun, pool: datasets.Dataset, n_chunks: int) -> pd.DataFrame:
    """Every chunk's labels in pool order; fail loudly unless each clip is labelled exactly once."""
    labels = pd.concat([pd.read_parquet(run.chunk_file(i)) for i in range(n_chunks)], ignore_index=True)
    counts = labels["id"].value_counts()
    pool_ids = pool["id"]
    if len(labels) != len(pool_ids) or (counts != 1).any() or set(counts.index) != set(pool_ids):
        raise RuntimeError(f"pseudo-label chunks in {run.chunks} do not cover the pool exactly once")
    return labels.set_index("id").loc[pool_ids].reset_index()


def pseudo_label(
    params: Params, pool: datasets.Dataset, teacher: str, accelerator: Accelerator, label: str = "pseudo-labelling"
) -> PseudoLabelRun:
    """Run, resume or reuse the pseudo-labelling of `pool` by `teacher`; every process takes its chunks (`label`:
    what its progress bar says, e.g. "pool 1/2 default")."""
    run = plan_run(params, pool, teacher)
    if run.is_complete():
        return run
    generation = params.pseudo_label.generation
    chunks = [list(chunk) for chunk in batches(length_sorted(pool), run.chunk_size)]
    mine = [i for i in range(accelerator.process_index, len(chunks), accelerator.num_processes)]
    todo = [i for i in mine if not readable_chunk(run.chunk_file(i))]
    if todo:
        loaded = load_model(teacher, accelerator.device, generation, name="teacher")
        special_ids = set(loaded.processor.tokenizer.all_special_ids)
        # one loader over every batch of every chunk still to do; a chunk is written once its last batch is in
        plan = [(i, list(rows)) for i in todo for rows in batches(chunks[i], generation.batch_size)]
        loader = audio_batches(loaded, pool, [rows for _, rows in plan], params.data.loader_workers)
        texts = pool.select_columns(["text"])
        done: dict[int, list[Transcript]] = {}
        clock = WaitClock()
        audio_s = 0.0
        several = accelerator.num_processes > 1
        description = label + (f" [process {accelerator.process_index}]" if several else "")
        with progress(total=sum(len(chunks[i]) for i in todo), desc=description, unit="clip") as bar:
            for (index, _), batch in zip(plan, clock.timed(loader)):
                done.setdefault(index, []).extend(transcribe_batch(loaded, batch, generation))
                if len(done[index]) == len(chunks[index]):
                    references = texts.select(chunks[index])["text"]
                    frame = scored_chunk(done.pop(index), references, params, special_ids)
                    write_chunk(frame, run.chunk_file(index))
                audio_s += batch.audio_s
                bar.update(len(batch.rows))
                bar.set_postfix(clock.postfix(audio_s))
        print(f"{description}: waited for data {clock.share:.1%} of the time", file=sys.stderr)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process and not run.is_complete():
        labels = merge(run, pool, len(chunks))
        with replacing_file(run.labels) as temporary:
            labels.to_parquet(temporary, index=False)
    accelerator.wait_for_everyone()
    return run


def build(params: Params) -> dict | None:
    """Stage 01: prepare every set, find, train or make the teacher, pseudo-label each pool in use; record the products.

    Returns the counts for the manifest (None on processes other than the main one)."""
    accelerator = Accelerator(cpu=cpu_only(params.device))
    pools = pools_in_use(params)
    with accelerator.main_process_first():
        teacher = find_teacher(params)
        if params.teacher.source == "hub":  # reachable, before any set is prepared (ModelUnavailable, one line)
            model_class(teacher, "teacher.model")
        pool_sets = {name: [prepare(spec, params, "train") for spec in params.data.pool(name)] for name in pools}
        test_sets = [prepare(spec, params, "test") for spec in params.data.test]
    labelled = {}
    for number, name in enumerate(pools, 1):
        pool = mixture(params.data.pool(name), pool_sets[name], "train").dataset
        label = f"pool {number}/{len(pools)} {name}: pseudo-labelling"
        labelled[name] = (pseudo_label(params, pool, teacher, accelerator, label), len(pool))
    if not accelerator.is_main_process:
        return None
    layout = RunLayout(params)
    parts = [("train", name, params.data.pool(name), pool_sets[name]) for name in pools]
    corpora = [
        {
            "name": spec.name,
            "role": role,
            "pool": pool,
            "path": recorded(params, corpus.folder),
            "clips": len(corpus.dataset),
            "skipped": len(corpus.skipped),
        }
        for role, pool, specs, prepared in [*parts, ("test", None, params.data.test, test_sets)]
        for spec, corpus in zip(specs, prepared)
    ]
    digest = model_digest(teacher)
    kind = params.teacher.source
    atomic_write_json(layout.corpora, corpora)
    atomic_write_json(
        layout.teacher,
        {"kind": kind, "source": teacher if kind == "hub" else recorded(params, teacher), "digest": digest},
    )
    atomic_write_json(
        layout.pseudo_labels,
        {
            name: {"path": in_run(params, run.labels), "key": run.root.name, "clips": clips}
            for name, (run, clips) in labelled.items()
        },
    )
    return {
        "pool_clips": {name: clips for name, (_, clips) in labelled.items()},
        "test_clips": {c["name"]: c["clips"] for c in corpora if c["role"] == "test"},
        "skipped": sum(c["skipped"] for c in corpora),
        "teacher": digest,
        "pseudo_labels": {name: run.root.name for name, (run, _) in labelled.items()},
    }
