"""The paper's pseudo-label filter: drop a pair when the teacher's WER against the reference exceeds λ.

Boundary: a pair whose WER equals λ exactly is **kept** (the rule drops WER > λ only).
λ is given in percent; `None` keeps every pair. WER is computed on the view named in the
params (the paper's normalized + no-diacritics view by default) when pseudo-labelling.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pandas as pd

from kdlib.cache import atomic_write_json
from kdlib.config import threshold_label

WER_TOLERANCE = 1e-9  # so that a WER of exactly λ survives float round-off


def keep_mask(wer: pd.Series, threshold: float | None) -> pd.Series:
    """True for the pairs a threshold keeps (`wer` as a fraction, `threshold` in percent)."""
    if threshold is None:
        return pd.Series(True, index=wer.index)
    return wer * 100.0 <= threshold + WER_TOLERANCE


def filter_pool(pool: datasets.Dataset, threshold: float | None) -> datasets.Dataset:
    """The rows of a pseudo-labelled pool (with a `teacher_wer` column) kept by `threshold`."""
    mask = keep_mask(pd.Series(pool["teacher_wer"]), threshold)
    return pool.select([i for i, keep in enumerate(mask) if keep])


def sweep_counts(frame: pd.DataFrame, thresholds: tuple[float | None, ...], by: str = "variety") -> pd.DataFrame:
    """Kept and dropped pairs (and audio hours) per threshold and per `by` group, plus totals."""
    rows = []
    for threshold in thresholds:
        keep = keep_mask(frame["teacher_wer"], threshold)
        for group, part in [*frame.groupby(by), ("all", frame)]:
            kept = keep.loc[part.index]
            rows.append(
                {
                    "threshold": threshold_label(threshold),
                    by: group,
                    "kept": int(kept.sum()),
                    "dropped": int((~kept).sum()),
                    "total": len(part),
                    "kept_fraction": float(kept.mean()) if len(part) else 0.0,
                    "kept_hours": float(part.loc[kept, "duration_s"].sum() / 3600),
                }
            )
    return pd.DataFrame(rows)


def filtered_path(labels_dir: Path, threshold: float | None) -> Path:
    """The file listing the pairs `threshold` keeps, beside the pseudo-labels it comes from."""
    return Path(labels_dir).parent / "filtered" / f"lambda-{threshold_label(threshold)}.json"


def write_filtered_sets(labels_dir: Path, thresholds: tuple[float | None, ...]) -> dict[str, Path]:
    """Write one training set per threshold of the sweep (what stage 03 trains on), as the
    ids of the kept pairs of the pseudo-labelled pool (no copy of the audio); cached."""
    labels = None
    paths = {}
    for threshold in thresholds:
        path = filtered_path(labels_dir, threshold)
        if not path.exists():
            labels = labels if labels is not None else datasets.load_from_disk(str(labels_dir))
            kept = filter_pool(labels, threshold)
            atomic_write_json(path, {"threshold": threshold, "kept": len(kept), "dropped": len(labels) - len(kept), "ids": list(kept["id"])})
        paths[threshold_label(threshold)] = path
    return paths


def load_filtered(labels_dir: Path, threshold: float | None) -> datasets.Dataset:
    """The training set of one threshold: the pseudo-labelled pool's rows it keeps."""
    path = write_filtered_sets(labels_dir, (threshold,))[threshold_label(threshold)]
    kept = set(json.loads(path.read_text())["ids"])
    labels = datasets.load_from_disk(str(labels_dir))
    return labels.select([i for i, clip_id in enumerate(labels["id"]) if clip_id in kept])
