"""Batches read off the compute thread: a `torch.utils.data.DataLoader` over precomputed batch plans.

Pseudo-labelling, evaluation and training each decide *which* rows form batch i (length-sorted
batches, or the training loop's seeded micro-batches); a `DataLoader` with `data.loader_workers`
worker processes then reads, decodes and pads batch i ahead of time, in order. A batch is a pure
function of its index, so the order and the results are those of a loop without workers, and a
resumed run starts at the batch it stopped at.

Prepared sets are memory-mapped; a pass over a large set would leave every page it touched (and the
pages the kernel read around them) mapped into the reading process: its RSS would grow with the set.
`MappedRows` maps its dataset afresh in each process that reads it, and again whenever the file pages
mapped by its reads exceed `REMAP_ABOVE_MIB`, which unmaps them: the memory of a pass does not grow
with the set (1K or 1M clips).
"""

from __future__ import annotations

import functools
import os
import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import datasets
import torch

from kdlib.storage.processes import die_with_parent

REMAP_ABOVE_MIB = 256  # file pages a reader may map before its dataset is mapped afresh


class MappedRows:
    """Rows of a dataset, read by index lists through this process' own mapping of its Arrow files."""

    def __init__(self, dataset: datasets.Dataset) -> None:
        self.dataset = dataset
        self._mapped_in: int | None = None  # the process whose mapping `self._own` is
        self._own: datasets.Dataset | None = None
        self._baseline = 0.0

    def rows(self, indices: Sequence[int], columns: Sequence[str]) -> dict[str, list]:
        if self._mapped_in != os.getpid() or mapped_file_mib() > self._baseline + REMAP_ABOVE_MIB:
            self._own = None  # unmapped once nothing refers to it
            self._own = pickle.loads(pickle.dumps(self.dataset))  # a pickle round trip maps the files afresh
            self._mapped_in, self._baseline = os.getpid(), mapped_file_mib()
        return self._own.select_columns(list(columns)).select(indices).to_dict()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_own": None, "_mapped_in": None}


def mapped_file_mib() -> float:
    """File-backed resident memory of this process (Linux `RssFile`, MiB); 0 where the system does not say."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("RssFile:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class PlannedBatches(torch.utils.data.Dataset):
    """Batch i is `make(i)`: the unit a `DataLoader` with `batch_size=None` hands out, in index order."""

    def __init__(self, count: int, make: Callable[[int], Any]) -> None:
        self.count, self.make = count, make

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Any:
        return self.make(index)


SHARED_CORES = 2  # up to this many cores, the main process keeps them all: no loader workers by default


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the system says, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def resolve_workers(workers: int | None) -> int:
    """`data.loader_workers`, or by the cores when unset: none on up to `SHARED_CORES` cores (a worker there takes
    a core from the model's threads: on 2 cores, training steps measured 12 % slower with one worker, and
    transcription 14 % slower than with its read-ahead thread, see benchmarks/results/README.md), else one fewer
    than the cores (the main process computes). Under a launch of several processes on one machine
    (`LOCAL_WORLD_SIZE`, which accelerate sets), each process counts its share of the cores."""
    if workers is not None:
        return workers
    cores = usable_cores() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return 0 if cores <= SHARED_CORES else cores - 1


def planned_loader(
    count: int, make: Callable[[int], Any], workers: int | None, device: torch.device | str = "cpu"
) -> torch.utils.data.DataLoader:
    """A loader of batches `make(0) … make(count - 1)`, read `workers` at a time ahead of the consumer."""
    workers = resolve_workers(workers)
    return torch.utils.data.DataLoader(
        PlannedBatches(count, make),
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        prefetch_factor=2 if workers else None,
        pin_memory=torch.device(device).type == "cuda",
        worker_init_fn=functools.partial(_worker_dies_with_parent, os.getpid()) if workers else None,
    )


def _worker_dies_with_parent(parent: int, worker_id: int) -> None:
    """A loader worker ends when the process reading its batches ends, even by SIGKILL (`die_with_parent`)."""
    die_with_parent(parent)


class WaitClock:
    """Time spent waiting for the next batch, against the time since the clock started."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.waiting = 0.0

    def timed(self, batches: Iterator[Any]) -> Iterator[Any]:
        iterator = iter(batches)
        while True:
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            self.waiting += time.perf_counter() - start
            yield batch

    def postfix(self, audio_s: float) -> dict[str, str]:
        """A progress bar's rates: audio seconds per wall second, and the share spent waiting for data."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        return {"audio_s_per_s": f"{audio_s / elapsed:.1f}", "data_wait": f"{self.share:.0%}"}

    @property
    def share(self) -> float:
        """The share of wall time spent waiting for data (0 when the loader always kept ahead)."""
        return self.waiting / max(time.perf_counter() - self.started, 1e-9)
