"""Stage 01: a killed run resumes to the same dataset; 2 processes (gloo) give the 1-process result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import two_cpu_processes, with_overrides

from kdlib.config import Params, load_params
from kdlib.corpus.preparation import load_mixture
from kdlib.pipeline.graph import build, stage_named
from kdlib.stages.products import read_pseudo_labels
from kdlib.stages.pseudo_label import merge, plan_run

COLUMNS = ["id", "text", "pseudo_label", "pseudo_token_ids", "pseudo_tokens", "teacher_wer", "teacher_cer"]


def labels_frame(params: Params) -> pd.DataFrame:
    return read_pseudo_labels(params).remove_columns("audio").to_pandas()[COLUMNS]


@pytest.fixture(scope="module")
def reference(ci_params: Params, ci_teacher: str) -> pd.DataFrame:
    """The uninterrupted single-process result."""
    build(ci_params, stage_named("01"))
    return labels_frame(ci_params)


def test_every_clip_is_labelled_once_with_its_wer(reference: pd.DataFrame, ci_params: Params) -> None:
    pool = load_mixture(ci_params.data.train, ci_params, "train").dataset
    assert reference["id"].tolist() == pool["id"]
    assert (
        reference["teacher_wer"].between(0, 50).all()
        and (reference["pseudo_tokens"] == reference["pseudo_token_ids"].map(len)).all()
    )


def test_merge_refuses_missing_or_duplicated_chunks(
    ci_params: Params, ci_teacher: str, reference: pd.DataFrame
) -> None:
    pool = load_mixture(ci_params.data.train, ci_params, "train").dataset
    run = plan_run(ci_params, pool, ci_teacher)
    chunks = sorted(run.chunks.glob("chunk-*.parquet"))
    with pytest.raises(RuntimeError, match="exactly once"):
        merge(run, pool, len(chunks) - 1)


def launch(args: list[str], cwd: Path) -> subprocess.Popen:
    # this process' thread count: the child's chunks are keyed by it (`compute_signature`), as `plan_run`'s here
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())}
    return subprocess.Popen(
        [sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_a_killed_run_resumes_without_redoing_chunks(
    ci_yaml: Path, ci_teacher: str, reference: pd.DataFrame, tmp_path: Path
) -> None:
    params_file = with_overrides(ci_yaml, tmp_path / "killed.yaml", run_dir=str(tmp_path / "runs"))
    params = load_params(params_file)
    pool = load_mixture(params.data.train, params, "train").dataset
    run = plan_run(params, pool, ci_teacher)
    process = launch(["-m", "kdlib", "pseudo-label", str(params_file)], tmp_path)
    deadline = time.time() + 120
    while not list(run.chunks.glob("chunk-*.parquet")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = {p.name: p.stat().st_mtime_ns for p in run.chunks.glob("chunk-*.parquet")}
    assert done and not run.is_complete(), "the run should have been killed part-way"
    total = len(list(range(0, len(pool), params.pseudo_label.chunk_size)))
    assert len(done) < total
    build(params, stage_named("01"))
    after = {p.name: p.stat().st_mtime_ns for p in run.chunks.glob("chunk-*.parquet")}
    assert all(after[name] == stamp for name, stamp in done.items())  # finished chunks were not redone
    assert len(after) == total
    pd.testing.assert_frame_equal(labels_frame(params), reference)


def test_two_processes_give_the_single_process_result(
    ci_yaml: Path, ci_teacher: str, reference: pd.DataFrame, tmp_path: Path
) -> None:
    params_file = with_overrides(ci_yaml, tmp_path / "two.yaml", run_dir=str(tmp_path / "runs"))
    command = two_cpu_processes("pseudo-label", str(params_file))
    process = launch(command, tmp_path)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    params = load_params(params_file)
    assert "pseudo-labelling [process 1]" in output  # the second process did its share
    pd.testing.assert_frame_equal(labels_frame(params), reference)


def test_a_truncated_chunk_is_named_and_labelled_again(
    ci_yaml: Path, ci_teacher: str, reference: pd.DataFrame, tmp_path: Path, capsys
) -> None:
    params = load_params(with_overrides(ci_yaml, tmp_path / "truncated.yaml", run_dir=str(tmp_path / "runs")))
    build(params, stage_named("01"))
    pool = load_mixture(params.data.train, params, "train").dataset
    run = plan_run(params, pool, ci_teacher)
    run.labels.unlink()  # as if killed after the chunks, before the merge
    chunk = run.chunk_file(1)
    chunk.write_bytes(chunk.read_bytes()[:50])
    build(params, stage_named("01"))
    assert str(chunk) in capsys.readouterr().err
    pd.testing.assert_frame_equal(labels_frame(params), reference)
