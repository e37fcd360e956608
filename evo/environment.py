"""What a run ran on: package versions, GPUs, target checksums (``environment.json``)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from typing import Any

from evo.target import Target

_PACKAGES = (
    "evo-search",
    "torch",
    "numpy",
    "ribs",
    "libcst",
    "h5py",
    "openai",
    "matplotlib",
    "rich",
)


def gpu_names() -> list[str]:
    """Names of the visible NVIDIA GPUs, without importing torch (nvidia-smi if present)."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    names = [line.strip() for line in out.splitlines() if line.strip()]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() != "":
        idx = [int(i) for i in visible.split(",") if i.strip().isdigit()]
        names = [names[i] for i in idx if i < len(names)]
    elif visible is not None:
        names = []
    return names


def describe(target: Target, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    versions = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": versions,
        "gpus": gpu_names(),
        "target": {"name": target.name, "root": str(target.root), "checksums": target.checksums()},
    }
    env.update(extra or {})
    return env
