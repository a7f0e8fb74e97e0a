"""One run of a profile at a time: `kdlib run` (and a stage command) holds a lock in its run folder.

A second run of the same run folder would build every stage again, at once, over the first one's products;
it stops at once instead, with one line naming the run folder and the run that holds it (its pid and
command). The lock is `fcntl.flock` on `<run_dir>/.kdlib-run.lock`: the system releases it when its process
ends, however it ends, so a killed run leaves no stale lock. The processes of a stage that the runner starts
under `accelerate launch` inherit its lock (an environment mark) instead of taking it; so do the ranks other
than 0 of a stage command launched by hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from kdlib.config import Params
from kdlib.config.errors import KdlibError

LOCK = ".kdlib-run.lock"
HELD = "KDLIB_RUN_LOCK_HELD"  # set while a run holds the lock: the run folder it holds


class RunBusy(KdlibError, RuntimeError):
    """Another kdlib run uses the same run folder."""


@contextlib.contextmanager
def run_lock(params: Params, command: str) -> Iterator[None]:
    """Hold the run folder's lock for the block, or raise RunBusy at once if another run holds it."""
    folder = params.run_path
    if os.environ.get(HELD) == str(folder) or os.environ.get("RANK", "0") != "0":
        yield  # a process of a run that holds it
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            raise RunBusy(
                f"another kdlib run ({holder}) is using {params.run_dir}: wait for it to finish, or give this run "
                "another run_dir"
            ) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"pid {os.getpid()}: {command}".encode())
        previous = os.environ.get(HELD)
        os.environ[HELD] = str(folder)
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(HELD, None)
            else:
                os.environ[HELD] = previous
    finally:
        os.close(descriptor)  # releases the lock


def _holder(path: Path) -> str:
    """What the holder wrote into the lock file: its pid and command."""
    try:
        text = " ".join(path.read_text(encoding="utf-8", errors="replace").split())
    except OSError:
        text = ""
    return text[:200] or "a process that has not said which yet"
