"""Batches read off the compute thread: a `torch.utils.data.DataLoader` over precomputed batch plans.

Pseudo-labelling, evaluation and training each decide *which* rows form batch i (length-sorted
batches, or the training loop's seeded micro-batches); a `DataLoader` with `data.loader_workers`
worker processes then reads, decodes and pads batch i ahead of time, in order. A batch is a pure
function of its index, so the order and the results are those of a loop without workers, and a
resumed run starts at the batch it stopped at.

Prepared sets are memory-mapped; a pass over a large set would leave every page it touched mapped
into the reading process (its RSS grows with the set). `MappedRows` re-opens its dataset every
`REOPEN_EVERY` reads, which unmaps what was read: the memory of a pass does not grow with the set.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import datasets
import torch

REOPEN_EVERY = 32  # batches read between two re-openings of a memory-mapped dataset


class MappedRows:
    """Rows of a dataset, read by index lists; the dataset is re-opened every `REOPEN_EVERY` reads."""

    def __init__(self, dataset: datasets.Dataset) -> None:
        self.dataset = dataset
        self.reads = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def rows(self, indices: Sequence[int], columns: Sequence[str]) -> dict[str, list]:
        self.reads += 1
        if self.reads % REOPEN_EVERY == 0:  # a pickle round trip maps the Arrow files afresh
            self.dataset = pickle.loads(pickle.dumps(self.dataset))
        return self.dataset.select_columns(list(columns)).select(indices).to_dict()


class PlannedBatches(torch.utils.data.Dataset):
    """Batch i is `make(i)`: the unit a `DataLoader` with `batch_size=None` hands out, in index order."""

    def __init__(self, count: int, make: Callable[[int], Any]) -> None:
        self.count, self.make = count, make

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Any:
        return self.make(index)


def resolve_workers(workers: int | None) -> int:
    """`data.loader_workers`, or one fewer than the cores (the main process computes) when unset."""
    return max((os.cpu_count() or 1) - 1, 0) if workers is None else workers


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
    )


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

    @property
    def share(self) -> float:
        """The share of wall time spent waiting for data (0 when the loader always kept ahead)."""
        return self.waiting / max(time.perf_counter() - self.started, 1e-9)
