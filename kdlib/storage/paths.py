"""Every path a run reads or writes, in one place.

A profile's run folder (`run_dir`) holds one folder per stage with its products and its
`manifest.json`, plus the content-keyed work folders of the expensive steps that belong to a
run (pseudo-label chunks, student checkpoints, per-model predictions). The shared cache
(`cache_dir`) holds what several profiles may share (spoken corpus, prepared sets, trained
teacher). Products record paths inside the run folder relative to it, and cache paths relative to the
repository (as they are when `cache_dir` is absolute: `recorded`), so a run folder may be copied or moved.
"""

from __future__ import annotations

import os
from pathlib import Path

from kdlib.config import Params, repository_of, threshold_label


def repo_root(start: Path) -> Path:
    """The nearest directory at or above `start` that holds `pyproject.toml` (else FileNotFoundError)."""
    root = repository_of(start)
    if root is None:
        raise FileNotFoundError(
            f"no pyproject.toml at or above {Path(start).resolve()}: not inside the kdlib repository"
        )
    return root


def relative(params: Params, path: str | Path) -> str:
    """`path` relative to the repository when it lies inside it (what products record)."""
    path = Path(path)
    return str(path.relative_to(params.base_path)) if path.is_relative_to(params.base_path) else str(path)


def absolute(params: Params, path: str | Path) -> Path:
    """The inverse of `relative`: a recorded path, resolved against the repository."""
    path = Path(path)
    return path if path.is_absolute() else params.base_path / path


def recorded(params: Params, path: str | Path) -> str:
    """How products record a path: one in the shared cache relative to the repository only when `cache_dir` is
    spelled relative to it (the cache moves with the repository), else as it is (a cache elsewhere stays where it
    is, whichever params file reads the record); any other path as `relative` gives it."""
    path = Path(path)
    if Path(params.cache_dir).is_absolute() and path.is_relative_to(params.cache_path):
        return str(path)
    return relative(params, path)


def in_run(params: Params, path: str | Path) -> str:
    """A path inside the run folder, relative to it (what products record, so a copied run folder works)."""
    return os.path.relpath(path, params.run_path)


def from_run(params: Params, path: str | Path) -> Path:
    """The inverse of `in_run`."""
    return params.run_path / path


class RunLayout:
    """The products of each stage and the work folders of one profile's run."""

    def __init__(self, params: Params) -> None:
        self.root = params.run_path
        self.cache = params.cache_path

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def manifest(self, stage: str) -> Path:
        return self.stage_dir(stage) / "manifest.json"

    # 01_pseudo_label
    @property
    def corpora(self) -> Path:
        """The prepared pool and test sets: where each is, its clips and its skipped clips."""
        return self.stage_dir("01_pseudo_label") / "corpora.json"

    @property
    def teacher(self) -> Path:
        """Where the teacher is (hub id or folder) and its digest."""
        return self.stage_dir("01_pseudo_label") / "teacher.json"

    @property
    def pseudo_labels(self) -> Path:
        """Per pool labelled: where its pseudo-labels are (`labels.parquet`), their content key and clips."""
        return self.stage_dir("01_pseudo_label") / "pseudo_labels.json"

    def pseudo_label_work(self, key: str) -> Path:
        """Chunks and merged dataset of one pseudo-labelling run (content-keyed, resumable)."""
        return self.root / "pseudo_labels" / key

    # 02_filter_sweep
    def split(self, pool: str) -> Path:
        """A pool's held-out ids, the same for every student and λ."""
        return self.stage_dir("02_filter_sweep") / pool / "split.json"

    def training_set(self, threshold: float | None, pool: str) -> Path:
        """The ids of a pool's training pairs λ keeps (held-out ids excluded)."""
        return self.stage_dir("02_filter_sweep") / pool / f"lambda-{threshold_label(threshold)}.json"

    @property
    def sweep_counts(self) -> Path:
        """Kept and dropped pairs per pool, λ and variety."""
        return self.stage_dir("02_filter_sweep") / "sweep_counts.csv"

    # 03_distill
    @property
    def students(self) -> Path:
        """One record per student and λ: status, model folder, pairs, steps, losses."""
        return self.stage_dir("03_distill") / "students.json"

    @property
    def student_sizes(self) -> Path:
        """Parameters and copied teacher layers of every trained student and of those only counted."""
        return self.stage_dir("03_distill") / "student_sizes.csv"

    def student_work(self, name: str, threshold: float | None, key: str) -> Path:
        """Checkpoints, logs and final model of one distillation run (`name`: `kdlib.config.run_name`;
        content-keyed, resumable)."""
        return self.root / "students" / f"{name}-lambda{threshold_label(threshold)}-{key}"

    # 04_evaluate
    @property
    def predictions(self) -> Path:
        return self.stage_dir("04_evaluate") / "predictions.parquet"

    @property
    def scores(self) -> Path:
        return self.stage_dir("04_evaluate") / "scores.csv"

    @property
    def efficiency(self) -> Path:
        return self.stage_dir("04_evaluate") / "efficiency.csv"

    @property
    def intervals(self) -> Path:
        """Bootstrap intervals of every model's WER averages, per view."""
        return self.stage_dir("04_evaluate") / "intervals.csv"

    @property
    def differences(self) -> Path:
        """Bootstrap intervals of the paired WER differences between models, per view."""
        return self.stage_dir("04_evaluate") / "differences.csv"

    def model_predictions(self, key: str) -> Path:
        """One model's predictions on every test set (content-keyed)."""
        return self.root / "evaluation" / "models" / f"{key}.parquet"

    # 05_error_analysis
    @property
    def categories(self) -> Path:
        return self.stage_dir("05_error_analysis") / "categories.parquet"

    # the shared cache
    def prepared(self, name: str, key: str) -> Path:
        return self.cache / "prepared" / f"{name}-{key}"

    def trained_teacher(self, key: str) -> Path:
        return self.cache / "teacher" / key

    def random_teacher(self, key: str) -> Path:
        """A teacher with random weights (`teacher.source: random`): its model folder."""
        return self.cache / "teacher" / f"random-{key}" / "model"

    def packaged_teacher(self, name: str, key: str) -> Path:
        """A hub model converted from registry packages (`teacher.source: package`): its model folder."""
        return self.cache / "teacher" / f"{name}-{key}" / "model"
