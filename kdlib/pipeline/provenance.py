"""Where a run's reports come from, and its record: the command, the params file (relative to the repository)
and its hash, the git commit, the date and the machine, kept in `<reports_dir>/run_log.json` with each
stage's status and wall time. Nothing here names a machine path: reports are shared as they are.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from kdlib.models.machine import machine_info
from kdlib.storage.cache import atomic_write_json, entry_lock

RUN_LOG = "run_log.json"


def read_log(path: Path) -> dict[str, Any]:
    """The run log at `path` (an empty one if there is none yet)."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"notebooks": {}}


def update_log(path: Path, changes: Mapping[str, Any], entry: tuple[str, dict] | None = None) -> dict[str, Any]:
    """Merge `changes` (and one stage's entry) into the run log as it is on disk now (one writer at a time)."""
    with entry_lock(path):
        log = read_log(path)
        log.update(changes)
        if entry is not None:
            log["notebooks"][entry[0]] = entry[1]
        atomic_write_json(path, log)
    return log


def git_commit(root: Path) -> str:
    """The commit checked out at `root`, '+ uncommitted changes' when tracked files outside `reports/` differ
    from it; 'not a git checkout' elsewhere."""

    def git(*arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(root), *arguments], capture_output=True, text=True, check=False)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return "not a git checkout"
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)reports").stdout
    except OSError:  # no git on this machine
        return "unknown (git not found)"
    return head.stdout.strip() + (" + uncommitted changes" if changed.strip() else "")


def params_digest(path: Path) -> str:
    """The sha256 of the params file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def command_line(
    params_file: str,
    only: Sequence[str] | None = None,
    start: str | None = None,
    force: bool = False,
    settings: Sequence[str] = (),
) -> str:
    """The `kdlib run` command of a run, with its params file as given relative to the repository."""
    parts = ["kdlib", "run", params_file]
    parts += ["--only", *only] if only else []
    parts += ["--from", start] if start else []
    parts += ["--force"] if force else []
    for setting in settings:
        parts += ["--set", setting]
    return " ".join(parts)


def provenance(params_path: Path, root: Path, command: str) -> dict[str, Any]:
    """What the run log records of a run: the command, the params file relative to `root` and its hash,
    the commit, the date (no time of day: reruns of the same results render the same pages) and the machine."""
    return {
        "command": command,
        "params_file": os.path.relpath(params_path, root),
        "params_sha256": params_digest(params_path),
        "commit": git_commit(root),
        "date": date.today().isoformat(),
        "machine": machine_info(),
    }


def scrub_paths(text: str, params: Any, root: Path) -> str:
    """`text` (an error recorded in the run log and the index) without this machine's paths: the run, reports and
    cache folders as params spell them, the repository's other paths relative to it, the home folder as `~`."""
    spelled = [
        (params.run_path, params.run_dir),
        (params.reports_path, params.reports_dir),
        (params.cache_path, params.cache_dir),
    ]
    replacements: dict[str, str] = {}
    for path, spelling in spelled:
        for form in {str(path), str(Path(path).resolve())} - {os.sep}:
            replacements[form] = spelling
    for folder in {params.base_path, root}:
        for form in {str(folder), str(Path(folder).resolve())} - {os.sep}:  # not `/` itself
            replacements[form + os.sep] = ""
            replacements[form] = "."
    home = str(Path.home())
    if len(home) > 1:
        replacements[home] = "~"
    for found in sorted(replacements, key=len, reverse=True):  # the longest first: a run folder before its repository
        text = text.replace(found, replacements[found])
    return text
