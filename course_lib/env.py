"""Where the course runs: the device, reproducible seeds, Colab detection and an environment report.

Every notebook starts with::

    from course_lib import env
    env.seed_everything(0)
    device = env.get_device()
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
import sys
from dataclasses import dataclass

import numpy as np
import torch

from course_lib import _validate as validate

__all__ = [
    "get_device",
    "seed_everything",
    "in_colab",
    "in_notebook",
    "EnvironmentReport",
    "environment_report",
]

_DEVICE_PREFERENCES = ("cuda", "mps", "cpu")

# The packages a learner's bug report needs, in the order a reader looks for them.
REPORTED_PACKAGES = (
    "torch",
    "numpy",
    "transformers",
    "tokenizers",
    "safetensors",
    "gensim",
    "sacrebleu",
    "bertviz",
    "matplotlib",
    "ipywidgets",
    "tqdm",
    "jupyterlab",
    "nbval",
    "course_lib",
)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def get_device(prefer: str | None = None) -> torch.device:
    """Return the best available device: CUDA, else Apple MPS, else the CPU.

    Args:
        prefer: ``None`` (pick automatically), or one of ``"cuda"``, ``"mps"``, ``"cpu"`` to ask
            for that device; asking for one this machine lacks raises ``RuntimeError`` saying so
            rather than failing later inside torch. The environment variable ``COURSE_DEVICE``
            overrides the automatic choice (handy to force ``cpu`` on a GPU machine).

    Returns:
        A ``torch.device``.
    """
    if prefer is None:
        prefer = os.environ.get("COURSE_DEVICE") or None
    if prefer is not None:
        if not isinstance(prefer, str) or prefer.split(":")[0] not in _DEVICE_PREFERENCES:
            raise ValueError(
                f"get_device(prefer=...) expected one of {_DEVICE_PREFERENCES} or None, "
                f"got {prefer!r}"
            )
        kind = prefer.split(":")[0]
        available = {"cuda": torch.cuda.is_available(), "mps": _mps_available(), "cpu": True}
        if not available[kind]:
            raise RuntimeError(
                f"You asked for device {prefer!r} but this machine has no {kind.upper()} "
                "available. Use get_device() to pick the best device automatically."
            )
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> int:
    """Seed Python's ``random``, NumPy and torch (CPU and every GPU) so a run can be repeated.

    Args:
        seed: a non-negative integer below 2**32 (NumPy's limit).

    Returns:
        The seed, so a notebook can print or record it.
    """
    seed = validate.positive_int(seed, "seed", "seed_everything", minimum=0, maximum=2**32 - 1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    # Child processes (DataLoader workers, torchrun) see the same hash seed.
    os.environ["PYTHONHASHSEED"] = str(seed)
    return seed


def in_colab() -> bool:
    """True when running inside Google Colab."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, Colab, nbval), False in a script or a test."""
    try:
        from IPython import get_ipython
    except ImportError:  # IPython is optional for the library itself
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@dataclass(frozen=True)
class EnvironmentReport:
    """What this machine runs: versions, device and threads. Print it or show it in a notebook."""

    python: str
    platform: str
    packages: dict[str, str]
    device: str
    device_name: str
    cpu_count: int
    torch_threads: int
    colab: bool

    def rows(self) -> list[tuple[str, str]]:
        """The report as (item, value) pairs, in display order."""
        rows = [
            ("python", self.python),
            ("platform", self.platform),
            ("device", self.device),
            ("device name", self.device_name),
            ("CPU cores", str(self.cpu_count)),
            ("torch threads", str(self.torch_threads)),
            ("Colab", "yes" if self.colab else "no"),
        ]
        rows += [(name, version) for name, version in self.packages.items()]
        return rows

    def __str__(self) -> str:
        rows = self.rows()
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)

    def _repr_markdown_(self) -> str:
        lines = ["| item | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in self.rows()]
        return "\n".join(lines)


def environment_report() -> EnvironmentReport:
    """Collect versions, the device the course will use and the thread count, in one call.

    Holds no host name, user name or path, so it can be pasted into a bug report or a stored
    notebook as it is.
    """
    device = get_device()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        device_name = f"{props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}"
    elif device.type == "mps":
        device_name = "Apple GPU (Metal Performance Shaders)"
    else:
        device_name = platform.processor() or platform.machine() or "CPU"
    return EnvironmentReport(
        python=platform.python_version(),
        platform=f"{platform.system()} {platform.machine()}",
        packages={name: _version(name) for name in REPORTED_PACKAGES},
        device=device.type,
        device_name=device_name,
        cpu_count=os.cpu_count() or 1,
        torch_threads=torch.get_num_threads(),
        colab=in_colab(),
    )
