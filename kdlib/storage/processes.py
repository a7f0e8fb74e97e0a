"""Child processes that end with the process that started them.

A run killed with SIGKILL (the OOM killer, a scheduler, `kill -9`) gets no chance to stop its children: a
DataLoader worker, a preparation worker or an `accelerate launch` of a stage would live on, reparented to
init, holding its memory (a DataLoader worker blocks for ever at exit, writing a batch into a pipe nobody
reads). `die_with_parent`, run first in each child, asks the Linux kernel to send it a signal when its parent
dies (`prctl(PR_SET_PDEATHSIG)`), and exits at once if the parent is already gone (it died before the call).
Elsewhere it only does the second check. Jupyter kernels (papermill) watch their parent themselves.

SIGTERM is turned into `Terminated`, a KeyboardInterrupt, so that a terminated run ends as an interrupted
one does: its step recorded, one line, exit 143 (`sigterm_raises`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Iterator

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, signal_number: int = signal.SIGKILL) -> None:
    """In a child process: be sent `signal_number` when the process `parent` (its parent's pid, taken in the
    parent) ends; exit now if it already has.

    The kernel sends the signal when the *thread* that started the child ends: start children from a thread
    that lives as long as they should (the main thread, for kdlib's loaders and pools)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal_number), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the check below still catches a parent that is gone
            pass
    if os.getppid() != parent:
        os._exit(1)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, `kill`, a container stopping): handled as Ctrl-C is, finished steps kept."""


def _raise_terminated(signal_number: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises `Terminated` in the main thread (elsewhere: left as it is)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
