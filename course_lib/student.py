"""Make the student version of the course: solutions removed, outputs cleared.

Run it from a terminal::

    python -m course_lib.student notebooks/ student/

In the course's notebooks every exercise is four cells: the prompt (markdown), a stub cell tagged
``exercise`` (the signature, a docstring with shapes, ``raise NotImplementedError``) that the
learner fills in, the checker cell, and a solution cell tagged ``solution`` whose source is hidden
until clicked. Every notebook of the source folder is written to the destination folder with:

- every output, execution count and timing cleared (and the saved widget state dropped);
- every cell tagged ``solution`` removed, so the learner's own stub is the only definition;
- a code solution that no ``exercise`` stub precedes (a notebook written the older way) replaced by
  its stub instead of removed: :func:`stub_source` keeps each top-level function's signature
  (decorators, arguments, defaults, annotations) and docstring and makes its body
  ``# TODO: your code here`` and ``raise NotImplementedError``; a class keeps its header,
  docstring and field annotations, and its methods become stubs the same way; imports stay (a
  signature may need them); any other statement is dropped and a ``# TODO`` comment names what it
  defined.

The checker cell after each exercise then reports "⏳ Not done yet" (``course_lib.checks.core.
run_checker`` turns the stub's ``NotImplementedError`` into that verdict) instead of crashing, so
the student version runs up to its first exercise, and every checker cell after it, without error.
The same :func:`stub_source` is what each ``exercise`` cell of the course holds (a test keeps the
two in step), so a specification the learner needs belongs in the prompt or the docstring.

The stubs are built with :mod:`ast` and :mod:`tokenize` (never regular expressions), so any valid
Python in a solution cell is handled; a solution cell that is not valid Python is an error that
names the notebook, the cell and the line.
"""

from __future__ import annotations

import argparse
import ast
import copy
import io
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "SOLUTION_TAG",
    "EXERCISE_TAG",
    "TODO",
    "StudentVersionError",
    "stub_source",
    "student_notebook",
    "make_student_version",
    "main",
]

SOLUTION_TAG = "solution"
EXERCISE_TAG = "exercise"
TODO = "# TODO: your code here"
_RAISE = "raise NotImplementedError"
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_KEPT = (ast.Import, ast.ImportFrom)


class StudentVersionError(ValueError):
    """A notebook or folder that cannot be turned into a student version; the message says why."""


# ---- stubs of one cell's source -----------------------------------------------------------------


def _header(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> str:
    """The source text of ``node``'s decorators and header, up to and including the ``:``.

    Found with ``tokenize``: the first ``:`` outside brackets after the ``def``/``class`` keyword
    ends the header (annotations, defaults and lambdas sit inside brackets). A comment after the
    colon is left out; comments inside the signature stay.
    """
    first = min([d.lineno for d in node.decorator_list] + [node.lineno])
    # The header ends before the body's first statement ends, so these lines hold all of it.
    snippet = lines[node.lineno - 1 : node.body[0].end_lineno]
    depth = 0
    end: tuple[int, int] | None = None
    try:
        for token in tokenize.generate_tokens(io.StringIO("".join(snippet)).readline):
            if token.type != tokenize.OP:
                continue
            if token.string in "([{":
                depth += 1
            elif token.string in ")]}":
                depth -= 1
            elif token.string == ":" and depth == 0:
                end = token.end
                break
    except (tokenize.TokenError, IndentationError, SyntaxError):  # pragma: no cover - parsed before
        end = None
    if end is None:  # pragma: no cover - ast.parse accepted the source, so the colon is there
        raise StudentVersionError(f"could not find the end of the header of {node.name!r}")
    row, col = end
    text = lines[first - 1 : node.lineno - 1] + snippet[: row - 1] + [snippet[row - 1][:col]]
    return "".join(text).rstrip()


def _docstring(source: str, node: ast.AST, header_end_line: int) -> tuple[str, str]:
    """``(indent, docstring source)`` of a function or class body; the docstring is '' if none."""
    first = node.body[0]
    own_line = first.lineno > header_end_line
    indent = " " * (first.col_offset if own_line else node.col_offset + 4)
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        segment = ast.get_source_segment(source, first)
        return indent, indent + segment
    return indent, ""


def _assigned_names(node: ast.stmt) -> list[str]:
    """The names a dropped statement binds (``x = ...``, ``for x in``, ``with ... as x``...)."""
    names = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            names.append(sub.id)
        elif isinstance(sub, (*_FUNCTIONS, ast.ClassDef)) and sub is not node:
            names.append(sub.name)
    return list(dict.fromkeys(names))


def _todo_for(dropped: list[ast.stmt], indent: str) -> str:
    names = list(dict.fromkeys(name for node in dropped for name in _assigned_names(node)))
    if names:
        return f"{indent}{TODO} (define {', '.join(f'`{n}`' for n in names)})"
    return f"{indent}{TODO}"


@dataclass
class _Cell:
    """A parsed solution cell: its source, its lines and the stub TODO comments already in it."""

    source: str
    lines: list[str]
    todos: list[tuple[int, int, str]]  # (line, column, text) of each ``# TODO: your code here``

    def todos_in(self, first: int, last: int, indent: str) -> list[tuple[int, str]]:
        """The TODO comments at ``indent`` between lines ``first`` and ``last`` (inclusive)."""
        return [(line, indent + text) for line, col, text in self.todos
                if first <= line <= last and col == len(indent)]


def _start(node: ast.stmt) -> int:
    return min([d.lineno for d in getattr(node, "decorator_list", [])] + [node.lineno])


def _stub_function(cell: _Cell, node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    header = _header(cell.lines, node)
    indent, doc = _docstring(cell.source, node, _start(node) + header.count("\n"))
    parts = [header] + ([doc] if doc else []) + [f"{indent}{TODO}", f"{indent}{_RAISE}"]
    return "\n".join(parts)


def _stub_class(cell: _Cell, node: ast.ClassDef) -> str:
    header = _header(cell.lines, node)
    header_end = _start(node) + header.count("\n")
    indent, doc = _docstring(cell.source, node, header_end)
    body = node.body[1:] if doc else node.body
    members = _stub_statements(cell, body, indent)
    comments = cell.todos_in(header_end + 1, node.end_lineno, indent)
    if not members:  # a class body needs a statement
        members = [(node.end_lineno + 1, f"{indent}pass")]
        if not comments:
            comments = [(node.end_lineno, f"{indent}{TODO}")]
    pieces = [piece for _, piece in sorted(members + comments, key=lambda item: item[0])]
    return "\n".join([header] + ([doc] if doc else [])) + "\n" + _join(pieces, blank_lines=1)


def _reindent(text: str, indent: str, col: int) -> str:
    """Source lines of a kept statement, moved from column ``col`` to ``indent``."""
    return "\n".join(indent + line[col:] if line.strip() else "" for line in text.splitlines())


def _is_definition(piece: str) -> bool:
    return piece.lstrip().startswith(("def ", "async def ", "class ", "@"))


def _join(pieces: list[str], *, blank_lines: int) -> str:
    """PEP 8 spacing: blank lines around definitions, none between imports or TODO comments."""
    out: list[str] = []
    for i, piece in enumerate(pieces):
        if i:
            definition = _is_definition(pieces[i - 1]) or _is_definition(piece)
            out.append("\n" * (blank_lines + 1) if definition else "\n")
        out.append(piece)
    return "".join(out)


def _stub_statements(cell: _Cell, body: list[ast.stmt], indent: str) -> list[tuple[int, str]]:
    """``(line, stub piece)`` for a list of statements (a cell's top level or a class body)."""
    pieces: list[tuple[int, str]] = []
    dropped: list[ast.stmt] = []

    def flush() -> None:
        if dropped:
            pieces.append((dropped[0].lineno, _todo_for(dropped, indent)))
            dropped.clear()

    for node in body:
        if isinstance(node, _FUNCTIONS):
            flush()
            pieces.append((_start(node), _stub_function(cell, node)))
        elif isinstance(node, ast.ClassDef):
            flush()
            pieces.append((_start(node), _stub_class(cell, node)))
        elif isinstance(node, _KEPT) or (isinstance(node, ast.AnnAssign) and indent):
            # Imports (a signature may need them) and, in a class, field annotations (a
            # dataclass's fields are its signature).
            flush()
            text = "".join(cell.lines[node.lineno - 1 : node.end_lineno])
            pieces.append((node.lineno, _reindent(text, indent, node.col_offset)))
        elif isinstance(node, ast.Pass):
            continue
        else:
            dropped.append(node)
    flush()
    return pieces


def _todo_comments(source: str) -> list[tuple[int, int, str]]:
    """``(line, column, text)`` of every ``# TODO: your code here ...`` comment (a stub's own)."""
    found = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT and token.string.startswith(TODO):
                found.append((token.start[0], token.start[1], token.string))
    except (tokenize.TokenError, IndentationError, SyntaxError):  # pragma: no cover - parsed before
        pass
    return found


def stub_source(source: str, *, where: str = "the solution cell") -> str:
    """The student stub of a solution cell's Python source.

    Args:
        source: the cell's code.
        where: how to name the cell in an error message (notebook and cell number).

    Returns:
        The stub: each top-level function with its signature and docstring and a body of
        ``# TODO: your code here`` / ``raise NotImplementedError``; each class with its header,
        docstring, field annotations and stubbed methods; imports kept; every other statement
        replaced by a ``# TODO`` comment naming what it defined. Stubbing a stub changes nothing:
        ``stub_source(stub_source(s)) == stub_source(s)``.

    Raises:
        TypeError: ``source`` is not a string.
        StudentVersionError: ``source`` is not valid Python (the message names ``where``, the line
            and the parser's complaint; IPython magics such as ``%timeit`` do not belong in a
            solution cell).
    """
    if not isinstance(source, str):
        raise TypeError(f"stub_source expected the cell's source as a str, got {type(source).__name__}")
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        line = (exc.text or "").strip()
        raise StudentVersionError(
            f"{where} is not valid Python, so no stub can be made from it: {exc.msg} at line "
            f"{exc.lineno}{f' (`{line}`)' if line else ''}. Fix the cell (IPython magics such as "
            "`%timeit` or `!pip` do not belong in a solution cell) and run the command again."
        ) from None
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    cell = _Cell(source, lines, _todo_comments(source))
    pieces = _stub_statements(cell, tree.body, "") + cell.todos_in(1, len(lines), "")
    pieces.sort(key=lambda item: item[0])
    return _join([piece for _, piece in pieces], blank_lines=2) if pieces else TODO


# ---- notebooks ----------------------------------------------------------------------------------


def _nbformat():
    try:
        import nbformat
    except ImportError as exc:  # pragma: no cover - nbformat comes with Jupyter
        raise ModuleNotFoundError(
            "course_lib.student needs the nbformat package (it comes with Jupyter): "
            "pip install nbformat"
        ) from exc
    return nbformat


def _tags(cell: Any) -> list[str]:
    tags = cell.get("metadata", {}).get("tags", [])
    return list(tags) if isinstance(tags, (list, tuple)) else []


def student_notebook(notebook: Any, *, name: str = "the notebook") -> Any:
    """The student version of one notebook (an ``nbformat`` notebook); the input is not changed.

    Args:
        notebook: a notebook read with ``nbformat.read(..., as_version=4)``.
        name: how to name it in error messages (its file name).

    Returns:
        A new notebook: outputs, execution counts, execution timings and widget state cleared;
        each cell tagged ``solution`` removed, except a code solution with no ``exercise`` cell
        before it (since the previous solution), which becomes its :func:`stub_source`, tagged
        ``exercise``, so the learner still has a cell to write in.

    Raises:
        StudentVersionError: a stub is needed from a solution cell that is not valid Python.
    """
    if not hasattr(notebook, "cells") or not isinstance(notebook.get("metadata"), dict):
        raise TypeError(
            f"student_notebook expected a notebook read with nbformat.read(..., as_version=4), "
            f"got {type(notebook).__name__}"
        )
    nb = copy.deepcopy(notebook)
    nb.metadata.pop("widgets", None)  # saved widget state is output too
    cells = []
    has_stub = False  # an exercise cell since the last solution
    for index, cell in enumerate(nb.cells):
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        tags = _tags(cell)
        if EXERCISE_TAG in tags:
            has_stub = True
        if SOLUTION_TAG not in tags:
            cells.append(cell)
            continue
        if cell.cell_type == "code" and not has_stub:
            cell.source = stub_source(cell.source, where=f"{name}, cell {index} (tagged 'solution')")
            cell.metadata["tags"] = [EXERCISE_TAG if t == SOLUTION_TAG else t for t in tags]
            for key in ("jupyter", "cellView"):  # the stub is meant to be seen
                cell.metadata.pop(key, None)
            cells.append(cell)
        has_stub = False
    nb.cells = cells
    return nb


def _check_folders(src: Path, dest: Path) -> list[Path]:
    if not src.exists():
        raise StudentVersionError(f"the source folder {src} does not exist (give the folder of the notebooks)")
    if not src.is_dir():
        raise StudentVersionError(f"the source {src} is not a folder (give the folder of the notebooks)")
    notebooks = sorted(src.glob("*.ipynb"))
    if not notebooks:
        raise StudentVersionError(f"the source folder {src} holds no .ipynb notebook")
    src_r, dest_r = src.resolve(), dest.resolve()
    if dest_r == src_r or src_r in dest_r.parents:
        raise StudentVersionError(
            f"the destination {dest} is inside the source folder {src}: the student version would "
            "mix with (or overwrite) the notebooks with solutions. Choose a folder outside it, "
            "e.g. `student/` beside `notebooks/`."
        )
    if dest.exists() and not dest.is_dir():
        raise StudentVersionError(f"the destination {dest} exists and is not a folder")
    return notebooks


def make_student_version(src_dir: str | Path, dest_dir: str | Path) -> list[Path]:
    """Write the student version of every notebook of ``src_dir`` (``*.ipynb``) into ``dest_dir``.

    Args:
        src_dir: the folder of the notebooks with solutions (only its top level is read).
        dest_dir: where to write; created if missing; must not be ``src_dir`` or inside it. A
            notebook of the same name there is overwritten.

    Returns:
        The paths written, in name order. Nothing is written unless every notebook converts.

    Raises:
        StudentVersionError: a missing source folder, a source with no notebook, a destination
            inside the source, or a solution cell that is not valid Python.
    """
    nbformat = _nbformat()
    src, dest = Path(src_dir), Path(dest_dir)
    converted = []
    for path in _check_folders(src, dest):
        try:
            notebook = nbformat.read(path, as_version=4)
        except Exception as exc:  # nbformat raises several types for a damaged file
            raise StudentVersionError(f"{path.name} is not a readable notebook: {exc}") from exc
        student = student_notebook(notebook, name=path.name)
        nbformat.validate(student)
        converted.append((path.name, student))
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, student in converted:
        target = dest / filename
        nbformat.write(student, target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m course_lib.student SRC_DIR DEST_DIR``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.student",
        description="Write the student version of the course's notebooks: outputs cleared and "
        "every cell tagged 'solution' removed, leaving the learner's stub (signature, docstring, "
        "raise NotImplementedError) before each checker.",
    )
    parser.add_argument("src_dir", metavar="SRC_DIR", help="folder of the notebooks with solutions")
    parser.add_argument("dest_dir", metavar="DEST_DIR", help="folder to write the student version to")
    args = parser.parse_args(argv)
    try:
        written = make_student_version(args.src_dir, args.dest_dir)
    except StudentVersionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote the student version of {len(written)} notebook(s) to {args.dest_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
