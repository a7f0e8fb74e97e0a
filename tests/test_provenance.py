"""What the run log and the index record of a run: command, params file and hash, commit, date, machine."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kdlib.models.machine import describe_machine
from kdlib.pipeline import provenance


def test_the_command_is_the_one_a_reader_can_type() -> None:
    assert provenance.command_line("params/tiny.yaml") == "kdlib run params/tiny.yaml"
    assert provenance.command_line("params/ci.yaml", ["03", "04"], "02", True, ["distill.training.max_steps=5"]) == (
        "kdlib run params/ci.yaml --only 03 04 --from 02 --force --set distill.training.max_steps=5"
    )


def git(root: Path, *arguments: str) -> None:
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "-C", str(root), *identity, *arguments], check=True, capture_output=True)


def test_commit_marks_uncommitted_changes_outside_the_reports(tmp_path: Path) -> None:
    assert provenance.git_commit(tmp_path) == "not a git checkout"
    git(tmp_path, "init", "-q")
    (tmp_path / "reports").mkdir()
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "reports" / "index.html").write_text("<p>old</p>\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert provenance.git_commit(tmp_path) == head.strip()
    (tmp_path / "reports" / "index.html").write_text("<p>new</p>\n")  # a rerun rewrites reports: still clean
    (tmp_path / "scratch.txt").write_text("untracked\n")
    assert provenance.git_commit(tmp_path) == head.strip()
    (tmp_path / "code.py").write_text("x = 2\n")
    assert provenance.git_commit(tmp_path) == f"{head.strip()} + uncommitted changes"


def test_provenance_names_no_machine_path(tmp_path: Path) -> None:
    (tmp_path / "params").mkdir()
    params = tmp_path / "params" / "p.yaml"
    params.write_text("profile: p\n")
    record = provenance.provenance(params, tmp_path, provenance.command_line("params/p.yaml"))
    assert record["params_file"] == "params/p.yaml" and record["command"] == "kdlib run params/p.yaml"
    assert record["params_sha256"] == hashlib.sha256(b"profile: p\n").hexdigest()
    assert len(record["date"]) == 10 and "T" not in record["date"]  # a date, no time of day
    line = describe_machine(record["machine"])
    assert f"{record['machine']['cpus']} CPUs" in line and "torch" in line
    assert str(tmp_path) not in repr(record) and str(Path.home()) not in line


def test_the_run_log_merges(tmp_path: Path) -> None:
    log = tmp_path / provenance.RUN_LOG
    assert provenance.read_log(log) == {"notebooks": {}}
    provenance.update_log(log, {"profile": "p"}, ("01", {"status": "ok"}))
    merged = provenance.update_log(log, {"date": "2026-01-01"}, ("02", {"status": "failed"}))
    assert (
        merged
        == provenance.read_log(log)
        == {
            "notebooks": {"01": {"status": "ok"}, "02": {"status": "failed"}},
            "profile": "p",
            "date": "2026-01-01",
        }
    )


def test_two_processes_updating_the_run_log_lose_no_entry(tmp_path: Path) -> None:
    log = tmp_path / "run_log.json"
    writer = (
        "import sys\nfrom pathlib import Path\nfrom kdlib.pipeline.provenance import update_log\n"
        "for i in range(300):\n"
        "    update_log(Path(sys.argv[1]), {}, (f'{sys.argv[2]}-{i}', {'status': 'ok'}))\n"
    )
    processes = [subprocess.Popen([sys.executable, "-c", writer, str(log), name]) for name in ("a", "b")]
    assert [process.wait(timeout=120) for process in processes] == [0, 0]
    entries = json.loads(log.read_text())["notebooks"]
    assert len(entries) == 600  # every update of both writers survived


@pytest.mark.parametrize("machine", [{}, {"cpu": "X", "cpus": 2, "memory_gib": None}])
def test_a_partial_machine_record_still_describes(machine: dict) -> None:
    assert "CPUs" in describe_machine(machine)
