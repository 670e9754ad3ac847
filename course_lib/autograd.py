"""A scalar automatic-differentiation engine: backpropagation, one number at a time.

Each ``Value`` holds a number (``data``), the gradient of the final result with respect to it
(``grad``), and how it was made: the ``Value``s it came from (``parents``), the operation (``op``)
and a ``_backward`` function that applies the chain rule for that one operation. ``backward()`` on
the result visits the graph in reverse topological order (every node after all the nodes that use
it) and calls each node's ``_backward``, which **adds** its contribution to its parents' ``grad``:
a value used twice receives both contributions (the mistake micrograd's issue #2 was about).

    from course_lib.autograd import Value
    a, b = Value(2.0), Value(-3.0)
    y = (a * b + a).tanh()
    y.backward()            # a.grad == dy/da, b.grad == dy/db
    a.grad, b.grad

``draw_graph(y)`` draws the graph: one box per value with its number and its gradient.

In the spirit of Andrej Karpathy's micrograd, with checks a learner can read. Equal to
``torch.autograd`` on random expressions (``tests/test_autograd.py``). Built in notebook 01.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

__all__ = ["Value", "topological_order", "draw_graph"]

Number = int | float


class Value:
    """One number in a computation graph, with its gradient.

    Args:
        data: the number (an int or a float; stored as a float).
        parents: the ``Value``s this one was computed from (set by the operations).
        op: the operation's name, for pictures (``"+"``, ``"*"``, ``"tanh"``...).
        label: an optional name, for pictures.
    """

    __slots__ = ("data", "grad", "parents", "op", "label", "_backward", "_backward_done")

    def __init__(self, data: Number, parents: tuple[Value, ...] = (), op: str = "", label: str = "") -> None:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise TypeError(f"Value expected a number (int or float), got {type(data).__name__}: {data!r}")
        self.data = float(data)
        self.grad = 0.0
        self.parents = parents
        self.op = op
        self.label = label
        self._backward: Callable[[], None] = lambda: None
        self._backward_done = False

    def __repr__(self) -> str:
        name = f"{self.label}=" if self.label else ""
        return f"Value({name}{self.data:.4g}, grad={self.grad:.4g})"

    # ---- the operations: each sets out._backward, the chain rule for itself -----------------------
    def __add__(self, other: Value | Number) -> Value:
        other = _as_value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward() -> None:  # d(a + b)/da = d(a + b)/db = 1
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other: Value | Number) -> Value:
        other = _as_value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward() -> None:  # d(ab)/da = b, d(ab)/db = a
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, exponent: Number) -> Value:
        if isinstance(exponent, bool) or not isinstance(exponent, (int, float)):
            raise TypeError(f"Value ** expects a constant int or float exponent, got {type(exponent).__name__}")
        if self.data == 0 and exponent < 1:
            raise ZeroDivisionError(f"0 ** {exponent}: the derivative is infinite at 0")
        out = Value(self.data**exponent, (self,), f"**{exponent:g}")

        def _backward() -> None:  # d(a^n)/da = n a^(n-1)
            self.grad += exponent * self.data ** (exponent - 1) * out.grad

        out._backward = _backward
        return out

    def exp(self) -> Value:
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward() -> None:  # d(e^a)/da = e^a, which is out.data
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def log(self) -> Value:
        if self.data <= 0:
            raise ValueError(f"log of {self.data}: the logarithm needs a positive number")
        out = Value(math.log(self.data), (self,), "log")

        def _backward() -> None:  # d(log a)/da = 1 / a
            self.grad += out.grad / self.data

        out._backward = _backward
        return out

    def tanh(self) -> Value:
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward() -> None:  # d(tanh a)/da = 1 - tanh(a)^2
            self.grad += (1.0 - out.data**2) * out.grad

        out._backward = _backward
        return out

    def relu(self) -> Value:
        out = Value(max(self.data, 0.0), (self,), "relu")

        def _backward() -> None:  # 1 where a > 0, else 0 (PyTorch's choice at 0 too)
            self.grad += (self.data > 0) * out.grad

        out._backward = _backward
        return out

    # ---- the rest, built from the operations above -------------------------------------------------
    def __neg__(self) -> Value:
        return self * -1

    def __sub__(self, other: Value | Number) -> Value:
        return self + (-_as_value(other))

    def __truediv__(self, other: Value | Number) -> Value:
        other = _as_value(other)
        if other.data == 0:
            raise ZeroDivisionError("division of a Value by 0")
        return self * other**-1

    def __radd__(self, other: Number) -> Value:
        return self + other

    def __rmul__(self, other: Number) -> Value:
        return self * other

    def __rsub__(self, other: Number) -> Value:
        return _as_value(other) - self

    def __rtruediv__(self, other: Number) -> Value:
        return _as_value(other) / self

    # ---- backpropagation ---------------------------------------------------------------------------
    def backward(self) -> None:
        """Backpropagate: every ``Value`` this one depends on gets d(self)/d(that value) in ``grad``.

        Visits the graph once, in reverse topological order, starting from ``self.grad = 1``. Inner
        nodes start from 0; leaves (the inputs and parameters) **add** to the ``grad`` they had, as in
        PyTorch, so a parameter used by two losses collects both: reset them to 0 between training
        steps. A graph can be backpropagated once: a second call would add every gradient again, so
        it raises instead; build the expression again to start over.
        """
        if self._backward_done:
            raise RuntimeError(
                "backward() was already run on this Value: running it again would add every gradient a "
                "second time. Build the expression again, or reset the leaves' grad to 0 first."
            )
        order = topological_order(self)
        for node in order:
            node.grad = 0.0 if node.parents else node.grad  # inner nodes start from 0; leaves accumulate
        self.grad = 1.0  # d(self)/d(self)
        for node in reversed(order):
            node._backward()
        self._backward_done = True


def _as_value(x: Value | Number) -> Value:
    if isinstance(x, Value):
        return x
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"a Value combines with a Value or a number, got {type(x).__name__}: {x!r}")
    return Value(x)


def topological_order(root: Value) -> list[Value]:
    """Every ``Value`` that ``root`` depends on, ``root`` last, each after all of its parents.

    Depth-first: a node is appended once all its parents are. Reversed, it is the order in which
    backpropagation must visit the nodes (a node's gradient is complete only once every node that
    uses it has passed its share back). Iterative, so a deep chain does not hit Python's recursion limit.
    """
    if not isinstance(root, Value):
        raise TypeError(f"topological_order expected a Value, got {type(root).__name__}")
    order: list[Value] = []
    visited: set[int] = set()
    stack: list[tuple[Value, Iterable[Value]]] = [(root, iter(root.parents))]
    visited.add(id(root))
    while stack:
        node, parents = stack[-1]
        for parent in parents:
            if id(parent) not in visited:
                visited.add(id(parent))
                stack.append((parent, iter(parent.parents)))
                break
        else:
            stack.pop()
            order.append(node)
    return order


def draw_graph(root: Value, ax=None, *, max_nodes: int = 60):
    """Draw the graph of ``root``: a box per ``Value`` (its operation, label, ``data`` and ``grad``),
    an arrow from each parent to the value computed from it, inputs on the left, ``root`` on the right.

    Columns are depths (the longest path from an input), so every arrow points right. Returns the
    matplotlib ``Axes``. Graphs of more than ``max_nodes`` values are refused: they are unreadable.
    """
    import matplotlib.pyplot as plt

    order = topological_order(root)
    if len(order) > max_nodes:
        raise ValueError(f"draw_graph: the graph has {len(order)} values, more than max_nodes={max_nodes} can show")
    depth: dict[int, int] = {}
    for node in order:  # parents come first, so their depths are known
        depth[id(node)] = 1 + max((depth[id(p)] for p in node.parents), default=-1)
    columns: dict[int, list[Value]] = {}
    for node in order:
        columns.setdefault(depth[id(node)], []).append(node)
    where = {}
    for x, nodes in columns.items():
        for i, node in enumerate(nodes):
            where[id(node)] = (x, (len(nodes) - 1) / 2 - i)
    if ax is None:
        width = 2.2 * (max(columns) + 1)
        _, ax = plt.subplots(figsize=(max(4.0, width), max(2.0, 1.1 * max(map(len, columns.values())))))
    for node in order:
        x, y = where[id(node)]
        for parent in node.parents:
            px, py = where[id(parent)]
            ax.annotate("", (x - 0.38, y), (px + 0.38, py), zorder=1,
                        arrowprops=dict(arrowstyle="->", color="0.55", lw=1))
        name = " ".join(part for part in (node.op, node.label) if part) or "input"
        colour = "#fdd9b5" if node is root else "#cfe2f3" if not node.parents else "white"  # output, inputs
        ax.text(x, y, f"{name}\ndata {node.data:.4g}\ngrad {node.grad:.4g}", ha="center", va="center", fontsize=8,
                zorder=3, bbox=dict(boxstyle="round", fc=colour, ec="0.4"))
    ax.set_xlim(-0.6, max(columns) + 0.6)
    ys = [y for _, y in where.values()]
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    ax.axis("off")
    return ax
