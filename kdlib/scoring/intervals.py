"""Bootstrap intervals of averaged corpus-level WER, and of paired differences between models.

A claim such as "the student beats its no-filter twin by 2 points" is only as good as its
interval. Test clips are resampled with replacement within each test set; every model is
rescored on the same resample (a paired bootstrap), the corpus-level WER of each set is
recomputed from per-clip error and reference-word counts, and averages are unweighted means
over test sets, as in the main table. Percentile intervals; rates are fractions.

Fast by construction: a resample is a row of draw counts per clip, so the resampled corpus
rates of a test set are two matrix-vector products, `counts @ errors / counts @ words`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

CLIP_COLUMNS = ("model", "dataset", "id", "errors", "words")


def resample_counts(clips: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """`resamples × clips`: how often each clip is drawn in each resample (each row sums to `clips`)."""
    if clips < 1:
        raise ValueError("cannot resample an empty test set")
    return rng.multinomial(clips, np.full(clips, 1 / clips), size=resamples)


def resampled_rates(errors: np.ndarray, words: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The corpus rate (total errors / max(total words, 1), as `kdlib.scoring.metrics`) of each resample."""
    return (counts @ errors) / np.maximum(counts @ words, 1)


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central `confidence` share of `samples`."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    low, high = np.quantile(samples, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def _set_rng(seed: int, dataset: str) -> np.random.Generator:
    """One generator per test set, whatever the order of sets: the same resamples for every model."""
    return np.random.default_rng([seed, zlib.crc32(dataset.encode("utf-8"))])


def _rates(clips: pd.DataFrame, resamples: int, seed: int) -> tuple[dict, dict]:
    """Per (model, dataset): the corpus rate and its resampled rates (the same draws for every model)."""
    missing = set(CLIP_COLUMNS) - set(clips.columns)
    if missing:
        raise ValueError(f"clip counts lack the columns {sorted(missing)}")
    estimates, samples = {}, {}
    for dataset, part in clips.groupby("dataset", sort=False):
        ids = part.loc[part["model"] == part["model"].iloc[0], "id"].sort_values().to_numpy()
        counts = resample_counts(len(ids), resamples, _set_rng(seed, str(dataset)))
        for model, rows in part.groupby("model", sort=False):
            rows = rows.sort_values("id")
            if len(rows) != len(ids) or (rows["id"].to_numpy() != ids).any():
                raise ValueError(f"{model!r} was not scored on the same clips of {dataset!r} as the other models")
            errors, words = rows["errors"].to_numpy(float), rows["words"].to_numpy(float)
            estimates[model, dataset] = errors.sum() / max(words.sum(), 1)
            samples[model, dataset] = resampled_rates(errors, words, counts)
    return estimates, samples


def _check_groups(groups: Mapping[str, Sequence[str]], clips: pd.DataFrame) -> None:
    known = set(clips["dataset"])
    for name, datasets in groups.items():
        unknown = sorted(set(datasets) - known)
        if not datasets or unknown:
            raise ValueError(f"average {name!r} names no test set or unknown ones: {unknown}")


def average_intervals(
    clips: pd.DataFrame, groups: Mapping[str, Sequence[str]], resamples: int, seed: int, confidence: float
) -> pd.DataFrame:
    """Per model and average (a group of test sets): the mean corpus rate and its bootstrap interval.

    `clips` has one row per model and clip: `model`, `dataset`, `id`, `errors`, `words`."""
    _check_groups(groups, clips)
    estimates, samples = _rates(clips, resamples, seed)
    rows = []
    for model in dict.fromkeys(clips["model"]):
        for name, datasets in groups.items():
            low, high = percentile_interval(np.mean([samples[model, d] for d in datasets], axis=0), confidence)
            estimate = float(np.mean([estimates[model, d] for d in datasets]))
            rows.append({"model": model, "average": name, "estimate": estimate, "low": low, "high": high})
    return pd.DataFrame(rows, columns=["model", "average", "estimate", "low", "high"])


def difference_intervals(
    clips: pd.DataFrame,
    groups: Mapping[str, Sequence[str]],
    pairs: Sequence[tuple[str, str]],
    resamples: int,
    seed: int,
    confidence: float,
) -> pd.DataFrame:
    """Per pair (model, against) and average: the paired difference of mean rates (model − against),
    its bootstrap interval, and whether the interval excludes 0."""
    _check_groups(groups, clips)
    estimates, samples = _rates(clips, resamples, seed)
    rows = []
    for model, against in pairs:
        for name, datasets in groups.items():
            drawn = np.mean([samples[model, d] - samples[against, d] for d in datasets], axis=0)
            low, high = percentile_interval(drawn, confidence)
            estimate = float(np.mean([estimates[model, d] - estimates[against, d] for d in datasets]))
            rows.append(
                {
                    "model": model,
                    "against": against,
                    "average": name,
                    "difference": estimate,
                    "low": low,
                    "high": high,
                    "excludes_zero": bool(low > 0 or high < 0),
                }
            )
    columns = ["model", "against", "average", "difference", "low", "high", "excludes_zero"]
    return pd.DataFrame(rows, columns=columns)


def claims(differences: pd.DataFrame, metric: str = "WER") -> tuple[list[str], list[str]]:
    """Sentences on the paired differences (rates as percentage points): those whose interval
    excludes 0 (a supported claim of lower or higher `metric`), then those whose interval does not."""
    supported, unsupported = [], []
    for row in differences.itertuples():
        shown = f"{100 * row.difference:+.2f} points [{100 * row.low:+.2f}, {100 * row.high:+.2f}]"
        if row.excludes_zero:
            direction = "lower" if row.difference < 0 else "higher"
            supported.append(f"{row.model} has {direction} {metric} than {row.against} ({row.average}): {shown}")
        else:
            unsupported.append(f"{row.model} vs {row.against} ({row.average}): {shown}, the interval includes 0")
    return supported, unsupported
