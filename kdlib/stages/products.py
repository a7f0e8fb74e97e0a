"""Readers of the stages' products: what notebooks and later stages use, never recomputing anything.

Each reader first checks that the stage that makes the product is current (`kdlib.pipeline.graph.require`),
so a missing or stale product is an error that says which stage to run; the check is worked out once per
version of the manifests it depends on, so a second reader of the same stage costs a `stat` per manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import pandas as pd

from kdlib.config import Params, threshold_label
from kdlib.corpus.preparation import read_prepared
from kdlib.pipeline.graph import StaleProduct, require
from kdlib.storage.paths import RunLayout, absolute, from_run

TIMESTAMPED = "pseudo_label_timestamped"  # stage 01's column of timestamped pseudo-labels, when there are any


@dataclass(frozen=True)
class PreparedSet:
    """A prepared set of stage 01 and what was left out of it (or kept with a warning), with reasons."""

    name: str
    role: str  # train or test
    dataset: datasets.Dataset
    skipped: pd.DataFrame
    pool: str | None = None  # the pool a training set belongs to


def _json(path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _table(params: Params, stage: str, path: Path, **options: Any) -> pd.DataFrame:
    """A CSV product of a current stage (`options` to `pandas.read_csv`)."""
    require(params, stage)
    return pd.read_csv(path, **options)


_NA_AS_EMPTY = {"keep_default_na": False, "na_values": [""]}  # a model or test set named "NA" stays a name


def read_corpora(params: Params) -> list[PreparedSet]:
    """The prepared sets of every pool labelled and the test sets of stage 01, in params order."""
    require(params, "01_pseudo_label")
    corpora = []
    for entry in _json(RunLayout(params).corpora):
        prepared = read_prepared(absolute(params, entry["path"]))
        corpora.append(PreparedSet(entry["name"], entry["role"], prepared.dataset, prepared.skipped, entry["pool"]))
    return corpora


def read_test_sets(params: Params) -> dict[str, PreparedSet]:
    """The test sets of stage 01, by name."""
    return {corpus.name: corpus for corpus in read_corpora(params) if corpus.role == "test"}


def read_teacher(params: Params) -> dict[str, str]:
    """`{"source": hub id or folder, "digest": ...}` of the teacher stage 01 used."""
    require(params, "01_pseudo_label")
    teacher = _json(RunLayout(params).teacher)
    return {
        **teacher,
        "source": teacher["source"] if teacher["kind"] == "hub" else str(absolute(params, teacher["source"])),
    }


def pseudo_label_record(params: Params, pool: str | None = None) -> dict[str, Any]:
    """Stage 01's record of one pool's pseudo-labels (None: the default pool): where they are, their key, clips."""
    require(params, "01_pseudo_label")
    name = pool or params.data.default_pool
    records = _json(RunLayout(params).pseudo_labels)
    if name not in records:
        raise StaleProduct(f"stage 01 in {params.run_dir} labelled no pool {name!r} ({sorted(records)}): run it again")
    return records[name]


def read_pseudo_labels(params: Params, pool: str | None = None) -> datasets.Dataset:
    """One pseudo-labelled pool (None: the default): its sets' columns (memory-mapped) plus the pseudo-label columns."""
    name = pool or params.data.default_pool
    record = pseudo_label_record(params, name)
    sets = [c.dataset for c in read_corpora(params) if c.role == "train" and c.pool == name]
    pool_set = datasets.concatenate_datasets(sets)
    labels = pd.read_parquet(from_run(params, record["path"]))
    if labels["id"].tolist() != pool_set["id"]:
        raise StaleProduct(
            f"the pseudo-labels of pool {name!r} in {params.run_dir} are not those of the prepared pool: "
            "run stage 01 again"
        )
    for column in labels.columns.drop("id"):
        pool_set = pool_set.add_column(column, labels[column].tolist())
    return pool_set


def pseudo_label_key(params: Params, pool: str | None = None) -> str:
    """The content key of a pool's current pseudo-labels (what students are keyed by)."""
    return pseudo_label_record(params, pool)["key"]


def labelled_pools(params: Params) -> list[str]:
    """The pools stage 01 labelled, the default first."""
    require(params, "01_pseudo_label")
    return list(_json(RunLayout(params).pseudo_labels))


def read_split(params: Params, pool: str | None = None) -> dict[str, list[str]]:
    """`{"eval": ids}`: a pool's held-out pairs of stage 02 (None: the default pool)."""
    require(params, "02_filter_sweep")
    return _json(RunLayout(params).split(pool or params.data.default_pool))


def _training_set(params: Params, threshold: float | None, pool: str | None = None) -> dict[str, Any]:
    require(params, "02_filter_sweep")
    name = pool or params.data.default_pool
    path = RunLayout(params).training_set(threshold, name)
    if not path.is_file():
        raise FileNotFoundError(
            f"stage 02 made no training set for λ={threshold_label(threshold)} of pool {name!r}: "
            "is it in filter.thresholds, and does a run name the pool?"
        )
    return _json(path)


def read_training_ids(params: Params, threshold: float | None, pool: str | None = None) -> list[str]:
    """The ids of a pool's pairs λ keeps for training (held-out pairs excluded; None: the default pool)."""
    return _training_set(params, threshold, pool)["ids"]


def read_wer_kept_ids(params: Params, threshold: float | None, pool: str | None = None) -> list[str]:
    """The ids of the training pairs λ's WER filter keeps, in pool order, before the label-length filter
    (`filter.max_label_tokens`; without one, the training ids): the pairs previous-text prompts come from."""
    record = _training_set(params, threshold, pool)
    return record.get("wer_kept", record["ids"])


def read_sweep_counts(params: Params) -> pd.DataFrame:
    """Kept and dropped pairs per pool, λ and variety (stage 02)."""
    return _table(params, "02_filter_sweep", RunLayout(params).sweep_counts, dtype={"threshold": str, "pool": str})


def read_students(params: Params) -> list[dict[str, Any]]:
    """Stage 03's record of every student and λ (model folders resolved)."""
    require(params, "03_distill")
    records = _json(RunLayout(params).students)
    for record in records:
        if record["model_dir"] is not None:
            record["model_dir"] = str(from_run(params, record["model_dir"]))
    return records


def read_student_sizes(params: Params) -> pd.DataFrame:
    """Stage 03's parameter count and copied teacher layers of every trained or counted student."""
    return _table(params, "03_distill", RunLayout(params).student_sizes)


def read_history(record: dict[str, Any]) -> pd.DataFrame:
    """The logged training records (step, losses, eval WER) of one trained student."""
    return pd.DataFrame(_json(Path(record["model_dir"]).parent / "history.json"))


def read_predictions(params: Params) -> pd.DataFrame:
    """Every model's prediction of every test clip, with per-utterance WER and CER in both views."""
    require(params, "04_evaluate")
    return pd.read_parquet(RunLayout(params).predictions)


def read_scores(params: Params) -> pd.DataFrame:
    """Corpus-level WER and CER per model, test set and view."""
    return _table(params, "04_evaluate", RunLayout(params).scores, **_NA_AS_EMPTY)


def read_intervals(params: Params) -> pd.DataFrame:
    """Per model, average and view: the mean WER and its bootstrap interval (`low`, `high`)."""
    return _table(params, "04_evaluate", RunLayout(params).intervals, **_NA_AS_EMPTY)


def read_differences(params: Params) -> pd.DataFrame:
    """Per pair (`model` − `against`), average and view: the WER difference, its interval, `excludes_zero`."""
    return _table(params, "04_evaluate", RunLayout(params).differences, **_NA_AS_EMPTY)


def read_efficiency(params: Params) -> pd.DataFrame:
    """Per model: its parameters, latency, real-time factor and speed-up, measured side by side (stage 04)."""
    return _table(params, "04_evaluate", RunLayout(params).efficiency)


def read_categories(params: Params) -> pd.DataFrame:
    """The predictions with their error category (stage 05)."""
    require(params, "05_error_analysis")
    return pd.read_parquet(RunLayout(params).categories)
