"""The notebook-01 checkers accept every right answer and name the mistake in each wrong one."""

import math

import pytest
import torch

from course_lib.autograd import Value, topological_order
from course_lib.checks import gradients as check


def stub(*args, **kwargs):
    raise NotImplementedError


# ---- mul and tanh ---------------------------------------------------------------------------------
def make_mul(assign=False, swap=False, chain=True, parents=True):
    def mul(a, b):
        out = Value(a.data * b.data, (a, b) if parents else (), "*")

        def _backward():
            g = out.grad if chain else 1.0
            da, db = (a.data, b.data) if swap else (b.data, a.data)
            if assign:
                a.grad = da * g
                b.grad = db * g
            else:
                a.grad += da * g
                b.grad += db * g

        out._backward = _backward
        return out

    return mul


def make_tanh(kind="right"):
    def tanh(a):
        out = Value(math.tanh(a.data), (a,), "tanh")

        def _backward():
            local = {"right": 1 - out.data**2, "input": 1 - a.data**2, "unsquared": 1 - out.data}[kind]
            a.grad += local * out.grad

        out._backward = _backward
        return out

    return tanh


def test_operation_backward_accepts_the_right_answers():
    assert check.operation_backward(make_mul(), make_tanh()).passed
    assert check.operation_backward(lambda a, b: a * b, lambda a: a.tanh()).passed


@pytest.mark.parametrize("mul,tanh,hint", [
    (make_mul(assign=True), make_tanh(), "do not assign"),
    (make_mul(swap=True), make_tanh(), "swapped"),
    (make_mul(chain=False), make_tanh(), "out.grad"),
    (make_mul(parents=False), make_tanh(), "parents"),
    (make_mul(), make_tanh("input"), "OUTPUT"),
    (make_mul(), make_tanh("unsquared"), "square"),
    (lambda a, b: a.data * b.data, make_tanh(), "return a Value"),
])
def test_operation_backward_names_the_mistake(mul, tanh, hint):
    verdict = check.operation_backward(mul, tanh)
    assert verdict.status == "wrong" and hint in verdict.message, verdict.message


def test_operation_backward_stub_is_not_done():
    assert check.operation_backward(stub, stub).status == "not done"


# ---- topological order ------------------------------------------------------------------------------
def recursive_order(root):
    order, seen = [], set()

    def visit(node):
        if id(node) not in seen:
            seen.add(id(node))
            for parent in node.parents:
                visit(parent)
            order.append(node)

    visit(root)
    return order


def no_visited_set(root):
    order = []

    def visit(node):
        for parent in node.parents:
            visit(parent)
        order.append(node)

    visit(root)
    return order


@pytest.mark.parametrize("fn", [topological_order, recursive_order])
def test_topological_order_accepts_right_answers(fn):
    assert check.topological_order(fn).passed


@pytest.mark.parametrize("fn,hint", [
    (lambda root: recursive_order(root)[::-1], "root comes first"),
    (no_visited_set, "appears twice"),
    (lambda root: [root, *root.parents], "nodes"),
    (lambda root: sorted(recursive_order(root), key=lambda n: n.data), "before one of its parents"),
])
def test_topological_order_names_the_mistake(fn, hint):
    verdict = check.topological_order(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict.message


# ---- AdamW ------------------------------------------------------------------------------------------
def adamw(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay, correction=True, l2=False):
    if l2:
        grad = grad + weight_decay * param
    else:
        param = param - lr * weight_decay * param
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad * grad
    m_hat = m / (1 - beta1**step) if correction else m
    v_hat = v / (1 - beta2**step) if correction else v
    return param - lr * m_hat / (v_hat.sqrt() + eps), m, v


def test_adam_step_accepts_the_right_answer():
    verdict = check.adam_step(adamw)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", [
    (lambda *a, **k: adamw(*a, **k, correction=False), "bias"),
    (lambda *a, **k: adamw(*a, **k, l2=True), "L2"),
    (lambda p, g, m, v, step, **k: adamw(p, g, m, v, step - 1, **k), "inf or nan"),
    (lambda *a, **k: adamw(*a, **k)[0], "tuple"),
    (lambda p, g, m, v, step, **k: (p - 0.01 * g, m, v), "differ"),
])
def test_adam_step_names_the_mistake(fn, hint):
    verdict = check.adam_step(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict.message


# ---- dropout ----------------------------------------------------------------------------------------
def right_dropout(x, p, training):
    if not training or p == 0:
        return x
    return x * (torch.rand_like(x) >= p) / (1 - p)


@pytest.mark.parametrize("fn", [right_dropout, lambda x, p, t: torch.nn.functional.dropout(x, p, t)])
def test_dropout_accepts_right_answers(fn):
    verdict = check.dropout(fn)
    assert verdict.passed, verdict


@pytest.mark.parametrize("fn,hint", [
    (lambda x, p, t: x * (torch.rand_like(x) >= p) if t else x, "1 / (1 - p)"),
    (lambda x, p, t: x * (torch.rand_like(x) < p) / p if t else x, "DROPPING"),
    (lambda x, p, t: x * (torch.rand_like(x) >= p) / (1 - p), "evaluation"),
    (lambda x, p, t: x * (torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) >= p) / (1 - p) if t else x,
     "new random mask"),
    (lambda x, p, t: x * (torch.rand_like(x) >= p) * (1 - p) if t else x, "x / (1 - p)"),
])
def test_dropout_names_the_mistake(fn, hint):
    verdict = check.dropout(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict.message
