"""The notebook-04 checkers accept every right answer and name the mistake in each wrong one."""

import pytest
import torch

from course_lib import positional
from course_lib.checks import position as check


def stub(*args, **kwargs):
    raise NotImplementedError


# ---- sinusoidal_table -----------------------------------------------------------------------
def make_table(*, swap=False, exponent="2i", layout="interleave", invert=False, start=0,
               per_dim=False, dtype=torch.float32):
    def table(max_len, d_model):
        pos = torch.arange(start, start + max_len, dtype=torch.float32).unsqueeze(1)
        if per_dim:
            j = torch.arange(d_model, dtype=torch.float32)
            angle = pos / 10000 ** (j / d_model)
            out = angle.cos()
            out[:, 0::2] = angle[:, 0::2].sin()
            return out
        if exponent == "2i":
            power = torch.arange(0, d_model, 2, dtype=torch.float32) / d_model
        else:  # i / d_model with i the pair index
            power = torch.arange(d_model // 2, dtype=torch.float32) / d_model
        angle = pos * 10000 ** (power if invert else -power)
        first, second = (angle.cos(), angle.sin()) if swap else (angle.sin(), angle.cos())
        if layout == "concat":
            return torch.cat([first, second], dim=1)
        out = torch.zeros(max_len, d_model, dtype=dtype)
        out[:, 0::2], out[:, 1::2] = first, second
        return out

    return table


def _loop_table(max_len, d_model):
    import math

    rows = []
    for pos in range(max_len):
        row = []
        for j in range(d_model):
            angle = pos / 10000 ** (2 * (j // 2) / d_model)
            row.append(math.sin(angle) if j % 2 == 0 else math.cos(angle))
        rows.append(row)
    return torch.tensor(rows)


RIGHT_TABLE = [
    make_table(),
    make_table(dtype=torch.float64),
    _loop_table,
    positional.sinusoidal_encoding,
    lambda n, d: torch.stack([
        torch.sin(torch.arange(n)[:, None] * torch.exp(-torch.arange(0, d, 2) * torch.log(torch.tensor(1e4)) / d)),
        torch.cos(torch.arange(n)[:, None] * torch.exp(-torch.arange(0, d, 2) * torch.log(torch.tensor(1e4)) / d)),
    ], dim=-1).flatten(1),
]
WRONG_TABLE = [
    (make_table(swap=True), "swapped"),
    (make_table(exponent="i"), "frequency exponent"),
    (make_table(per_dim=True), "share one frequency"),
    (make_table(layout="concat"), "two halves"),
    (make_table(layout="concat", swap=True), "cos first"),
    (make_table(invert=True), "inverted"),
    (make_table(start=1), "start at 0"),
    (lambda n, d: make_table()(n, d).long(), "floats"),
    (lambda n, d: make_table()(n, d).T, "shape"),
    (lambda n, d: make_table()(n, d) * 2, "differs"),
]


@pytest.mark.parametrize("fn", RIGHT_TABLE)
def test_sinusoidal_table_accepts_right_answers(fn):
    verdict = check.sinusoidal_table(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_TABLE)
def test_sinusoidal_table_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.sinusoidal_table(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- rotary ---------------------------------------------------------------------------------
def make_rope(*, sign=1.0, adjacent=False, interleave_angles=False, swap=False, exponent="2i",
              ignore_positions=False):
    def rope(x, positions):
        d = x.shape[-1]
        if ignore_positions:
            positions = torch.arange(x.shape[-2])
        step = 2 if exponent == "2i" else 1
        inv_freq = 1.0 / 10000 ** (torch.arange(0, step * (d // 2), step, dtype=torch.float64) / d)
        angle = positions.double()[:, None] * inv_freq
        if adjacent:
            x1, x2 = x[..., 0::2], x[..., 1::2]
            c, s = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
            return torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1).flatten(-2)
        angle = angle.repeat_interleave(2, -1) if interleave_angles else torch.cat([angle, angle], -1)
        c, s = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
        if swap:
            c, s = s, c
        x1, x2 = x.chunk(2, dim=-1)
        return x * c + sign * torch.cat([-x2, x1], dim=-1) * s

    return rope


RIGHT_ROPE = [
    make_rope(),
    positional.apply_rotary,
    lambda x, p: positional.RotaryEmbedding(x.shape[-1])(x, p),
]
WRONG_ROPE = [
    (make_rope(sign=-1.0), "wrong way"),
    (make_rope(adjacent=True), "adjacent features"),
    (make_rope(interleave_angles=True), "repeat_interleave"),
    (make_rope(swap=True), "cos and sin are swapped"),
    (make_rope(exponent="i"), "frequency exponent"),
    (make_rope(ignore_positions=True), "positions argument was ignored"),
    (lambda x, p: make_rope()(x, p) * 1.5, "lengths"),
    (lambda x, p: make_rope()(x, p)[..., :-1], "keep the shape"),
]


@pytest.mark.parametrize("fn", RIGHT_ROPE)
def test_rotary_accepts_right_answers(fn):
    verdict = check.rotary(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_ROPE)
def test_rotary_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.rotary(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


# ---- alibi_bias -----------------------------------------------------------------------------
def _alibi_right(T, slope):
    i = torch.arange(T)
    return -slope * (i[:, None] - i[None, :]).abs().float()


RIGHT_ALIBI = [
    _alibi_right,
    lambda T, slope: -slope * torch.cdist(torch.arange(T.__float__()).view(-1, 1),
                                          torch.arange(T.__float__()).view(-1, 1)),
    lambda T, slope: torch.tensor([[-slope * abs(i - j) for j in range(T)] for i in range(T)]),
]
WRONG_ALIBI = [
    (lambda T, s: -_alibi_right(T, s), "sign is flipped"),
    (lambda T, s: -s * (torch.arange(T)[:, None] - torch.arange(T)[None, :]).float(), "absolute distance"),
    (lambda T, s: -s * (torch.arange(T)[None, :] - torch.arange(T)[:, None]).float(), "j - i"),
    (lambda T, s: _alibi_right(T, 1.0), "multiply the distance by slope"),
    (lambda T, s: _alibi_right(T, 1.0) / s, "do not divide"),
    (lambda T, s: _alibi_right(T, s).long(), "floats"),
    (lambda T, s: _alibi_right(T + 1, s), "shape"),
]


@pytest.mark.parametrize("fn", RIGHT_ALIBI)
def test_alibi_bias_accepts_right_answers(fn):
    verdict = check.alibi_bias(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", WRONG_ALIBI)
def test_alibi_bias_rejects_mistakes_with_a_hint(fn, hint):
    verdict = check.alibi_bias(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


@pytest.mark.parametrize("checker", [check.sinusoidal_table, check.rotary, check.alibi_bias])
def test_a_stub_is_not_done_yet_not_a_crash(checker):
    verdict = checker(stub)
    assert verdict.status == "not done" and not verdict
