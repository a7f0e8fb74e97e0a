"""The machine a run or a training happens on, in words (no host name or path); torch is read only when asked."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Where a run happens: CPU model and count, memory, accelerator, operating system, Python and torch."""
    import torch

    pages = os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": round(pages * os.sysconf("SC_PAGE_SIZE") / 2**30) if pages else None,
        "accelerator": f"{gpus} × {torch.cuda.get_device_name(0)}" if gpus else "none (CPU)",
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def describe_machine(machine: Mapping[str, Any]) -> str:
    """One line for a reader: 'AMD EPYC 7B13, 2 CPUs, 8 GiB; accelerator: none (CPU); Linux …; Python …; torch …'."""
    memory = f", {machine['memory_gib']} GiB" if machine.get("memory_gib") else ""
    return (
        f"{machine.get('cpu', '?')}, {machine.get('cpus', '?')} CPUs{memory}; "
        f"accelerator: {machine.get('accelerator', '?')}; {machine.get('os', '?')}; "
        f"Python {machine.get('python', '?')}; torch {machine.get('torch', '?')}"
    )
