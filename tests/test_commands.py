"""The command line as a user meets it: every problem of a params file at once (one line each, exit 2), a quiet end
when the reader of its output goes away (`kdlib params | head`), `make lab` at the repository root on a chosen port,
and `kdlib push-to-hub` (a dry run lists what would go; the upload is checked against a stand-in of the Hub API)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO
from safetensors.torch import save_file

from kdlib import cli
from kdlib.models import hub

BROKEN = """profile: broken
run_dir: runs/broken
reports_dir: reports/broken
devise: cpu
data:
  max_duration_s: -1
  shard_mib: many
evaluate:
  latency_clips: 0
"""


def errors(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_every_problem_of_a_params_file_is_reported_at_once(tmp_path: Path, capsys) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    assert cli.main(["params", str(path)]) == cli.EXIT_USAGE
    assert errors(capsys) == [
        f"error: {path}: unknown key 'devise' (did you mean 'device'?)",
        f"error: {path}: 'data.max_duration_s' must be > 0, got -1.0",
        f"error: {path}: 'data.shard_mib' must be an integer, got 'many'",
        f"error: {path}: 'evaluate.latency_clips' must be ≥ 1, got 0",
    ]


def test_every_broken_rule_between_params_is_reported_at_once(tmp_path: Path, capsys) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "profile: rules\nrun_dir: r\nreports_dir: s\nfilter: {thresholds: [10, 80], selected: 40}\n"
        "evaluate: {views: [orthographic], headline_view: normalized}\n"
        "distill: {runs: [{student: DW-1-1, thresholds: [20]}], training: {max_steps: 5, epochs: 1}}\n",
        encoding="utf-8",
    )
    assert cli.main(["run", str(path), "--plan"]) == cli.EXIT_USAGE
    problems = errors(capsys)
    assert len(problems) == 4 and all(line.startswith(f"error: {path}: ") for line in problems)
    for text in ("threshold 20 of DW-1-1", "'distill.training'", "'evaluate.headline_view'", "filter.selected"):
        assert sum(text in line for line in problems) == 1, text
    assert not (tmp_path / "r").exists()


def test_every_bad_setting_is_reported_at_once(tmp_path: Path, capsys) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("profile: ok\nrun_dir: r\nreports_dir: s\n", encoding="utf-8")
    argv = ["params", str(path), "--set", "distill.training.max_stepz=5", "--set", "evaluate.latency_clips=0"]
    assert cli.main([*argv, "--set", "device=cpu", "--set", "x"]) == cli.EXIT_USAGE
    assert [line.split(":")[1].strip() for line in errors(capsys)] == [
        "--set distill.training.max_stepz=5",
        "--set evaluate.latency_clips=0",
        "--set x",
    ]


def test_output_into_a_closed_pipe_ends_quietly() -> None:
    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before the first line (as `head` is after its lines)
    finished = subprocess.run(
        [sys.executable, "-m", "kdlib", "params"],
        cwd=REPO,
        stdout=writer,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    os.close(writer)
    assert (finished.returncode, finished.stderr) == (0, "")


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_lab_serves_the_repository_root_on_the_chosen_port(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    dry = subprocess.run(
        ["make", "-n", "lab", f"VENV={venv}", "PORT=9123"], cwd=REPO, capture_output=True, text=True, check=True
    )
    (launch,) = [line for line in dry.stdout.splitlines() if "jupyter lab" in line]
    assert "--port=9123" in launch and f'--ServerApp.root_dir="{REPO}"' in launch
    assert "notebooks/" not in launch  # params, runs and reports can be browsed too


def model_folder(folder: Path, card: bool = True) -> Path:
    """A whole (tiny) checkpoint as stage 03 leaves it, with files a push must not send beside it."""
    folder.mkdir(parents=True)
    for name in ("config.json", "generation_config.json", "processor_config.json", "tokenizer.json"):
        (folder / name).write_text("{}", encoding="utf-8")
    save_file({"weight": torch.zeros(4)}, str(folder / "model.safetensors"))
    if card:
        (folder / "README.md").write_text("---\nlanguage: ar\n---\n# DW-2-2\n", encoding="utf-8")
    (folder / "optimizer.pt").write_bytes(b"pickle")  # never uploaded: kdlib publishes safetensors only
    (folder / ".lock").write_text("", encoding="utf-8")
    return folder


def test_a_dry_run_lists_what_would_be_uploaded(tmp_path: Path, capsys) -> None:
    folder = model_folder(tmp_path / "DW-2-2-lambda80-key" / "model")
    assert cli.main(["push-to-hub", str(folder), "you/dw-2-2-arabic", "--dry-run"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0].startswith("would upload 6 files (") and shown[0].endswith(" MB) to you/dw-2-2-arabic:")
    assert [line.split()[0] for line in shown[1:]] == [
        "README.md",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "processor_config.json",
        "tokenizer.json",
    ]


class StandInHub:
    """What kdlib asks of `huggingface_hub.HfApi`, recorded; the upload applies the patterns as the Hub client does."""

    def __init__(self) -> None:
        self.repositories: list[tuple[str, dict]] = []
        self.branches: list[tuple[str, str]] = []
        self.uploaded: list[str] = []
        self.revision: str | None = None

    def create_repo(self, repo_id: str, **options) -> str:
        self.repositories.append((repo_id, options))
        return f"https://huggingface.co/{repo_id}"

    def create_branch(self, repo_id: str, *, branch: str, **options) -> None:
        self.branches.append((repo_id, branch))

    def upload_folder(self, *, folder_path: str, repo_id: str, ignore_patterns: list[str], **options) -> str:
        from huggingface_hub.utils import filter_repo_objects

        self.revision = options.get("revision")
        folder = Path(folder_path)
        names = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
        self.uploaded = list(filter_repo_objects(names, ignore_patterns=ignore_patterns))
        return f"https://huggingface.co/{repo_id}/commit/abc"


def test_a_push_creates_the_repository_and_uploads_the_folder_with_its_card(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "model")
    api = StandInHub()
    url = hub.push_to_hub(folder, "you/dw-2-2-arabic", private=True, api=api)
    assert url == "https://huggingface.co/you/dw-2-2-arabic/commit/abc"
    assert api.repositories == [("you/dw-2-2-arabic", {"repo_type": "model", "private": True, "exist_ok": True})]
    assert api.uploaded == hub.upload_files(folder) and "README.md" in api.uploaded
    assert not any(name.endswith(".pt") or name.startswith(".") for name in api.uploaded)
    assert api.branches == [] and api.revision is None
    hub.push_to_hub(folder, "you/dw-2-2-arabic", revision="lambda-80", api=api)  # a branch, made if missing
    assert api.branches == [("you/dw-2-2-arabic", "lambda-80")] and api.revision == "lambda-80"


def test_a_push_refuses_a_folder_without_a_card_or_weights(tmp_path: Path, capsys) -> None:
    bare = model_folder(tmp_path / "bare", card=False)
    assert cli.main(["push-to-hub", str(bare), "you/x", "--dry-run"]) == cli.EXIT_USAGE
    assert "no model card (README.md)" in capsys.readouterr().err
    (bare / "model.safetensors").unlink()
    assert cli.main(["push-to-hub", str(bare), "you/x", "--dry-run"]) == cli.EXIT_USAGE
    assert "not a whole checkpoint" in capsys.readouterr().err
    with pytest.raises(ValueError, match="OWNER/NAME"):
        hub.plan_upload(model_folder(tmp_path / "good"), "no-owner")


@pytest.mark.slow
def test_a_student_of_a_run_is_found_by_name(ci_yaml: Path, ci_report: Path, capsys) -> None:
    argv = ["push-to-hub", str(ci_yaml), "you/dw-1-1", "--student", "DW-1-1", "--threshold", "none", "--dry-run"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "to you/dw-1-1:" in out and "README.md" in out and "model.safetensors" in out
    assert cli.main([*argv[:5], "--threshold", "80", "--dry-run"]) == cli.EXIT_USAGE  # λ=80 keeps no pairs in ci
    assert "DW-1-1 λ=80 was not trained" in capsys.readouterr().err
