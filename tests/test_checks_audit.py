"""The checkers audit, as tests: every exercise checker a notebook calls is tested both ways.

For every exercise of ``notebooks/*.ipynb`` (a stub cell tagged ``exercise``, the checker cell
``check.NAME(...)``, then the hidden solution cell tagged ``solution``, which re-runs the checker):

- the ``tests/test_checks_*.py`` file of that checker module has a parametrised test that feeds it
  right answers (all accepted) and one that feeds it wrong answers (each rejected with a hint);
- the notebook's own stub, run as the notebook runs it, gets "not done yet" from its checker cell;
- the notebook's own solution, run as the notebook runs it, is accepted by the same checker.

A new exercise whose checker has no such tests fails here with its name. The targeted tests at the
end cover the hints of checker branches that the per-notebook test files do not reach.
"""

import ast
import contextlib
import functools
import importlib
import io
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F

from course_lib.checks import Verdict

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TEST_FILES = sorted((ROOT / "tests").glob("test_checks_*.py"))


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def check_module_of(nb) -> str:
    """The ``course_lib.checks`` module a notebook imports as ``check``."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.ImportFrom) and node.module == "course_lib.checks":
                for alias in node.names:
                    if alias.asname == "check":
                        return alias.name
    raise AssertionError("the notebook never imports `from course_lib.checks import ... as check`")


def checker_name(source: str) -> str:
    """NAME of the ``check.NAME(...)`` call in a checker cell."""
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "check"
        ):
            return node.func.attr
    raise AssertionError(f"no check.NAME(...) call in {source!r}")


def exercises():
    """(notebook name, check module, checker name, solution cell index) for every exercise."""
    out = []
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        module = check_module_of(nb)
        for i, cell in enumerate(nb.cells):
            if "solution" in tags(cell):
                checker = checker_cell_before(nb, i)
                out.append((path.name, module, checker_name(checker.source), i))
    return out


def checker_cell_before(nb, index: int):
    """The checker cell of the solution at ``index``: the code cell right before it."""
    checker = next(c for c in reversed(nb.cells[:index]) if c.cell_type == "code")
    assert "exercise" not in tags(checker), f"cell {index}: a checker cell must sit between stub and solution"
    return checker


EXERCISES = exercises()


@functools.cache
def checker_test_counts() -> dict[tuple[str, str], dict[str, int]]:
    """{(module, checker): {"accepts": n right answers, "rejects": n wrong answers}} from the tests.

    A test counts when its name says ``accept`` or ``reject``, its body calls ``check.NAME``, and
    it is parametrised over a module-level list (whose length is the number of answers).
    """
    found: dict[tuple[str, str], dict[str, int]] = {}
    for path in TEST_FILES:
        tree = ast.parse(path.read_text())
        module = None
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module == "course_lib.checks":
                module = next((a.name for a in node.names if a.asname == "check"), module)
        if module is None:
            continue
        test_module = importlib.import_module(path.stem)
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef):
                continue
            kind = "accepts" if "accept" in node.name else "rejects" if "reject" in node.name else None
            if kind is None:
                continue
            names = {checker_name(ast.unparse(call)) for call in ast.walk(node)
                     if isinstance(call, ast.Call) and "check." in ast.unparse(call.func)}
            cases = 0
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "pytest.mark.parametrize":
                    values = decorator.args[1]
                    cases += len(getattr(test_module, values.id)) if isinstance(values, ast.Name) else len(values.elts)
            for name in names:
                counts = found.setdefault((module, name), {"accepts": 0, "rejects": 0})
                counts[kind] += cases
    return found


def test_the_notebooks_have_exercises():
    assert len(EXERCISES) >= 3 * len(NOTEBOOKS)


@pytest.mark.parametrize("notebook,module,checker,index", EXERCISES, ids=lambda v: str(v))
def test_every_notebook_checker_is_fed_right_and_wrong_answers(notebook, module, checker, index):
    counts = checker_test_counts().get((module, checker))
    assert counts, f"{notebook}: check.{checker} (course_lib.checks.{module}) has no accept/reject tests"
    assert counts["accepts"] >= 1, f"check.{checker}: no right answer is fed to it"
    assert counts["rejects"] >= 2, f"check.{checker}: fewer than 2 wrong answers are fed to it"


def run_cell(source: str, namespace: dict):
    """Run a cell's code as Jupyter does and return the value of its last expression."""
    tree = ast.parse(source)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(tree, "<cell>", "exec"), namespace)
        if last is not None:
            return eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)
    return None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_notebook_stub_is_not_done_and_its_solution_is_accepted(path):
    """The notebook's own cells, in order: setup, then per exercise stub, checker, solution."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    namespace: dict = {}
    run_cell(code[0].source, namespace)
    for i, cell in enumerate(nb.cells):
        if "exercise" in tags(cell):
            run_cell(cell.source, namespace)
            continue
        if "solution" not in tags(cell):
            continue
        checker_cell = checker_cell_before(nb, i)
        assert checker_name(cell.source) == checker_name(checker_cell.source), f"{path.name} cell {i}"
        before = run_cell(checker_cell.source, namespace)  # the learner's cell still holds the stub
        assert isinstance(before, Verdict) and before.status == "not done", f"{path.name} cell {i}: {before}"
        verdict = run_cell(cell.source, namespace)  # the solution ends with the checker's call
        assert isinstance(verdict, Verdict) and verdict.passed, f"{path.name} cell {i}: {verdict}"
        # Any stub at all gets "not done yet" from this checker, never a traceback.
        checker = getattr(namespace["check"], checker_name(checker_cell.source))
        stubbed = checker(*[_stub] * _arity(checker_cell.source))
        assert stubbed.status == "not done", f"{path.name} cell {i}: {stubbed}"


def _stub(*args, **kwargs):
    raise NotImplementedError


def _arity(source: str) -> int:
    call = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call))
    return len(call.args)


# ---- gaps: plausible mistakes whose hints no test_checks_* file reached -----------------------
# Found by running the test_checks_* files under coverage: each case below reaches a branch of a
# checker (a hint) that no other test reaches. Built on the library's right answers.
from course_lib import embeddings, gpt, objectives, tokenizers  # noqa: E402
from course_lib import transformer as tf  # noqa: E402
from course_lib.checks import bert as bert_check  # noqa: E402
from course_lib.checks import embeddings as embeddings_check  # noqa: E402
from course_lib.checks import gpt as gpt_check  # noqa: E402
from course_lib.checks import tokens as tokens_check  # noqa: E402
from course_lib.checks import transformer as transformer_check  # noqa: E402
from course_lib.checks import welcome as welcome_check  # noqa: E402


def only_weights(model):
    """Forgets the biases."""
    return sum(p.numel() for name, p in model.named_parameters() if p.requires_grad and name.endswith("weight"))


def hard_coded(model):
    """Printed the count once and returned the number."""
    return 60


def count_as_tensor(model):
    """Right, but a 0-dim tensor: accepted (the checker takes .item())."""
    return torch.stack([torch.tensor(p.numel()) for p in model.parameters() if p.requires_grad]).sum()


def scores_without_batch(queries, keys):
    """Sums over the batch: einsum with the batch index dropped from the output."""
    return torch.einsum("bqd,bkd->qk", queries, keys)


def merge_forgets_return(word, pair, new_token):
    """Builds the merged word, then forgets to return it (None)."""
    merged = tokenizers.merge_pair(word, pair, new_token)  # noqa: F841


def encode_forgets_return(word, merges):
    symbols = tokenizers.bpe_encode_word(word, merges)  # noqa: F841


def decoder_mask_causal_only(tgt, pad_id):
    """Notebook 05's causal mask reused as it is: (T, T), no padding, no batch or head axis."""
    T = tgt.shape[1]
    return torch.ones(T, T, dtype=torch.bool).tril()


def loss_shifting_in_place(logits, input_ids, attention_mask=None):
    """Shifts the targets inside the caller's tensor."""
    input_ids[:, :-1] = input_ids[:, 1:].clone()
    vocab = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, vocab), input_ids[:, :-1].reshape(-1))


def top_k_values_only(logits, k):
    return torch.topk(logits, k, dim=-1).values


def top_k_keep_mask(logits, k):
    return torch.isfinite(gpt.top_k_filter(logits, k))


def top_k_minus_infinity_times_mask(logits, k):
    """logits - inf * (not kept): 0 * inf is NaN at the kept tokens."""
    removed = torch.isinf(gpt.top_k_filter(logits, k)).float()
    return logits - removed * float("inf")


def mask_labels_flat(ids, mask_id, vocab, special):
    """Labels only at the selected positions, a 1-D tensor."""
    masked, labels = objectives.mask_tokens(ids, mask_token_id=mask_id, vocab_size=vocab, special_token_ids=special)
    return masked, labels[labels != -100]


def pairs_generator(documents, seed=0):
    """`yield`s the pairs: a generator, not a list."""
    yield from objectives.make_nsp_pairs(documents, seed=seed)


def pairs_as_dicts(documents, seed=0):
    return [{"a": a, "b": b, "label": label} for a, b, label in objectives.make_nsp_pairs(documents, seed=seed)]


GAP_WRONG = [
    (welcome_check.count_parameters, only_weights, "expected 60 trainable numbers"),
    (welcome_check.count_parameters, hard_coded, "nn.Linear(3, 2) has 3*2 weights + 2 biases"),
    (welcome_check.pairwise_scores, scores_without_batch, "(batch, n_q, n_k)"),
    (tokens_check.merge_pair, merge_forgets_return, "should return a tuple of symbols, got NoneType"),
    (tokens_check.bpe_encode_word, encode_forgets_return, "return a tuple of tokens, got NoneType"),
    (transformer_check.decoder_mask, decoder_mask_causal_only, "expected 4 dimensions (batch, 1, T, T)"),
    (gpt_check.causal_lm_loss, loss_shifting_in_place, "changed its inputs in place"),
    (gpt_check.top_k_filter, top_k_values_only, "return a tensor of the input's shape"),
    (gpt_check.top_k_filter, top_k_keep_mask, "return float scores"),
    (gpt_check.top_k_filter, top_k_minus_infinity_times_mask, "NaN"),
    (bert_check.mask_tokens, mask_labels_flat, "labels should have the shape of input_ids"),
    (bert_check.nsp_pairs, pairs_generator, "return a non-empty list"),
    (bert_check.nsp_pairs, pairs_as_dicts, "each pair should be a tuple"),
]


@pytest.mark.parametrize("checker,fn,hint", GAP_WRONG, ids=[fn.__name__ for _, fn, _ in GAP_WRONG])
def test_gap_mistakes_are_rejected_with_their_hint(checker, fn, hint):
    verdict = checker(fn)
    assert verdict.status == "wrong" and hint in verdict.message, verdict


def test_gap_right_answers_are_accepted():
    assert welcome_check.count_parameters(count_as_tensor).passed
    # The library's own versions, as a learner who read ahead would write them.
    assert embeddings_check.sgns_loss(embeddings.sgns_loss).passed
    assert transformer_check.decoder_mask(tf.decoder_mask).passed
    assert gpt_check.top_k_filter(gpt.top_k_filter).passed
    assert gpt_check.causal_lm_loss(objectives.causal_lm_loss).passed
