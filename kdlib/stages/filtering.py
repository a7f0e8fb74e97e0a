"""Stage 02: the paper's pseudo-label filter, its sweep, and the pool's held-out split.

A pair is dropped when the teacher's WER against the reference exceeds λ. Boundary
(`filter.keep`): `at_most` keeps a pair whose WER equals λ exactly (kdlib's default), `below`
keeps WER < λ only (the authors' code). λ is given in percent; `None` keeps every pair. WER is computed on the view named in the params (the paper's
normalized + no-diacritics view by default) when pseudo-labelling.

Each pool stage 01 labelled is filtered on its own. One seeded share of a pool (`distill.eval_fraction`)
is held out once, before filtering: every student and λ on that pool is evaluated during training on the
same pairs, so their curves compare. Products (`kdlib.storage.paths`): per pool `<pool>/split.json` and
`<pool>/lambda-<λ>.json` (the kept training ids); `sweep_counts.csv` (every pool).
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
import torch

from kdlib.config import Params, threshold_label
from kdlib.stages.products import labelled_pools, read_pseudo_labels
from kdlib.storage.cache import atomic_write_json, atomic_write_text
from kdlib.storage.paths import RunLayout

WER_TOLERANCE = 1e-9  # so that a WER of exactly λ is on the intended side despite float round-off
Keep = Literal["at_most", "below"]


def keep_mask(wer: pd.Series, threshold: float | None, keep: Keep = "at_most") -> pd.Series:
    """True for the pairs a threshold keeps (`wer` as a fraction, `threshold` in percent)."""
    if threshold is None:
        return pd.Series(True, index=wer.index)
    if keep == "below":
        return wer * 100.0 < threshold - WER_TOLERANCE
    return wer * 100.0 <= threshold + WER_TOLERANCE


def sweep_counts(
    frame: pd.DataFrame, thresholds: tuple[float | None, ...], by: str = "variety", keep_rule: Keep = "at_most"
) -> pd.DataFrame:
    """Kept and dropped pairs (and audio hours) per threshold and per `by` group, plus totals."""
    rows = []
    for threshold in thresholds:
        keep = keep_mask(frame["teacher_wer"], threshold, keep_rule)
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


def split_heldout(ids: list[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Row positions of the training and held-out shares of a pool (seeded; at least one held-out
    row when there are two or more and the fraction is not 0)."""
    size = len(ids)
    wanted = round(size * fraction)
    n_eval = min(max(wanted, 1 if size > 1 and fraction > 0 else 0), max(size - 1, 0))
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[n_eval:]), sorted(order[:n_eval])


def build(params: Params) -> dict:
    """Stage 02, per pool labelled: the held-out split, one kept-id list per λ, and the sweep's counts."""
    layout = RunLayout(params)
    counts, summary = [], {}
    for pool in labelled_pools(params):
        labels = read_pseudo_labels(params, pool).remove_columns("audio").to_pandas()
        train_rows, eval_rows = split_heldout(
            labels["id"].tolist(), params.distill.eval_fraction, params.distill.training.seed
        )
        eval_ids = labels["id"].iloc[eval_rows].tolist()
        atomic_write_json(layout.split(pool), {"eval": eval_ids})
        training = labels.iloc[train_rows]
        kept = {}
        for threshold in params.filter.thresholds:
            ids = training.loc[keep_mask(training["teacher_wer"], threshold, params.filter.keep), "id"].tolist()
            atomic_write_json(layout.training_set(threshold, pool), {"threshold": threshold, "ids": ids})
            kept[threshold_label(threshold)] = len(ids)
        pool_counts = sweep_counts(labels, params.filter.thresholds, keep_rule=params.filter.keep)
        counts.append(pool_counts.assign(pool=pool)[["pool", *pool_counts.columns]])
        summary[pool] = {"pool": len(labels), "held_out": len(eval_ids), "kept_for_training": kept}
    atomic_write_text(layout.sweep_counts, pd.concat(counts, ignore_index=True).to_csv(index=False))
    return summary
