"""What a run shows while it works: a progress bar for every pass over data, drawn in place on a terminal and
written as whole lines elsewhere (a log under nohup or SLURM gets one line per update, never a line of carriage
returns), and no bar of a library that kdlib's own bars make redundant.

    with progress(total=len(clips), desc="model 2/7 teacher on MSA (set 1/3)", unit="clip") as bar:
        ...
        bar.update(len(batch))

When standard error is not a terminal, a bar writes a line at most every `KDLIB_PROGRESS_S` seconds
(environment; default 30) and a last one when it ends; a bar that ends sooner writes only that last line.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm import tqdm

INTERVAL_ENV = "KDLIB_PROGRESS_S"
DEFAULT_INTERVAL_S = 30.0
_PLAIN_FORMAT = "{desc}: {percentage:.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
_PLAIN_FORMAT_OPEN = "{desc}: {n_fmt} [{elapsed}, {rate_fmt}{postfix}]"  # no total known


def interactive(stream: TextIO | None = None) -> bool:
    """Whether `stream` (default: standard error, where bars go) is a terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def interval_s() -> float:
    """Seconds between two lines of a bar in a log (`KDLIB_PROGRESS_S`, default 30)."""
    try:
        return max(float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S)), 0.0)
    except ValueError:
        return DEFAULT_INTERVAL_S


class _Lines:
    """A stream for a bar in a log: every write becomes one whole line; clearing (blanks, returns) is dropped."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


class PlainBar(tqdm):
    """A tqdm bar for a log: one line per update, at most one per `mininterval` seconds (`set_postfix` included),
    none at its start, and its final state as a last line when it ends (even if it never wrote before)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._last_line = (time.time(), "")  # (when, what) the last line was written: the first comes later
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None, final: bool = False) -> bool:
        if msg == "":  # clears the bar on a terminal: nothing to clear in a log
            return True
        text = self.__str__() if msg is None else msg
        now = time.time()
        if text != self._last_line[1] and (final or now - self._last_line[0] >= self.mininterval):
            self.fp.write(text)
            self.fp.flush()
            self._last_line = (now, text)
        return True

    def close(self) -> None:
        if not getattr(self, "disable", True) and self.leave is not False and hasattr(self, "last_print_t"):
            self._ema_dt = lambda: None  # the overall rate, as tqdm shows at the end
            self.display(final=True)
        self.delay = float("inf")  # tqdm's own close writes nothing more
        super().close()


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    desc: str,
    total: float | None = None,
    unit: str = "it",
    initial: float = 0,
    disable: bool = False,
    leave: bool = True,
) -> tqdm:
    """A progress bar (tqdm's interface: `update`, `set_postfix`, `write`, `close`, a context manager): drawn in place
    when standard error is a terminal, as whole lines at most every `interval_s()` seconds when it is not."""
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    options = {"desc": desc, "total": total, "unit": unit, "initial": initial, "disable": disable, "leave": leave}
    if interactive():
        return tqdm(iterable, dynamic_ncols=True, **options)
    every = interval_s()
    return PlainBar(
        iterable,
        file=_Lines(sys.stderr),
        bar_format=_PLAIN_FORMAT if total else _PLAIN_FORMAT_OPEN,
        mininterval=every,
        maxinterval=max(every, 10.0),
        delay=every,  # no line at the start: the first after `every` seconds, or the last one
        position=0,  # no cursor movement for nested bars
        **options,
    )


def quiet_libraries() -> None:
    """Silence the progress bars of libraries that kdlib's own make redundant: transformers' (loading and writing
    weights) and datasets' (saving and flattening sets). Downloads from the hub keep their bars on a terminal (in
    a log they would be lines of carriage returns). A library's own environment variable
    (`HF_DATASETS_DISABLE_PROGRESS_BARS`, `HF_HUB_DISABLE_PROGRESS_BARS`), when set, is left to rule."""
    import datasets
    import huggingface_hub.utils
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_tqdm_hook(lambda factory, args, kwargs: factory(*args, **{**kwargs, "disable": True}))
    if os.environ.get("HF_DATASETS_DISABLE_PROGRESS_BARS") is None:
        datasets.disable_progress_bars()
    if os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") is None and not interactive():
        huggingface_hub.utils.disable_progress_bars()
