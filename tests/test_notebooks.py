"""The notebooks as stored: run top to bottom, with outputs, small, portable, and following the anatomy.

nbval (``pytest`` with the settings in pyproject.toml) re-runs every notebook; these tests read the
stored files, so a notebook saved half-run, with an error, or with a path of the author's machine in
its outputs fails here with a clear message.
"""

import json
import re
import socket
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
MAX_NOTEBOOK_BYTES = 3_000_000
MAX_TEXT_OUTPUT_CHARS = 20_000
MACHINE_PATHS = re.compile(r"(/work/|/home/\w|/root/|/Users/\w|/tmp/|[A-Z]:\\\\Users)")


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def output_text(output) -> str:
    parts = [output.get("text", "")]
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/") or mime == "application/json":
            if isinstance(value, list):  # nbformat stores text as a list of lines
                value = "".join(value)
            parts.append(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
    parts += output.get("traceback", [])
    return "".join("".join(p) if isinstance(p, list) else p for p in parts)


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_name_and_kernel(path):
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), "name notebooks NN_short_name.ipynb"
    assert load(path)["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_run_top_to_bottom_without_errors(path):
    cells = [c for c in load(path)["cells"] if c["cell_type"] == "code"]
    counts = [c["execution_count"] for c in cells]
    assert None not in counts, "every code cell must be run before saving"
    assert counts == list(range(1, len(cells) + 1)), f"run top to bottom once: counts {counts}"
    for cell in cells:
        for output in cell["outputs"]:
            assert output["output_type"] != "error", f"stored error in cell {cell['execution_count']}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_are_small_and_hold_no_machine_paths_or_names(path):
    assert path.stat().st_size < MAX_NOTEBOOK_BYTES, f"{path.name} is {path.stat().st_size:,} bytes"
    host = socket.gethostname()
    for cell in load(path)["cells"]:
        for output in cell.get("outputs", []):
            text = output_text(output)
            assert len(text) < MAX_TEXT_OUTPUT_CHARS, f"huge output in cell {cell['execution_count']}"
            match = MACHINE_PATHS.search(text)
            assert not match, f"machine path {match.group(0)!r} in cell {cell['execution_count']}"
            assert len(host) < 4 or host not in text, f"host name in cell {cell['execution_count']}"


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def source(cell) -> str:
    return "".join(cell["source"])


def cell_output(cell) -> str:
    return "".join(output_text(o) for o in cell.get("outputs", []))


def checker_call(code: str) -> str | None:
    """NAME of the last ``check.NAME(...)`` call in a cell, or None."""
    names = re.findall(r"\bcheck\.(\w+)\(", code)
    return names[-1] if names else None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_anatomy(path):
    cells = load(path)["cells"]
    first = source(cells[0])
    assert cells[0]["cell_type"] == "markdown" and first.startswith("# "), "start with a title"
    assert "Time." in first or "**Time" in first, "the first cell states the time on CPU and GPU"
    code = [source(c) for c in cells if c["cell_type"] == "code"]
    assert "seed_everything" in code[0] and "get_device" in code[0], "the first code cell is the setup"
    solutions = [i for i, c in enumerate(cells) if "solution" in tags(c)]
    assert len(solutions) >= 3, "at least 3 exercises, each solution in a cell tagged 'solution'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_exercise_is_prompt_stub_checker_then_hidden_solution(path):
    """What a learner sees: the prompt, a stub to fill in, the checker saying "not done yet", and
    the solution one click away (source hidden in JupyterLab and in Colab), re-checked: ✅."""
    cells = load(path)["cells"]
    for i, cell in enumerate(cells):
        if "solution" not in tags(cell):
            continue
        where = f"{path.name} cell {i}"
        meta = cell["metadata"]
        assert cell["cell_type"] == "code", where
        assert meta.get("jupyter", {}).get("source_hidden") is True, f"{where}: hide the solution's source"
        assert meta.get("cellView") == "form", f"{where}: Colab hides a cell's code with cellView 'form'"
        assert source(cell).startswith("# @title Solution"), f"{where}: Colab shows the '# @title' line"
        assert "nbval-check-output" in tags(cell), f"{where}: the solution's verdict is compared"
        assert "✅" in cell_output(cell), f"{where}: the stored solution must pass its checker"
        checker, stub, prompt = cells[i - 1], cells[i - 2], cells[i - 3]
        name = checker_call(source(cell))
        assert name, f"{where}: the solution re-runs its checker"
        assert checker["cell_type"] == "code" and checker_call(source(checker)) == name, (
            f"{where}: the cell before a solution is its checker, check.{name}(...)"
        )
        assert "nbval-check-output" in tags(checker), f"{where}: the checker's verdict is compared"
        assert "Not done yet" in cell_output(checker), f"{where}: the stored checker sees the stub"
        assert "exercise" in tags(stub) and "raise NotImplementedError" in source(stub), (
            f"{where}: the checker follows a stub cell tagged 'exercise' that raises NotImplementedError"
        )
        assert prompt["cell_type"] == "markdown", f"{where}: the stub follows the exercise's prompt"
    stubs = [i for i, c in enumerate(cells) if "exercise" in tags(c)]
    assert len(stubs) == len([c for c in cells if "solution" in tags(c)]), "one stub per solution"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_checked_cells_have_outputs_to_compare(path):
    cells = load(path)["cells"]
    for i, cell in enumerate(cells):
        if "nbval-check-output" not in tags(cell):
            continue
        assert cell["cell_type"] == "code", f"cell {i}"
        assert cell["outputs"], f"cell {i} is checked but has no output"
        for output in cell["outputs"]:
            assert "text/html" not in output.get("data", {}), "never compare HTML/JS outputs"
        text = cell_output(cell)
        assert "❌" not in text, f"cell {i}: a stored checker says wrong"
        before_solution = i + 1 < len(cells) and "solution" in tags(cells[i + 1])
        assert before_solution or "Not done yet" not in text, f"cell {i}: only a checker before its solution waits"


# What a notebook's prose and code never talk about: how the course is tested and built.
FORBIDDEN = {
    "nbval or its markers": re.compile(r"nbval", re.IGNORECASE),
    "pytest": re.compile(r"\bpytest\b", re.IGNORECASE),
    "the test files": re.compile(r"\btests/|\btest_\w+\.py\b"),
    "CI": re.compile(r"\bCI\b"),
    "seeds (say what varies: initialisations, runs)": re.compile(r"\bseeds\b|\bseeds'", re.IGNORECASE),
    "a bare metrics.record( (show numbers with metrics.show)": re.compile(r"metrics\.record\("),
    "the metrics and timings files": re.compile(r"COURSE_(?:METRICS|TIMINGS)_FILE"),
    "the course's bars": re.compile(r"course's bars?\b", re.IGNORECASE),
    "upstream issue numbers": re.compile(r"\bissues?\s+#?\d+|/(?:issues|pull)/\d+", re.IGNORECASE),
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_prose_and_code_are_about_the_idea(path):
    found = []
    for i, cell in enumerate(load(path)["cells"]):
        for what, pattern in FORBIDDEN.items():
            match = pattern.search(source(cell))
            if match:
                found.append(f"cell {i} mentions {what}: {match.group(0)!r}")
    assert not found, "\n".join(found)


# Words of a name that say it holds a time or a speed (``w2v_seconds``, ``step_s``, ``speedup``).
TIMING_WORDS = {"time", "times", "timing", "second", "seconds", "secs", "ms", "elapsed", "speed",
                "speedup", "ratio", "faster", "slower", "perf", "counter", "timeit", "wall"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_assert_on_time_or_speed(path):
    """A slower or busier machine must never turn a learner's cell red."""
    import ast

    for i, cell in enumerate(load(path)["cells"]):
        if cell["cell_type"] != "code":
            continue
        lines = [line for line in source(cell).splitlines() if not line.lstrip().startswith(("%", "!"))]
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.Assert):
                words = {w.lower() for w in re.split(r"[^A-Za-z]+|_", ast.unparse(node.test)) if w}
                assert not (words & TIMING_WORDS or re.search(r"\w_s\b", ast.unparse(node.test))), (
                    f"cell {i} asserts on a time or speed: {ast.unparse(node)}"
                )
