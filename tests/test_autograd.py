"""The scalar engine computes what torch.autograd computes, reused nodes and deep chains included."""

import math
import random

import pytest
import torch

from course_lib.autograd import Value, topological_order

UNARY = ["tanh", "relu", "exp", "square", "neg"]
BINARY = ["+", "-", "*", "/"]


def _random_expression(rng: random.Random, leaves: list, ops: int, lib: str):
    """Combine the leaves with random operations; nodes are reused (drawn from a growing pool)."""
    pool = list(leaves)
    for _ in range(ops):
        a = rng.choice(pool)
        if rng.random() < 0.4:
            op = rng.choice(UNARY)
            if op == "tanh":
                out = a.tanh() if lib == "ours" else torch.tanh(a)
            elif op == "relu":
                out = a.relu() if lib == "ours" else torch.relu(a)
            elif op == "exp":
                out = (a * 0.1).exp() if lib == "ours" else torch.exp(a * 0.1)
            elif op == "square":
                out = a**2
            else:
                out = -a
        else:
            b = rng.choice(pool)
            op = rng.choice(BINARY)
            if op == "/":
                out = a / (b * b + 1.0)  # never divides by 0
            else:
                out = {"+": a + b, "-": a - b, "*": a * b}[op]
        pool.append(out)
    total = pool[-1]
    for node in pool[len(leaves):-1:3]:  # several nodes feed the result: reuse in earnest
        total = total + node
    return total


@pytest.mark.parametrize("seed", range(20))
def test_gradients_equal_torch_autograd_on_random_expressions(seed):
    values = [random.Random(seed + 100).uniform(-2, 2) for _ in range(4)]
    ours = [Value(v) for v in values]
    theirs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    y_ours = _random_expression(random.Random(seed), ours, 25, "ours")
    y_theirs = _random_expression(random.Random(seed), theirs, 25, "torch")
    y_ours.backward()
    y_theirs.backward()
    assert y_ours.data == pytest.approx(y_theirs.item(), rel=1e-9, abs=1e-9)
    for a, b in zip(ours, theirs):
        expected = 0.0 if b.grad is None else b.grad.item()  # torch leaves an unused input at None
        assert a.grad == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_a_node_used_twice_accumulates_both_contributions():
    a = Value(3.0)
    b = a + a  # micrograd's issue #2: b.grad must reach a twice
    b.backward()
    assert a.grad == 2.0
    x = Value(-2.0)
    y = x * x * x  # dy/dx = 3 x^2
    y.backward()
    assert x.grad == 12.0


def test_log_pow_division_and_the_reflected_operations():
    x, t = Value(1.7), torch.tensor(1.7, dtype=torch.float64, requires_grad=True)
    y = (2 / x + 3 - x).log() * (1 - x) + x**0.5 + (x**-2) / 4
    z = (2 / t + 3 - t).log() * (1 - t) + t**0.5 + (t**-2) / 4
    y.backward()
    z.backward()
    assert y.data == pytest.approx(z.item()) and x.grad == pytest.approx(t.grad.item())


def test_a_deep_chain_does_not_hit_the_recursion_limit():
    x = Value(0.5)
    y = x
    for _ in range(5000):
        y = (y * 0.999).tanh() + 0.001
    y.backward()
    t = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    u = t
    for _ in range(5000):
        u = torch.tanh(u * 0.999) + 0.001
    u.backward()
    assert x.grad == pytest.approx(t.grad.item(), rel=1e-6)


def test_backward_twice_is_refused_and_leaves_accumulate_across_graphs():
    w = Value(2.0)
    loss = w * 3
    loss.backward()
    with pytest.raises(RuntimeError, match="already run"):
        loss.backward()
    (w * 5).backward()  # a second graph using the same leaf adds to its grad, as in PyTorch
    assert w.grad == 8.0


def test_topological_order_puts_every_node_after_its_parents():
    a, b = Value(1.0), Value(2.0)
    c = a * b
    d = c + a
    e = d.tanh() * c
    order = topological_order(e)
    assert order[-1] is e and len(order) == len({id(n) for n in order}) == 6
    where = {id(n): i for i, n in enumerate(order)}
    for node in order:
        assert all(where[id(p)] < where[id(node)] for p in node.parents)


def test_wrong_inputs_are_refused_with_a_message():
    with pytest.raises(TypeError, match="expected a number"):
        Value("3")
    with pytest.raises(TypeError, match="expected a number"):
        Value(True)
    with pytest.raises(TypeError, match="combines with a Value or a number"):
        Value(1.0) + [1]
    with pytest.raises(TypeError, match="constant int or float exponent"):
        Value(2.0) ** Value(2.0)
    with pytest.raises(ValueError, match="positive"):
        Value(-1.0).log()
    with pytest.raises(ZeroDivisionError):
        Value(1.0) / 0


def test_repr_shows_value_and_gradient():
    assert repr(Value(math.pi, label="x")) == "Value(x=3.142, grad=0)"


def test_draw_graph_draws_one_box_per_value_and_refuses_huge_graphs():
    import matplotlib

    matplotlib.use("Agg")
    from course_lib.autograd import draw_graph

    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    y = (a * b + a).tanh()
    y.backward()
    ax = draw_graph(y)
    texts = [t.get_text() for t in ax.texts if t.get_text()]  # the arrows are empty annotations
    assert len(texts) == len(topological_order(y)) == 5
    assert any(t.startswith("tanh") and f"grad {1:.4g}" in t for t in texts)
    assert any(t.startswith("a") and f"grad {a.grad:.4g}" in t for t in texts)
    z = Value(0.0)
    for _ in range(70):
        z = z + 1
    with pytest.raises(ValueError, match="max_nodes"):
        draw_graph(z)
