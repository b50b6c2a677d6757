"""What the benchmark runners share: provenance (git) and machine information recorded with every result."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any


REPO_ROOT = Path(__file__).resolve().parents[1]


def git(*args: str) -> str | None:
    """Output of a read-only git command in the repository (no index lock taken), or None if git fails."""
    try:
        out = subprocess.run(
            ["git", "--no-optional-locks", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_info() -> dict[str, Any]:
    """HEAD commit and whether the working tree differs from it (the first 50 changed paths)."""
    status = git("status", "--porcelain")
    changed = status.splitlines() if status else []
    return {
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(changed) if status is not None else None,
        "changed_paths": [line[3:] for line in changed[:50]],
    }


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; all cores where the platform has no affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what `platform` knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        name = None
    return name or platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """CPU, memory, platform, library versions, torch threads, load average and GPU of this machine."""
    import peft
    import psutil
    import torch
    import transformers

    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "available_cores": available_cores(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "libc": " ".join(platform.libc_ver()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


__all__ = ["REPO_ROOT", "available_cores", "cpu_model", "git", "git_info", "machine_info"]
