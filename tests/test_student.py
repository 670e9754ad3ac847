"""The student version: solutions removed, outputs cleared, and it still runs.

``python -m course_lib.student SRC_DIR DEST_DIR`` is run on the real notebooks (read only: the
student version goes to a temporary folder); one student notebook is executed in a real kernel up
to its first checker cell, which must say "not done yet" rather than fail.
"""

import ast
import contextlib
import hashlib
import io
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from course_lib.checks.core import Verdict, run_checker
from course_lib.student import (
    EXERCISE_TAG,
    SOLUTION_TAG,
    TODO,
    StudentVersionError,
    main,
    make_student_version,
    stub_source,
    student_notebook,
)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def is_stub_body(body: list[ast.stmt]) -> bool:
    """A docstring at most, then ``raise NotImplementedError`` and nothing else."""
    rest = body[1:] if body and is_docstring(body[0]) else body
    return (
        len(rest) == 1
        and isinstance(rest[0], ast.Raise)
        and ast.unparse(rest[0]) == "raise NotImplementedError"
    )


def _first_line(node: ast.stmt) -> int:
    return min([d.lineno for d in getattr(node, "decorator_list", [])] + [node.lineno])


def last_value(code: str, namespace: dict):
    """Run a cell's code as Jupyter does and return the value of its last expression."""
    tree = ast.parse(code)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, "<cell>", "exec"), namespace)
    if last is not None:
        return eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)
    return None


def digest(paths) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """{name: (original notebook, student notebook)} for every notebook of notebooks/."""
    before = digest(NOTEBOOKS)
    dest = tmp_path_factory.mktemp("student")
    written = make_student_version(NOTEBOOK_DIR, dest)
    assert digest(NOTEBOOKS) == before, "making the student version must not touch the source notebooks"
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    return {
        p.name: (nbformat.read(p, as_version=4), nbformat.read(dest / p.name, as_version=4))
        for p in NOTEBOOKS
    }


# ---- the real notebooks --------------------------------------------------------------------------


def test_there_are_notebooks_with_solutions():
    assert len(NOTEBOOKS) >= 7
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert any(SOLUTION_TAG in tags(c) for c in nb.cells), path.name


def test_student_notebooks_are_valid_and_hold_no_outputs(student):
    for name, (_, nb) in student.items():
        nbformat.validate(nb)
        assert "widgets" not in nb.metadata, name
        for cell in nb.cells:
            assert "execution" not in cell.metadata, name
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


def test_only_solution_cells_go(student):
    for name, (original, nb) in student.items():
        kept = [c for c in original.cells if SOLUTION_TAG not in tags(c)]
        assert len(nb.cells) == len(kept) < len(original.cells), name
        for before, after in zip(kept, nb.cells):
            assert after.cell_type == before.cell_type and after.source == before.source, name
            assert after.metadata.get("tags", []) == before.metadata.get("tags", []), name


def test_every_solution_is_preceded_by_its_stub(student):
    """The exercise cell before each solution is exactly the stub of that solution's definitions."""
    stubs = 0
    for name, (original, nb) in student.items():
        cells = original.cells
        for i, cell in enumerate(cells):
            if SOLUTION_TAG not in tags(cell):
                continue
            exercise = next(c for c in reversed(cells[:i]) if EXERCISE_TAG in tags(c) or SOLUTION_TAG in tags(c))
            assert EXERCISE_TAG in tags(exercise), f"{name} cell {i}: no exercise stub before the solution"
            assert any(c.source == exercise.source for c in nb.cells), name
            old, new = ast.parse(cell.source), ast.parse(exercise.source)
            old_defs = {n.name: n for n in old.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
            new_defs = {n.name: n for n in new.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
            assert old_defs and set(new_defs) == set(old_defs), f"{name}: {sorted(old_defs)}"
            for fname, fn in old_defs.items():
                stub = new_defs[fname]
                if isinstance(fn, ast.FunctionDef):
                    assert ast.dump(stub.args) == ast.dump(fn.args), f"{name}: {fname} lost its signature"
                    assert ast.dump(stub.returns) == ast.dump(fn.returns) if fn.returns else stub.returns is None
                    assert is_stub_body(stub.body), f"{name}: {fname} holds code"
                    assert ast.get_docstring(stub), f"{name}: the stub of {fname} has no docstring"
                    assert ast.get_docstring(stub) == ast.get_docstring(fn), f"{name}: {fname}'s docstrings differ"
                stubs += 1
            assert TODO in exercise.source, name
            assert not any(isinstance(n, ast.Return) for n in ast.walk(new)), f"{name}: a stub returns"
            # The exercise cell is what stub_source makes of the solution's definitions (the
            # solution's title comment and its checker call are not part of the exercise).
            lines = cell.source.splitlines(keepends=True)
            definitions = "".join(
                "".join(lines[_first_line(node) - 1 : node.end_lineno])
                for node in old.body
                if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom))
            )
            assert stub_source(definitions) == exercise.source.rstrip("\n"), f"{name} cell {i}"
    assert stubs >= 30  # every exercise of every notebook


def test_every_checker_says_not_done_yet_on_the_stubs(student):
    """Run each notebook's setup cell, then every stub and the checker cell after it."""
    verdicts = 0
    for name, (_, nb) in student.items():
        cells = nb.cells
        code = [c for c in cells if c.cell_type == "code"]
        namespace: dict = {}
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code[0].source, f"{name} setup", "exec"), namespace)
        for i, cell in enumerate(cells):
            if EXERCISE_TAG not in tags(cell):
                continue
            exec(compile(cell.source, f"{name} cell {i}", "exec"), namespace)
            checker = next(c for c in cells[i + 1 :] if c.cell_type == "code")
            assert "check." in checker.source
            verdict = last_value(checker.source, namespace)
            assert isinstance(verdict, Verdict), f"{name} cell {i}: the checker returned {verdict!r}"
            assert verdict.status == "not done", f"{name} cell {i}: {verdict}"
            assert "Not done yet" in repr(verdict)
            verdicts += 1
    assert verdicts >= 20


def test_student_notebook_runs_in_a_kernel_up_to_its_first_checker(student, tmp_path):
    """Notebook 05 (its first exercise comes early), executed for real with nbclient."""
    _, nb = student["05_attention.ipynb"]
    first = next(i for i, c in enumerate(nb.cells) if EXERCISE_TAG in tags(c))
    checker = next(i for i in range(first + 1, len(nb.cells)) if nb.cells[i].cell_type == "code")
    assert "check." in nb.cells[checker].source
    nb.cells = nb.cells[: checker + 1]
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()  # raises CellExecutionError if any cell fails
    outputs = nb.cells[checker].outputs
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "⏳ Not done yet (stable_softmax)" in text, text
    assert not any(o.output_type == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)


# ---- stub_source ---------------------------------------------------------------------------------

SOLUTION = '''import math
from collections import Counter

SCALE = 2.0


@functools.lru_cache(maxsize=None)
def scaled(x: float,  # the input
           k: int = 3, *, fn=lambda a: a[1:2]) -> dict[str, float]:  # a comment after the colon
    """Scale x.

    Longer text.
    """
    y = x * SCALE
    return {"y": y}


def one_liner(a): return a + 1


class Counterish(Counter):
    """A counter."""
    size: int = 0
    limit = 10

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def total_above(self, n):
        return sum(v for v in self.values() if v > n)


result = scaled(3.0)
for i in range(3):
    total = i
'''


def test_stub_keeps_signatures_docstrings_and_imports():
    stub = stub_source(SOLUTION)
    tree = ast.parse(stub)
    original = ast.parse(SOLUTION)
    assert "import math" in stub and "from collections import Counter" in stub
    assert "@functools.lru_cache(maxsize=None)" in stub
    assert "# the input" in stub and "a comment after the colon" not in stub
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    old = {n.name: n for n in original.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert set(defs) == {"scaled", "one_liner", "Counterish"}
    for fname in ("scaled", "one_liner"):
        assert ast.dump(defs[fname].args) == ast.dump(old[fname].args)
        assert is_stub_body(defs[fname].body)
    assert ast.get_docstring(defs["scaled"]) == "Scale x.\n\nLonger text."
    cls = defs["Counterish"]
    assert ast.get_docstring(cls) == "A counter."
    assert [ast.unparse(b) for b in cls.bases] == ["Counter"]
    methods = [n for n in cls.body if isinstance(n, ast.FunctionDef)]
    assert [m.name for m in methods] == ["__init__", "total_above"]
    assert all(is_stub_body(m.body) for m in methods)
    assert "size: int = 0" in stub  # a field annotation is part of the class's signature
    for gone in ("SCALE = 2.0", "return", "self.limit = limit", "limit = 10", "result =", "range(3)"):
        assert gone not in stub, gone
    assert f"{TODO} (define `SCALE`)" in stub
    assert f"    {TODO} (define `limit`)" in stub
    assert f"{TODO} (define `result`, `i`, `total`)" in stub


def test_stubs_raise_not_implemented_and_checkers_say_not_done():
    namespace = {"functools": __import__("functools")}
    exec(stub_source(SOLUTION), namespace)
    with pytest.raises(NotImplementedError):
        namespace["scaled"](1.0)
    with pytest.raises(NotImplementedError):
        namespace["Counterish"](3)

    def check():
        namespace["one_liner"](1)
        return "fine"

    verdict = run_checker("one_liner", check)
    assert verdict.status == "not done" and not verdict.passed


def test_stubbing_is_idempotent():
    for source in (SOLUTION, "class Empty:\n    pass\n", "x = 1\n", "", "def f(): 'doc'; return 1\n"):
        once = stub_source(source)
        ast.parse(once)
        assert stub_source(once) == once, source


def test_an_empty_cell_becomes_a_todo():
    assert stub_source("") == TODO
    assert stub_source("# a comment\n") == TODO


def test_invalid_python_is_a_clear_error():
    with pytest.raises(StudentVersionError, match=r"nb\.ipynb, cell 4 is not valid Python.*line 2"):
        stub_source("def f(x):\n    return x +\n", where="nb.ipynb, cell 4")
    with pytest.raises(StudentVersionError, match="magics"):
        stub_source("%timeit f()\n")
    with pytest.raises(TypeError, match="str"):
        stub_source(["def f(): pass"])


def test_student_notebook_leaves_its_input_alone():
    nb = nbformat.v4.new_notebook()
    stub = nbformat.v4.new_code_cell("def f(x):\n    raise NotImplementedError\n", metadata={"tags": ["exercise"]})
    checker = nbformat.v4.new_code_cell("check.f(f)")
    solution = nbformat.v4.new_code_cell(
        "# @title Solution\ndef f(x):\n    return x\ncheck.f(f)\n",
        metadata={"tags": ["solution"], "jupyter": {"source_hidden": True}, "cellView": "form"},
    )
    solution.outputs = [nbformat.v4.new_output("stream", text="hi\n")]
    solution.execution_count = 3
    checker.execution_count = 2
    nb.cells = [stub, checker, solution]
    out = student_notebook(nb, name="nb.ipynb")
    assert len(nb.cells) == 3 and nb.cells[2].outputs and nb.cells[1].execution_count == 2
    assert [c.source for c in out.cells] == [stub.source, checker.source]
    assert out.cells[1].execution_count is None
    with pytest.raises(TypeError, match="nbformat"):
        student_notebook({"cells": []})


def test_a_solution_without_a_stub_becomes_one():
    """A notebook written without exercise cells still leaves the learner somewhere to write."""
    nb = nbformat.v4.new_notebook()
    solution = nbformat.v4.new_code_cell(
        "def f(x):\n    return x\n", metadata={"tags": ["solution"], "jupyter": {"source_hidden": True}}
    )
    markdown = nbformat.v4.new_markdown_cell("The answer is 42.", metadata={"tags": ["solution"]})
    nb.cells = [solution, markdown]
    out = student_notebook(nb, name="nb.ipynb")
    assert len(out.cells) == 1, "the markdown solution goes"
    assert "return" not in out.cells[0].source and out.cells[0].metadata["tags"] == ["exercise"]
    assert "jupyter" not in out.cells[0].metadata, "the stub is not hidden"


# ---- the command ---------------------------------------------------------------------------------


def write_notebook(path: Path, solution_source: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(solution_source, metadata={"tags": ["solution"]})]
    nbformat.write(nb, path)


def test_command_line_errors_are_clear(tmp_path, capsys):
    assert main([str(tmp_path / "missing"), str(tmp_path / "out")]) == 1
    assert "does not exist" in capsys.readouterr().err

    src = tmp_path / "src"
    src.mkdir()
    assert main([str(src), str(tmp_path / "out")]) == 1
    assert "no .ipynb" in capsys.readouterr().err

    write_notebook(src / "01_good.ipynb", "def f(x):\n    return x\n")
    for inside in (src, src / "student"):
        assert main([str(src), str(inside)]) == 1
        assert "inside the source folder" in capsys.readouterr().err

    write_notebook(src / "02_bad.ipynb", "def f(x):\n    return (x\n")
    assert main([str(src), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "02_bad.ipynb, cell 0" in err and "not valid Python" in err
    assert not (tmp_path / "out").exists(), "nothing is written when a notebook fails"


def test_python_dash_m_writes_the_student_version(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    write_notebook(src / "01_one.ipynb", "def f(x: int) -> int:\n    return x\n")
    done = subprocess.run(
        [sys.executable, "-m", "course_lib.student", str(src), str(dest)],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "1 notebook" in done.stdout
    stub = nbformat.read(dest / "01_one.ipynb", as_version=4).cells[0].source
    assert stub == f"def f(x: int) -> int:\n    {TODO}\n    raise NotImplementedError"
