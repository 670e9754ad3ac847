"""Checkers for notebook 06 (position): the sinusoidal table, rotary embeddings and a relative
distance bias (ALiBi).

Each checker compares the learner's function with the right answer and with the answer each
plausible mistake would give, and names the mistake it recognises.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from course_lib.checks.core import Mistake, Verdict, expect_tensor, run_checker

__all__ = ["sinusoidal_table", "rotary", "alibi_bias"]



def _same(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-4) -> bool:
    if a.shape != b.shape:
        return False
    return bool(torch.allclose(a.detach().double(), b.detach().double(), atol=atol, rtol=1e-4))


def _match(out: torch.Tensor, mistakes) -> None:
    for wrong, hint in mistakes:
        if _same(out, wrong()):
            raise Mistake(hint)


# ---- Exercise: the sinusoidal table ---------------------------------------------------------
def _interleave(even: torch.Tensor, odd: torch.Tensor) -> torch.Tensor:
    return torch.stack([even, odd], dim=-1).flatten(-2)


def _table(max_len: int, d: int, *, exponent="2i", start=0, swap=False, layout="interleave",
           invert=False, per_dim=False) -> torch.Tensor:
    """The sinusoidal table, or one of its plausible wrong variants (float64)."""
    pos = torch.arange(start, start + max_len, dtype=torch.float64)[:, None]
    i = torch.arange(d // 2, dtype=torch.float64)
    power = 2 * i / d if exponent == "2i" else i / d
    freq = 10000.0 ** (power if invert else -power)
    angle = pos * freq
    if per_dim:  # each dimension j with its own exponent j/d instead of pairs sharing 2i/d
        j = torch.arange(d, dtype=torch.float64)
        angle_all = pos * 10000.0 ** (-j / d)
        return torch.where(j % 2 == 0, angle_all.sin(), angle_all.cos())
    first, second = (angle.cos(), angle.sin()) if swap else (angle.sin(), angle.cos())
    if layout == "concat":
        return torch.cat([first, second], dim=-1)
    return _interleave(first, second)


def sinusoidal_table(fn: Callable[[int, int], torch.Tensor]) -> Verdict:
    """Check ``fn(max_len, d_model)``: ``PE[pos, 2i] = sin(pos / 10000^(2i/d))``,
    ``PE[pos, 2i+1] = cos(pos / 10000^(2i/d))``, shape ``(max_len, d_model)``."""

    def check() -> str:
        for max_len, d in ((50, 16), (7, 4), (1, 2)):
            out = expect_tensor(fn(max_len, d), "sinusoidal_table")
            if out.shape != (max_len, d):
                raise Mistake(
                    f"sinusoidal_table({max_len}, {d}) should have shape (max_len, d_model) = "
                    f"({max_len}, {d}), got {tuple(out.shape)}."
                )
            if not out.is_floating_point():
                raise Mistake(f"the table has dtype {out.dtype}: return floats.")
            right = _table(max_len, d)
            if _same(out, right):
                continue
            _match(out, [
                (lambda m=max_len, d=d: _table(m, d, swap=True),
                 "sin and cos are swapped: sin goes on the even dimensions (0, 2, 4, ...) and cos on "
                 "the odd ones (1, 3, 5, ...)."),
                (lambda m=max_len, d=d: _table(m, d, exponent="i"),
                 "wrong frequency exponent: with i the pair index (0 .. d/2 - 1) the exponent is 2i / "
                 "d_model, not i / d_model (equivalently: the even dimension 2i over d_model)."),
                (lambda m=max_len, d=d: _table(m, d, per_dim=True),
                 "the two dimensions of a pair share one frequency: dims 2i and 2i+1 both use "
                 "10000^(2i/d_model); you gave each dimension j its own exponent j / d_model."),
                (lambda m=max_len, d=d: _table(m, d, layout="concat"),
                 "sin and cos are laid out in two halves [sin..., cos...]: this table interleaves "
                 "them, sin on even and cos on odd dimensions (use table[:, 0::2] and table[:, 1::2])."),
                (lambda m=max_len, d=d: _table(m, d, layout="concat", swap=True),
                 "sin and cos are in two halves, cos first: interleave them, sin on even dimensions "
                 "and cos on odd ones."),
                (lambda m=max_len, d=d: _table(m, d, start=1),
                 "positions start at 0, not 1: row 0 is sin(0) = 0 and cos(0) = 1."),
            ])
            # Inverted frequencies give angles so large (50 * 10000^(14/16)) that float32 rounding
            # moves their sines: compare the first two pairs only.
            if d >= 4 and _same(out[:, :4], _table(max_len, d, invert=True)[:, :4]):
                raise Mistake(
                    "the frequencies are inverted: divide the position by 10000^(2i/d) (multiply by "
                    "10000^(-2i/d)), so later pairs turn more slowly."
                )
            raise Mistake(
                f"sinusoidal_table({max_len}, {d}) differs from PE[pos, 2i] = sin(pos / 10000^(2i/d)), "
                "PE[pos, 2i+1] = cos(pos / 10000^(2i/d))."
            )
        return "sin on even and cos on odd dimensions, 10000^(2i/d) wavelengths, positions from 0."

    return run_checker("sinusoidal_table", check)


# ---- Exercise: rotary embeddings ------------------------------------------------------------
def _rope(x, positions, *, pairing="half", sign=1.0, exponent="2i", swap=False, layout="cat"):
    """Rotary embedding of ``x (..., T, d)`` at ``positions (T,)``, or a plausible wrong variant."""
    d = x.shape[-1]
    i = torch.arange(d // 2, dtype=torch.float64)
    power = 2 * i / d if exponent == "2i" else i / d
    angle = positions.double()[:, None] * 10000.0 ** (-power)  # (T, d/2)
    if pairing == "adjacent":  # GPT-J / RoFormer layout: pairs (2i, 2i+1)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        c, s = angle.cos(), angle.sin()
        return _interleave(x1 * c - sign * x2 * s, sign * x1 * s + x2 * c)
    if layout == "cat":
        angle = torch.cat([angle, angle], dim=-1)
    else:  # repeat_interleave: [a0, a0, a1, a1, ...], the adjacent layout's cos/sin
        angle = angle.repeat_interleave(2, dim=-1)
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1) * sign
    c, s = angle.cos(), angle.sin()
    if swap:
        c, s = s, c
    return x * c + rotated * s


def rotary(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Verdict:
    """Check ``fn(x, positions)``: rotary embedding in the "rotate_half" layout (Hugging Face, LLaMA):
    ``x * cos + rotate_half(x) * sin`` with angles ``pos * 10000^(-2i/d)`` written as ``cat([a, a])``
    and ``rotate_half([x1, x2]) = [-x2, x1]``; ``x (..., T, d)``, ``positions (T,)``."""

    def check() -> str:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(2, 3, 6, 8, generator=gen, dtype=torch.float64)
        positions = torch.arange(6) * 3 + 2  # not 0..T-1: catches code that ignores positions
        out = expect_tensor(fn(x.clone(), positions.clone()), "rotary")
        if out.shape != x.shape:
            raise Mistake(f"rotary must keep the shape of x {tuple(x.shape)}, got {tuple(out.shape)}.")
        right = _rope(x, positions)
        if not _same(out, right):
            _match(out, [
                (lambda: _rope(x, torch.arange(6)),
                 "the positions argument was ignored (you used 0 .. T-1): rotate row t by "
                 "positions[t] * frequency."),
                (lambda: _rope(x, positions, sign=-1.0),
                 "the pairs turn the wrong way: rotate_half([x1, x2]) is [-x2, x1], not [x2, -x1]."),
                (lambda: _rope(x, positions, pairing="adjacent"),
                 "you paired adjacent features (2i, 2i+1), the GPT-J / RoFormer layout: this course "
                 "uses Hugging Face's rotate_half layout, pairing feature i with feature i + d/2."),
                (lambda: _rope(x, positions, layout="interleave"),
                 "the angles are laid out as [a0, a0, a1, a1, ...] (repeat_interleave), which is the "
                 "adjacent-pairs layout: rotate_half pairs i with i + d/2, so use torch.cat([a, a])."),
                (lambda: _rope(x, positions, swap=True),
                 "cos and sin are swapped: x * cos + rotate_half(x) * sin."),
                (lambda: _rope(x, positions, exponent="i"),
                 "wrong frequency exponent: the pair i (0 .. d/2 - 1) turns at 10000^(-2i/d), not "
                 "10000^(-i/d)."),
            ])
            if not torch.allclose(out.norm(dim=-1), x.norm(dim=-1), atol=1e-4):
                raise Mistake(
                    "the vectors' lengths changed: a rotation keeps lengths. Check x * cos + "
                    "rotate_half(x) * sin."
                )
            raise Mistake("the result differs from x * cos + rotate_half(x) * sin.")
        zero = fn(x[..., :1, :].clone(), torch.zeros(1, dtype=torch.long))
        if not _same(expect_tensor(zero, "rotary"), x[..., :1, :]):
            raise Mistake("position 0 must leave the vector unchanged (angle 0).")
        return "rotate_half layout, angles positions * 10000^(-2i/d), lengths kept, position 0 unchanged."

    return run_checker("rotary", check)


# ---- Exercise: a relative distance bias (ALiBi) ---------------------------------------------
def alibi_bias(fn: Callable[[int, float], torch.Tensor]) -> Verdict:
    """Check ``fn(T, slope)``: the ``(T, T)`` bias ``-slope * |i - j|`` added to attention scores."""

    def check() -> str:
        for T, slope in ((5, 0.5), (1, 2.0), (8, 0.25)):
            out = expect_tensor(fn(T, slope), "alibi_bias")
            i = torch.arange(T, dtype=torch.float64)
            distance = i[:, None] - i[None, :]  # i - j
            right = -slope * distance.abs()
            if out.shape != (T, T):
                raise Mistake(f"alibi_bias({T}, {slope}) should have shape ({T}, {T}), got {tuple(out.shape)}.")
            if not out.is_floating_point():
                raise Mistake(f"the bias has dtype {out.dtype}: return floats, it is added to scores.")
            if _same(out, right):
                continue
            _match(out, [
                (lambda r=right: -r,
                 "the sign is flipped: the bias must be a penalty (negative) that grows with the "
                 "distance, so that far-away keys get lower scores."),
                (lambda s=slope, dist=distance: -s * dist,
                 "use the absolute distance |i - j|: with i - j the keys after the query get a bonus."),
                (lambda s=slope, dist=distance: s * dist,
                 "use -slope * |i - j|: with j - i the keys before the query get a bonus."),
                (lambda dist=distance: -dist.abs(),
                 "multiply the distance by slope: the slope sets how fast attention fades with distance."),
                (lambda r=right, s=slope: r / s / s,
                 "multiply the distance by slope, do not divide by it."),
            ])
            raise Mistake(f"alibi_bias({T}, {slope})[i, j] should be -slope * |i - j|.")
        return "-slope * |i - j|: 0 on the diagonal, a penalty growing with the distance either way."

    return run_checker("alibi_bias", check)

