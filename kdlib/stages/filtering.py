"""Stage 02: the paper's pseudo-label filter, its sweep, and the pool's held-out split.

A pair is dropped when the teacher's WER against the reference exceeds λ. Boundary
(`filter.keep`): `at_most` keeps a pair whose WER equals λ exactly (kdlib's default), `below`
keeps WER < λ only (the authors' code). λ is given in percent; `None` keeps every pair. WER is computed on the view
named in the params (the paper's normalized + no-diacritics view by default) when pseudo-labelling. A numeric λ
also drops a pair whose reference is empty in that view, as the authors' filter does.

With `filter.max_label_tokens` (the authors': 225), a pair whose training label is longer is dropped at every λ,
none included, after the WER filter: the label is built from the teacher's ids as the authors build it,
with its pair's timestamp draw (`kdlib.models.targets`), so the filter drops the pseudo-labels the teacher did not
finish within its length cap (loops, mostly) unless stripping their timestamps made room for the end token.

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
from kdlib.models.targets import checkpoint_specials, keeps_timestamps, teacher_label
from kdlib.stages.products import labelled_pools, read_pseudo_labels, read_teacher
from kdlib.storage.cache import atomic_write_json, atomic_write_text
from kdlib.storage.paths import RunLayout

WER_TOLERANCE = 1e-9  # so that a WER of exactly λ is on the intended side despite float round-off
Keep = Literal["at_most", "below"]


def keep_mask(
    wer: pd.Series, threshold: float | None, keep: Keep = "at_most", reference_words: pd.Series | None = None
) -> pd.Series:
    """True for the pairs a threshold keeps (`wer` as a fraction, `threshold` in percent); with `reference_words`,
    a numeric threshold also drops the pairs whose reference has no word (in the filter's view)."""
    if threshold is None:
        return pd.Series(True, index=wer.index)
    if keep == "below":
        kept = wer * 100.0 < threshold - WER_TOLERANCE
    else:
        kept = wer * 100.0 <= threshold + WER_TOLERANCE
    return kept if reference_words is None else kept & (reference_words > 0)


def label_fits(frame: pd.DataFrame, params: Params) -> pd.Series | None:
    """True for the pairs whose training label, as the authors build it from the teacher's ids
    (`kdlib.models.targets.teacher_label`, with the pair's timestamp draw), has at most `filter.max_label_tokens`
    tokens; None without a length filter."""
    limit = params.filter.max_label_tokens
    if limit is None:
        return None
    specials = checkpoint_specials(read_teacher(params)["source"])
    probability, seed = params.distill.timestamp_probability, params.distill.training.seed
    lengths = [
        len(teacher_label(ids, keeps_timestamps(clip_id, probability, seed), specials))
        for clip_id, ids in zip(frame["id"], frame["teacher_token_ids"])
    ]
    return pd.Series(lengths, index=frame.index) <= limit


def sweep_counts(
    frame: pd.DataFrame,
    thresholds: tuple[float | None, ...],
    by: str = "variety",
    keep_rule: Keep = "at_most",
    fits: pd.Series | None = None,
) -> pd.DataFrame:
    """Kept and dropped pairs (and audio hours) per threshold and per `by` group, plus totals; with `fits` (the
    label-length filter, `label_fits`), `dropped_too_long` counts the pairs the WER filter keeps and it drops."""
    rows = []
    references = frame["reference_words"] if "reference_words" in frame else None
    for threshold in thresholds:
        by_wer = keep_mask(frame["teacher_wer"], threshold, keep_rule, references)
        keep = by_wer if fits is None else by_wer & fits
        for group, part in [*frame.groupby(by), ("all", frame)]:
            kept = keep.loc[part.index]
            row = {
                "threshold": threshold_label(threshold),
                by: group,
                "kept": int(kept.sum()),
                "dropped": int((~kept).sum()),
                "total": len(part),
                "kept_fraction": float(kept.mean()) if len(part) else 0.0,
                "kept_hours": float(part.loc[kept, "duration_s"].sum() / 3600),
            }
            if fits is not None:
                row["dropped_too_long"] = int((by_wer & ~fits).loc[part.index].sum())
            rows.append(row)
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
        fits = label_fits(labels, params)
        training = labels.iloc[train_rows]
        kept = {}
        for threshold in params.filter.thresholds:
            by_wer = keep_mask(training["teacher_wer"], threshold, params.filter.keep, training["reference_words"])
            record = {"threshold": threshold, "ids": training.loc[by_wer, "id"].tolist()}
            if fits is not None:  # the WER filter's pairs, in pool order, are where prompts come from (stage 03)
                fitting = by_wer & fits.loc[training.index]
                record = {**record, "ids": training.loc[fitting, "id"].tolist(), "wer_kept": record["ids"]}
            atomic_write_json(layout.training_set(threshold, pool), record)
            kept[threshold_label(threshold)] = len(record["ids"])
        pool_counts = sweep_counts(labels, params.filter.thresholds, keep_rule=params.filter.keep, fits=fits)
        counts.append(pool_counts.assign(pool=pool)[["pool", *pool_counts.columns]])
        summary[pool] = {"pool": len(labels), "held_out": len(eval_ids), "kept_for_training": kept}
    atomic_write_text(layout.sweep_counts, pd.concat(counts, ignore_index=True).to_csv(index=False))
    return summary
