"""The machinery every checker shares: a printable verdict and a safe way to call learner code."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Verdict", "Mistake", "run_checker", "expect_tensor", "randomise_norms", "match_variants"]


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check: ``passed`` and a message for the learner.

    ``status`` is ``"correct"``, ``"wrong"`` or ``"not done"``. A verdict shows as one line in a
    notebook (its ``repr``), so a checker cell's output is short and deterministic.
    """

    exercise: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "correct"

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        mark = {"correct": "✅ Correct", "wrong": "❌ Not yet", "not done": "⏳ Not done yet"}[self.status]
        return f"{mark} ({self.exercise}): {self.message}"

    __str__ = __repr__


class Mistake(Exception):
    """Raised inside a checker when the learner's answer shows a known mistake; carries the hint."""


def run_checker(exercise: str, check: Callable[[], str]) -> Verdict:
    """Run ``check()``, which returns a success message or raises ``Mistake(hint)``.

    Any other exception raised by the learner's code becomes a "wrong" verdict that names the
    exception and the learner's line, instead of a long traceback; ``NotImplementedError`` (the
    stub of the student version) becomes "not done yet".
    """
    try:
        message = check()
    except Mistake as mistake:
        return Verdict(exercise, "wrong", str(mistake))
    except NotImplementedError:
        return Verdict(exercise, "not done", "replace the `raise NotImplementedError` with your code.")
    except Exception as exc:  # learner code may raise anything; report it briefly
        frames = traceback.extract_tb(exc.__traceback__)
        where = ""
        learner = [f for f in frames if "course_lib" not in f.filename]
        if learner and learner[-1].line:
            where = f" at `{learner[-1].line}`"
        return Verdict(exercise, "wrong", f"your code raised {type(exc).__name__}{where}: {exc}")
    return Verdict(exercise, "correct", message)


def expect_tensor(value: Any, what: str) -> torch.Tensor:
    """``value`` if it is a tensor; otherwise a ``Mistake`` saying what ``what`` gave instead."""
    if not isinstance(value, torch.Tensor):
        raise Mistake(f"{what} should be a torch.Tensor, it gave a {type(value).__name__}.")
    return value


def randomise_norms(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Give every LayerNorm in ``module`` a gain and shift far from (1, 0), so a norm used in the
    wrong place changes the output (a fresh norm is nearly the identity on normalised inputs)."""
    with torch.no_grad():
        for sub in module.modules():
            if type(sub).__name__ == "LayerNorm":
                sub.weight.copy_(torch.rand(sub.weight.shape, generator=generator) + 0.5)
                sub.bias.copy_(torch.randn(sub.bias.shape, generator=generator))


def _close(a: torch.Tensor, b: torch.Tensor, atol: float) -> bool:
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), atol=atol, rtol=1e-4)


def match_variants(out: torch.Tensor, right: torch.Tensor, variants: dict[str, torch.Tensor],
                   hints: dict[str, str], otherwise: str, atol: float = 1e-5) -> None:
    """Return if ``out`` equals ``right``; otherwise raise ``Mistake`` with the hint of the first of
    ``variants`` (the outputs of known wrong implementations) that ``out`` equals, or ``otherwise``."""
    if out.shape != right.shape:
        raise Mistake(f"expected an output of shape {tuple(right.shape)}, got {tuple(out.shape)}.")
    if _close(out, right, atol):
        return
    for key, value in variants.items():
        if _close(out, value, atol):
            raise Mistake(hints[key])
    raise Mistake(otherwise)
