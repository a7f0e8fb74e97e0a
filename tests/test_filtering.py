"""The paper's filter rule: drop a pair when its pseudo-label WER exceeds λ; WER == λ is kept."""

from __future__ import annotations

import pandas as pd
import pytest

from kdlib.filtering import WER_TOLERANCE, keep_mask, sweep_counts


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
    for threshold, part in counts.groupby("threshold"):
        groups, total = part[part["variety"] != "all"], part[part["variety"] == "all"].iloc[0]
        assert groups["kept"].sum() == total["kept"] and groups["dropped"].sum() == total["dropped"]
        assert total["kept"] + total["dropped"] == total["total"] == 8
        assert total["kept_hours"] == pytest.approx(total["kept"])  # every clip is one hour here
    none = counts[(counts["threshold"] == "none") & (counts["variety"] == "all")].iloc[0]
    assert none["kept_fraction"] == 1.0
    # kept counts never decrease as λ grows
    alls = counts[counts["variety"] == "all"].set_index("threshold")["kept"]
    assert list(alls[["10", "20", "80", "none"]]) == sorted(alls)


def test_filtered_sets_are_written_per_threshold_and_may_be_empty(tmp_path) -> None:
    import datasets

    from kdlib.filtering import load_filtered, write_filtered_sets

    labels_dir = tmp_path / "pseudo" / "dataset"
    datasets.Dataset.from_dict({"id": ["a", "b", "c"], "teacher_wer": [0.05, 0.5, 1.2]}).save_to_disk(str(labels_dir))
    paths = write_filtered_sets(labels_dir, (1.0, 10.0, 80.0, None))
    assert set(paths) == {"1", "10", "80", "none"}
    assert [len(load_filtered(labels_dir, t)) for t in (1.0, 10.0, 80.0, None)] == [0, 1, 2, 3]
    assert list(load_filtered(labels_dir, 80.0)["id"]) == ["a", "b"]
