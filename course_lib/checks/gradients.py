"""Checkers for notebook 01 (gradients): two operations' backward passes, the topological order,
one AdamW step and dropout."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from course_lib.autograd import Value
from course_lib.checks.core import Mistake, Verdict, expect_tensor, run_checker

__all__ = ["operation_backward", "topological_order", "adam_step", "dropout"]


def _expect_value(out, what: str) -> Value:
    if not isinstance(out, Value):
        raise Mistake(f"{what} should return a Value, it gave a {type(out).__name__}.")
    return out


# ---- exercise: the backward of multiplication and tanh ----------------------------------------------
def operation_backward(mul: Callable[[Value, Value], Value], tanh: Callable[[Value], Value]) -> Verdict:
    """Check ``mul(a, b)`` and ``tanh(a)``: each returns a new ``Value`` (with its parents) whose
    ``_backward`` adds the chain rule's contribution to its parents' ``grad``."""

    def check() -> str:
        a, b = Value(1.5), Value(-2.0)
        out = _expect_value(mul(a, b), "mul")
        if out.data != -3.0:
            raise Mistake(f"mul(1.5, -2.0) should hold -3.0, it holds {out.data}.")
        if set(map(id, out.parents)) != {id(a), id(b)}:
            raise Mistake("give the new Value its parents, Value(a.data * b.data, (a, b), '*'): without them "
                          "backward() cannot reach a and b.")
        (out * 3.0).backward()  # out.grad becomes 3: the chain rule must multiply by it
        if (a.grad, b.grad) == (-2.0, 1.5):
            raise Mistake("multiply by out.grad (the chain rule): a.grad += b.data * out.grad, and the same for b.")
        if (a.grad, b.grad) == (4.5, -6.0):
            raise Mistake("the two gradients are swapped: d(ab)/da is b, so a.grad += b.data * out.grad.")
        if (a.grad, b.grad) != (-6.0, 4.5):
            raise Mistake(f"for 3 * (a * b) with a = 1.5, b = -2 expected a.grad = -6, b.grad = 4.5; got "
                          f"{a.grad:g} and {b.grad:g}.")
        c = Value(3.0)
        mul(c, c).backward()  # c used twice: both contributions must add up
        if c.grad == 3.0:
            raise Mistake("add to the gradients (+=), do not assign them (=): in mul(c, c) the node c receives "
                          "two contributions, and the second overwrote the first.")
        if c.grad != 6.0:
            raise Mistake(f"for mul(c, c) with c = 3 expected c.grad = 6, got {c.grad:g}.")

        x = Value(0.7)
        y = _expect_value(tanh(x), "tanh")
        if not math.isclose(y.data, math.tanh(0.7)):
            raise Mistake(f"tanh(0.7) should hold {math.tanh(0.7):.6f}, it holds {y.data}.")
        if [id(p) for p in y.parents] != [id(x)]:
            raise Mistake("give the new Value its parent: Value(math.tanh(a.data), (a,), 'tanh').")
        (y * 2.0).backward()
        right = 2.0 * (1 - math.tanh(0.7) ** 2)
        wrong = {
            2.0 * (1 - 0.7**2): "the derivative is 1 - tanh(a)^2, from the OUTPUT (out.data), not 1 - a^2.",
            2.0 * (1 - math.tanh(0.7)): "square tanh: the derivative is 1 - tanh(a)^2.",
            1 - math.tanh(0.7) ** 2: "multiply by out.grad (the chain rule).",
        }
        if not math.isclose(x.grad, right, rel_tol=1e-9):
            for value, hint in wrong.items():
                if math.isclose(x.grad, value, rel_tol=1e-9):
                    raise Mistake(hint)
            raise Mistake(f"for 2 * tanh(x) at x = 0.7 expected x.grad = {right:.6f}, got {x.grad:.6f}.")
        z = Value(0.3)
        w = tanh(z)
        (w * w).backward()  # tanh's output used twice: z gets its gradient through both uses
        if not math.isclose(z.grad, 2 * math.tanh(0.3) * (1 - math.tanh(0.3) ** 2), rel_tol=1e-9):
            raise Mistake("tanh's _backward must add to a.grad (+=), as mul's does.")
        return "both add their chain-rule share to their parents' grad (+=), times out.grad."

    return run_checker("operation_backward", check)


# ---- exercise: the topological order ------------------------------------------------------------------
def topological_order(fn: Callable[[Value], list]) -> Verdict:
    """Check ``fn(root)``: every node ``root`` depends on, once each, every node after its parents, root last."""

    def check() -> str:
        a, b = Value(1.0, label="a"), Value(2.0, label="b")
        c = a * b
        d = c + a  # a reused
        e = d.tanh() * c  # c reused
        nodes = {id(n) for n in (a, b, c, d, e)} | {id(p) for p in e.parents}
        out = fn(e)
        if not isinstance(out, (list, tuple)):
            raise Mistake(f"return a list of Values, got {type(out).__name__}.")
        ids = [id(n) for n in out]
        if len(ids) != len(set(ids)):
            raise Mistake("a node appears twice: keep a set of the nodes already visited and skip them "
                          "(here a and c are used twice).")
        if set(ids) != nodes:
            raise Mistake(f"the graph of e has {len(nodes)} nodes and your list has {len(set(ids))} different ones: "
                          "visit every parent of every node, recursively.")
        where = {node: i for i, node in enumerate(ids)}
        if ids[0] == id(e):
            raise Mistake("the root comes first: the order puts every node AFTER its parents, so the root is last "
                          "(backward() then walks it reversed).")
        for node in out:
            if any(where[id(p)] > where[id(node)] for p in node.parents):
                raise Mistake("a node comes before one of its parents: append a node only after all its parents "
                              "(depth-first: visit the parents, then append the node).")
        if ids[-1] != id(e):
            raise Mistake("the root must come last.")
        return "every node once, each after its parents, the root last."

    return run_checker("topological_order", check)


# ---- exercise: one AdamW step -------------------------------------------------------------------------
def _adam_reference(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay, *, correction=True,
                    decoupled=True, eps_inside=False):
    if not decoupled:
        grad = grad + weight_decay * param  # L2: the decay goes through the moments
    else:
        param = param * (1 - lr * weight_decay)
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    m_hat, v_hat = (m / (1 - beta1**step), v / (1 - beta2**step)) if correction else (m, v)
    denominator = torch.sqrt(v_hat + eps) if eps_inside else v_hat.sqrt() + eps
    return param - lr * m_hat / denominator, m, v


def adam_step(fn: Callable[..., tuple]) -> Verdict:
    """Check ``fn(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay) -> (param, m, v)``: one
    AdamW step (``step`` counts from 1), equal to ``torch.optim.AdamW`` over 20 steps."""

    def run(step_fn):
        gen = torch.Generator().manual_seed(0)
        target = torch.randn(5, generator=gen, dtype=torch.float64)
        param = torch.randn(5, generator=gen, dtype=torch.float64)
        m, v = torch.zeros_like(param), torch.zeros_like(param)
        settings = dict(lr=0.05, beta1=0.8, beta2=0.9, eps=1e-3, weight_decay=0.3)
        for step in range(1, 21):
            grad = 2 * (param - target) * torch.arange(1.0, 6.0, dtype=torch.float64)  # a skewed quadratic
            out = step_fn(param.clone(), grad.clone(), m.clone(), v.clone(), step, **settings)
            if not isinstance(out, tuple) or len(out) != 3:
                raise Mistake("return a tuple (param, m, v): the new parameters and the two moments.")
            param, m, v = (expect_tensor(t, "adam_step") for t in out)
        return param, target, settings

    def check() -> str:
        param, target, settings = run(fn)
        reference = run(lambda *a, **k: _adam_reference(*a, **k))[0]
        # torch.optim.AdamW on the same problem, from the same start
        gen = torch.Generator().manual_seed(0)
        target = torch.randn(5, generator=gen, dtype=torch.float64)
        torch_param = torch.nn.Parameter(torch.randn(5, generator=gen, dtype=torch.float64))
        optimizer = torch.optim.AdamW([torch_param], lr=settings["lr"], betas=(settings["beta1"], settings["beta2"]),
                                      eps=settings["eps"], weight_decay=settings["weight_decay"])
        for _ in range(20):
            torch_param.grad = (2 * (torch_param - target) * torch.arange(1.0, 6.0, dtype=torch.float64)).detach()
            optimizer.step()
        torch.testing.assert_close(reference, torch_param.detach(), atol=1e-10, rtol=0)  # the reference is right
        if param.shape != reference.shape:
            raise Mistake(f"param should keep its shape {tuple(reference.shape)}, got {tuple(param.shape)}.")
        if torch.allclose(param, reference, atol=1e-6, rtol=0):
            return "equal to torch.optim.AdamW after 20 steps: bias-corrected moments, decoupled weight decay."
        if not torch.isfinite(param).all():
            raise Mistake("the parameters became inf or nan: step counts from 1 (1 - beta ** 0 = 0 divides by zero).")
        variants = {
            "no correction": dict(correction=False),
            "L2": dict(decoupled=False),
            "eps inside": dict(eps_inside=True),
        }
        hints = {
            "no correction": "correct the bias of the moments: m_hat = m / (1 - beta1 ** step), v_hat = v / (1 - "
                             "beta2 ** step). Both start at 0, so without it the first steps are far too small.",
            "L2": "that is Adam with L2 (the decay added to the gradient, so it goes through m and v); AdamW decays "
                  "the parameters directly: param = param - lr * weight_decay * param, outside the moments.",
            "eps inside": "eps goes outside the square root: m_hat / (sqrt(v_hat) + eps).",
        }
        for key, options in variants.items():
            wrong = run(lambda *a, options=options, **k: _adam_reference(*a, **k, **options))[0]
            if torch.allclose(param, wrong, atol=1e-6, rtol=0):
                raise Mistake(hints[key])
        raise Mistake("after 20 steps the parameters differ from torch.optim.AdamW's: m and v are running means "
                      "of the gradient and its square, the step is lr * m_hat / (sqrt(v_hat) + eps).")

    return run_checker("adam_step", check)


# ---- exercise: dropout --------------------------------------------------------------------------------
def dropout(fn: Callable[[torch.Tensor, float, bool], torch.Tensor]) -> Verdict:
    """Check ``fn(x, p, training)``: in training zero each element with probability ``p`` and scale the
    survivors by ``1 / (1 - p)``; in evaluation return ``x`` unchanged."""

    def check() -> str:
        x = torch.rand(200_000) + 1.0  # no zeros of its own: a zero is a dropped element
        p = 0.3
        torch.manual_seed(0)
        out = expect_tensor(fn(x.clone(), p, True), "dropout")
        if out.shape != x.shape:
            raise Mistake(f"keep the shape {tuple(x.shape)}, got {tuple(out.shape)}.")
        dropped = (out == 0).float().mean().item()
        if abs(dropped - (1 - p)) < 0.01:
            raise Mistake(f"you dropped {dropped:.0%} of the elements: p is the probability of DROPPING one, so "
                          "keep each with probability 1 - p: keep = torch.rand_like(x) >= p.")
        if abs(dropped - p) > 0.01:
            raise Mistake(f"about {p:.0%} of the elements should be zero, {dropped:.1%} are.")
        kept = out != 0
        ratio = (out[kept] / x[kept])
        if torch.allclose(ratio, torch.ones_like(ratio)):
            raise Mistake("scale the kept elements by 1 / (1 - p) (inverted dropout): otherwise the output is on "
                          "average (1 - p) times smaller in training than in evaluation.")
        if not torch.allclose(ratio, torch.full_like(ratio, 1 / (1 - p))):
            raise Mistake(f"the kept elements should be x / (1 - p) = x * {1 / (1 - p):.4f}; yours are x * "
                          f"{ratio.mean().item():.4f} on average.")
        torch.manual_seed(1)
        again = expect_tensor(fn(x.clone(), p, True), "dropout")
        if torch.equal(again, out):
            raise Mistake("the same elements were dropped twice in a row: draw a new random mask on every call.")
        evaluated = expect_tensor(fn(x.clone(), p, False), "dropout")
        if not torch.equal(evaluated, x):
            raise Mistake("in evaluation (training=False) return x unchanged: no mask and no scaling.")
        if not torch.equal(expect_tensor(fn(x.clone(), 0.0, True), "dropout"), x):
            raise Mistake("with p = 0 nothing is dropped: return x unchanged.")
        return "each element dropped with probability p, the rest scaled by 1 / (1 - p); eval returns x."

    return run_checker("dropout", check)
