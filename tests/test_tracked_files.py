"""Runs leave tracked files alone: everything a run writes lies in folders git ignores (its run folder, with its
reports, and the cache), `make clean` deletes no tracked file, and only `make example` remakes the committed example
report (reports/tiny). A rerun with nothing changed therefore leaves `git status` clean."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

from kdlib.config import load_params
from kdlib.pipeline.graph import STAGES
from kdlib.storage.paths import RunLayout

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or not (REPO / ".git").exists(), reason="not a git checkout"
)
PROFILES = sorted((REPO / "params").glob("*.yaml"))


def git(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *arguments], capture_output=True, text=True, check=False)


def ignored(path: Path) -> bool:
    """Whether git ignores a file at `path` (which need not exist)."""
    return git("check-ignore", "-q", "--no-index", str(path.relative_to(REPO))).returncode == 0


def tracked(path: Path) -> list[str]:
    return git("ls-files", "--", str(path.relative_to(REPO))).stdout.split()


@pytest.mark.parametrize("profile", PROFILES, ids=[path.stem for path in PROFILES])
def test_every_file_a_run_writes_is_in_an_ignored_folder(profile: Path) -> None:
    params = load_params(profile)
    layout = RunLayout(params)
    written = [
        params.reports_path / "index.html",
        params.reports_path / "run_log.json",
        params.reports_path / "01_pseudo_label.ipynb",
        params.reports_path / "tables" / "efficiency.csv",  # latencies: measured on the machine of the run
        params.reports_path / "figures" / "threshold_wer.png",
        *(layout.manifest(stage.name) for stage in STAGES),
        layout.student_work("DW-2-2", 80.0, "key") / "model" / "README.md",
        layout.prepared("MSA", "key") / "data.arrow",
        layout.trained_teacher("key") / "model.safetensors",
    ]
    for path in written:
        assert path.resolve().is_relative_to(REPO), path
        assert ignored(path.resolve()), f"{profile.name}: a run writes {path.relative_to(REPO)}, which git tracks"
        assert tracked(path.resolve()) == [], path


def test_the_notebooks_opened_in_jupyterlab_write_under_an_ignored_folder() -> None:
    for notebook in sorted((REPO / "notebooks").glob("*.py")):
        default = re.search(r'^params_file = "(.+)"$', notebook.read_text(encoding="utf-8"), re.MULTILINE)
        assert default, notebook.name
        params = load_params(REPO / default.group(1))
        assert ignored(params.reports_path.resolve() / "tables" / "corpora.csv"), notebook.name


def dry_run(target: str) -> list[str]:
    make = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True, check=True)
    return make.stdout.splitlines()


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_clean_deletes_no_tracked_file_and_only_make_example_writes_the_example() -> None:
    (removal,) = [line for line in dry_run("clean") if line.startswith("rm ")]
    for target in removal.split()[2:]:
        assert tracked(REPO / target) == [], f"make clean removes tracked files under {target}"
    assert not any("reports/tiny" in line for line in dry_run("reproduce"))
    assert any("mv reports/tiny.new reports/tiny" in line for line in dry_run("example"))
    (measure,) = [line for line in dry_run("smoke-paper") if "peak_memory.py" in line]
    out = measure.split("--out ")[1].split()[0]
    assert ignored(REPO / out) and tracked(REPO / out) == []  # a measurement is recorded by hand, on purpose
