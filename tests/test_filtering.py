"""The paper's filter rule: drop a pair when its pseudo-label WER exceeds λ; WER == λ is kept."""

from __future__ import annotations

import pandas as pd
import pytest

from kdlib.stages.filtering import WER_TOLERANCE, keep_mask, split_heldout, sweep_counts


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "teacher_wer": [0.0, 0.1, 0.2, 0.2 + 1e-6, 0.8, 0.8000001, 1.5, 3.0],
            "variety": ["MSA", "MSA", "PAL", "PAL", "YEM", "YEM", "MSA", "PAL"],
            "duration_s": [3600.0] * 8,
        }
    )


def test_wer_equal_to_threshold_is_kept_and_above_is_dropped() -> None:
    wers = pd.Series([0.2, 0.2 + 1e-6, 0.1 + 0.1])  # 0.1 + 0.1 is not exactly 0.2 in floats
    assert keep_mask(wers, 20.0).tolist() == [True, False, True]
    assert WER_TOLERANCE < 1e-6


def test_none_keeps_everything_even_wer_above_100() -> None:
    assert keep_mask(frame()["teacher_wer"], None).all()


@pytest.mark.parametrize(("threshold", "kept"), [(10.0, 2), (20.0, 3), (80.0, 5), (None, 8)])
def test_kept_counts_per_threshold(threshold: float | None, kept: int) -> None:
    assert int(keep_mask(frame()["teacher_wer"], threshold).sum()) == kept


def test_sweep_counts_add_up() -> None:
    counts = sweep_counts(frame(), (10.0, 20.0, 80.0, None))
    for _, part in counts.groupby("threshold"):
        groups, total = part[part["variety"] != "all"], part[part["variety"] == "all"].iloc[0]
        assert groups["kept"].sum() == total["kept"] and groups["dropped"].sum() == total["dropped"]
        assert total["kept"] + total["dropped"] == total["total"] == 8
        assert total["kept_hours"] == pytest.approx(total["kept"])  # every clip is one hour here
    none = counts[(counts["threshold"] == "none") & (counts["variety"] == "all")].iloc[0]
    assert none["kept_fraction"] == 1.0
    # kept counts never decrease as λ grows
    alls = counts[counts["variety"] == "all"].set_index("threshold")["kept"]
    assert list(alls[["10", "20", "80", "none"]]) == sorted(alls)


def test_heldout_split_is_seeded_disjoint_and_never_takes_the_whole_pool() -> None:
    ids = [f"c{i}" for i in range(40)]
    train, held = split_heldout(ids, 0.1, seed=3)
    assert len(held) == 4 and sorted(train + held) == list(range(40)) and not set(train) & set(held)
    assert split_heldout(ids, 0.1, seed=3) == (train, held) and split_heldout(ids, 0.1, seed=4) != (train, held)
    assert split_heldout(ids[:3], 0.01, seed=0)[1] != []  # at least one held-out pair of two or more
    assert split_heldout(ids[:1], 0.5, seed=0) == ([0], [])  # a single pair is kept for training
    assert split_heldout(ids, 0.0, seed=0) == (list(range(40)), [])


def test_stage_02_holds_out_the_same_pairs_for_every_threshold(ci_params, ci_teacher) -> None:
    from kdlib.pipeline.graph import build, stage_named
    from kdlib.stages.products import read_pseudo_labels, read_split, read_training_ids

    build(ci_params, stage_named("01"))
    build(ci_params, stage_named("02"))
    labels = read_pseudo_labels(ci_params).remove_columns("audio").to_pandas().set_index("id")
    held = set(read_split(ci_params)["eval"])
    assert held and held <= set(labels.index)
    kept = {t: read_training_ids(ci_params, t) for t in ci_params.filter.thresholds}
    for threshold, ids in kept.items():
        assert not held & set(ids)
        expected = labels.drop(index=list(held))
        expected = expected[keep_mask(expected["teacher_wer"], threshold)]
        assert ids == expected.index.tolist()  # pool order, exactly the kept pairs
    assert len(kept[None]) == len(labels) - len(held)


def test_the_authors_boundary_drops_a_wer_equal_to_lambda() -> None:
    wers = pd.Series([0.1, 0.2, 0.2 + 1e-12, 0.3])
    assert keep_mask(wers, 20.0, "at_most").tolist() == [True, True, True, False]
    assert keep_mask(wers, 20.0, "below").tolist() == [True, False, False, False]
    assert keep_mask(wers, None, "below").all()
    counts = sweep_counts(frame(), (20.0,), keep_rule="below")
    assert counts.loc[counts["variety"] == "all", "kept"].item() == 2  # 0.0 and 0.1; the two at 20 % go
