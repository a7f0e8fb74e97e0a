"""What a user's terminal shows: `kdlib run` on the ci profile prints only kdlib's own lines (the plan with times,
stage counters, progress bars as whole lines when the output is not a terminal, k/N counters over pools, students,
models and test sets) and no warning of any library; progress bars in a log are one line per update."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, with_overrides

from kdlib.storage import progress

KDLIB_LINES = [  # every line a run may print, as kdlib writes it
    r"plan for \S+ \(\d+ stages?\):",
    r"  \d\d_\w+ +(build \+ render|render) +(~.+|\?) +.+",
    r"  time: .+",
    r"\[\d+/\d+\] \d\d_\w+",
    r"    built in [\d.]+ s: .+",
    r"    ok in [\d.]+ s",
    r"report: .+index\.html",
    r".+: \d+% \d[\d,]*/\d[\d,]* \[[\d:]+<[\d:?]+, .+\]",  # a progress bar's line
    r".+: waited for data [\d.]+% of the time",
    r"student \d+/\d+ .+: (skipped: .+|trained before, reused)",
    r"student \d+/\d+ .+ at step \d+: .+",
    r"models: the predictions of \d+ of \d+ are cached",
    r"preflight: (ok|nothing to check|\d+ problems? \(below, on stderr\))",  # the preflight's summary
    r"  (ok|note|warn) +\S.+",  # and each of its findings
]
NOISE = re.compile(
    r"Warning|WARNING|ERROR|Error:|Traceback|KeyboardInterrupt|\[transformers\]|\[IPKernelApp\]|deprecat"
)


def foreign_lines(output: str) -> list[str]:
    """The lines of `output` that are not kdlib's own (`KDLIB_LINES`), or that look like a warning."""
    own = re.compile("|".join(f"(?:{pattern})" for pattern in KDLIB_LINES))
    return [line for line in output.splitlines() if line.strip() and (not own.fullmatch(line) or NOISE.search(line))]


def test_the_check_finds_foreign_lines() -> None:
    output = "\n".join(
        [
            "[1/5] 01_pseudo_label",
            "model 1/3 teacher on MSA (set 1/3): 100% 3/3 [00:00<00:00,  3.67clip/s, data_wait=32%]",
            "[transformers] Both `max_new_tokens` (=24) and `max_length`(=48) seem to have been set.",
            "[IPKernelApp] WARNING | Kernel is running over TCP without encryption.",
            "/x/site-packages/foo.py:3: FutureWarning: bar",
        ]
    )
    assert foreign_lines(output) == output.splitlines()[2:]


def test_a_bar_in_a_log_is_whole_lines_at_most_one_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    log = io.StringIO()  # not a terminal
    monkeypatch.setattr(sys, "stderr", log)
    monkeypatch.setenv(progress.INTERVAL_ENV, "3600")
    with progress.progress(total=1000, desc="model 2/7 teacher on MSA (set 1/3)", unit="clip") as bar:
        for _ in range(1000):
            bar.update(1)
            bar.set_postfix(data_wait="3%")
    with progress.progress(range(3), desc="held-out pairs", unit="clip", leave=False) as inner:
        list(inner)
    lines = log.getvalue().splitlines(keepends=True)
    assert "\r" not in log.getvalue()
    assert len(lines) == 1 and lines[0].startswith("model 2/7 teacher on MSA (set 1/3): 100% 1000/1000 [")
    assert lines[0].rstrip().endswith("data_wait=3%]")


def test_on_a_terminal_the_bar_is_tqdms_own(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress.progress(total=3, desc="speaking", unit="clip") as bar:
        bar.update(3)
    assert not isinstance(bar, progress.PlainBar) and "\r" in terminal.getvalue()


@pytest.mark.slow
def test_a_run_prints_only_kdlibs_lines_and_no_warning(ci_yaml: Path, ci_teacher: str, tmp_path: Path) -> None:
    """The whole ci profile in a subprocess, as `make reproduce` runs it (its teacher and corpora from the session's
    cache, so every stage is built but the teacher is not trained again)."""
    params = with_overrides(
        ci_yaml, tmp_path / "quiet.yaml", run_dir=str(tmp_path / "runs"), reports_dir=str(tmp_path / "reports")
    )
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    environment.pop("KDLIB_PROGRESS_S", None)
    finished = subprocess.run(
        [sys.executable, "-m", "kdlib", "run", str(params)],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert foreign_lines(finished.stderr) == [] and foreign_lines(finished.stdout) == []
    assert "\r" not in finished.stderr  # a log, not a terminal: whole lines
    for counter in ("pool 1/2 default: pseudo-labelling", "student 2/3 ", "model 3/3 ", "(set 3/3)", "timing "):
        assert counter in finished.stderr, counter
    assert "[5/5] 05_error_analysis" in finished.stdout

    replanned = subprocess.run(  # the plan now knows how long each stage takes
        [sys.executable, "-m", "kdlib", "run", str(params), "--plan"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert re.search(r"01_pseudo_label +render +~\d+ s", replanned.stdout), replanned.stdout
    assert "time: ~" in replanned.stdout and replanned.stderr == ""
