"""Wall time and peak memory of a command and of every process it starts.

    python benchmarks/peak_memory.py --out benchmarks/results/paper_smoke.json -- python -m kdlib run params/paper-smoke.yaml

The command runs with its output passed through; its process tree is sampled every `--every` seconds for
- the sum of PSS (proportional set size: a page shared by n processes counts 1/n in each), the memory the tree
  really holds: DataLoader workers forked from a process that holds a model share its pages;
- the sum of RSS (shared pages counted in every process that maps them: an upper bound);
- the RSS of the largest single process (what `/usr/bin/time -v` reports as its maximum resident set size).
The peaks, when they were reached, the wall time, the CPU time of the command and its descendants (less
dependent than wall time on what else the machine runs) and the machine's load average go to `--out` as JSON and
to one line on stderr; the exit status is the command's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from datetime import datetime
from pathlib import Path

import psutil

MIB = 2**20


def sample(tree: list[psutil.Process]) -> tuple[int, int, int]:
    """(sum of PSS, sum of RSS, largest RSS) of the processes still there, in bytes."""
    pss = rss = largest = 0
    for process in tree:
        try:
            info = process.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        pss += info.pss
        rss += info.rss
        largest = max(largest, info.rss)
    return pss, rss, largest


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine())


def measure(command: list[str], every: float) -> dict:
    load_before = os.getloadavg()
    started = time.perf_counter()
    child = psutil.Popen(command)
    peaks = {"pss": (0, 0.0), "rss_sum": (0, 0.0), "rss_largest": (0, 0.0)}
    while child.poll() is None:
        try:
            tree = [child, *child.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        at = time.perf_counter() - started
        for name, value in zip(peaks, sample(tree)):
            if value > peaks[name][0]:
                peaks[name] = (value, at)
        time.sleep(every)
    exit_status = child.wait()
    wall = time.perf_counter() - started
    used = resource.getrusage(resource.RUSAGE_CHILDREN)  # the command and the descendants it waited for
    return {
        "command": [Path(command[0]).name, *command[1:]],  # no machine path
        "exit_status": exit_status,
        "wall_s": round(wall, 1),
        "cpu_s": round(used.ru_utime + used.ru_stime, 1),
        "load_average_1min": {"start": round(load_before[0], 2), "end": round(os.getloadavg()[0], 2)},
        **{f"peak_{name}_mib": round(value / MIB) for name, (value, _) in peaks.items()},
        **{f"peak_{name}_at_s": round(at, 1) for name, (_, at) in peaks.items()},
        "sampled_every_s": every,
        "machine": f"{cpu_model()}, {psutil.cpu_count()} cores, {round(psutil.virtual_memory().total / 2**30)} GiB",
        "finished": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="JSON file for the measurement")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")
    result = measure(command, args.every)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"wall {result['wall_s'] / 60:.1f} min, CPU {result['cpu_s'] / 60:.1f} min; peak memory of the process tree: PSS {result['peak_pss_mib'] / 1024:.1f}"
        f" GiB (RSS summed {result['peak_rss_sum_mib'] / 1024:.1f} GiB, largest process "
        f"{result['peak_rss_largest_mib'] / 1024:.1f} GiB); exit status {result['exit_status']}",
        file=sys.stderr,
    )
    return result["exit_status"]


if __name__ == "__main__":
    sys.exit(main())
