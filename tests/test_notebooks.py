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
            parts.append(value if isinstance(value, str) else json.dumps(value))
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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_anatomy(path):
    cells = load(path)["cells"]
    first = "".join(cells[0]["source"])
    assert cells[0]["cell_type"] == "markdown" and first.startswith("# "), "start with a title"
    assert "Time." in first or "**Time" in first, "the first cell states the time on CPU and GPU"
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    assert "seed_everything" in code[0] and "get_device" in code[0], "the first code cell is the setup"
    solutions = [i for i, c in enumerate(cells) if "solution" in c.get("metadata", {}).get("tags", [])]
    assert len(solutions) >= 3, "at least 3 exercises, each solution in a cell tagged 'solution'"
    for i in solutions:
        following = "".join("".join(c["source"]) for c in cells[i + 1 : i + 3] if c["cell_type"] == "code")
        assert "check." in following, f"the solution in cell {i} needs a checker call right after it"
        assert "NBVAL_CHECK_OUTPUT" in following, "checker cells compare their verdict under nbval"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_checked_cells_have_outputs_to_compare(path):
    for cell in load(path)["cells"]:
        if cell["cell_type"] == "code" and "NBVAL_CHECK_OUTPUT" in "".join(cell["source"]):
            assert cell["outputs"], f"cell {cell['execution_count']} is checked but has no output"
            for output in cell["outputs"]:
                assert "text/html" not in output.get("data", {}), "never compare HTML/JS outputs"
            texts = [output_text(o) for o in cell["outputs"]]
            assert not any("❌" in t or "Not done yet" in t for t in texts), "a checker says wrong"
