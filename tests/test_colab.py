"""``python -m course_lib.colab``: badges and the Colab install block, on copies of the notebooks.

The real notebooks are only read: every rewrite happens on copies in a temporary folder.
"""

import ast
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib import colab
from course_lib.colab import (
    BLOCK_END,
    BLOCK_START,
    COLAB_EXTRAS,
    badge_markdown,
    colab_url,
    colabify_folder,
    github_owner_repo,
    install_block,
    main,
    with_badge,
    with_install_block,
)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
REPO = "https://github.com/someone/llm-course"
OTHER = "https://github.com/another/fork.git"
REAL_FIND_SPEC = importlib.util.find_spec


@pytest.fixture
def copies(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for path in NOTEBOOKS:
        shutil.copy(path, folder / path.name)
    return folder


def read(path):
    return nbformat.read(path, as_version=4)


def setup_cell(nb):
    return next(c for c in nb.cells if c.cell_type == "code")


def block_of(source: str) -> str:
    lines = source.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(BLOCK_START))
    end = next(i for i, line in enumerate(lines) if line.startswith(BLOCK_END))
    return "\n".join(lines[start : end + 1])


def test_rewrite_puts_a_badge_and_a_block_in_every_notebook_and_is_idempotent(copies):
    assert main(["--repository", REPO, str(copies)]) == 0
    first = {p.name: p.read_bytes() for p in copies.glob("*.ipynb")}
    for path in NOTEBOOKS:
        original, nb = read(path), read(copies / path.name)
        title = nb.cells[0].source.split("\n")
        assert title[0] == original.cells[0].source.split("\n")[0]  # the title line stays first
        expected = (
            "https://colab.research.google.com/github/someone/llm-course/blob/main/notebooks/" + path.name
        )
        assert title[2] == f"[![Open In Colab]({colab.BADGE_IMAGE})]({expected})"
        assert sum(colab.BADGE_IMAGE in line for line in title) == 1
        # The rest of the title cell is untouched.
        assert "\n".join(title[4:]) == "\n".join(original.cells[0].source.split("\n")[1:]).lstrip("\n")
        code = setup_cell(nb).source
        ast.parse(code)  # still plain Python: no magics
        assert code.count(BLOCK_START) == 1 and code.count(BLOCK_END) == 1
        assert "seed_everything" in code and "get_device" in code
        assert code.replace("\n" + block_of(code) + "\n\n", "") == setup_cell(original).source
        # Outputs and every other cell are untouched.
        for before, after in zip(original.cells[1:], nb.cells[1:]):
            if after is not setup_cell(nb):
                assert after.source == before.source
            assert after.get("outputs") == before.get("outputs")
    # Twice: nothing changes, nothing is written.
    assert colabify_folder(copies, repository=REPO) == []
    assert {p.name: p.read_bytes() for p in copies.glob("*.ipynb")} == first


def test_a_new_address_replaces_the_old_one_everywhere(copies):
    colabify_folder(copies, repository=REPO)
    written = colabify_folder(copies, repository=OTHER, branch="v1.0")
    assert len(written) == len(NOTEBOOKS)
    for path in copies.glob("*.ipynb"):
        text = path.read_text()
        assert "someone/llm-course" not in text
        nb = read(path)
        assert f"github/another/fork/blob/v1.0/notebooks/{path.name})" in nb.cells[0].source
        code = setup_cell(nb).source
        assert code.count(BLOCK_START) == 1
        assert "course_lib @ git+https://github.com/another/fork@v1.0" in code


def test_rewritten_notebooks_pass_ruff(copies):
    colabify_folder(copies, repository=REPO)
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--line-length", "100", "--target-version", "py311",
         "--select", "E,F,W,B,UP", "--ignore", "E501,B905,E402,F401", str(copies)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def run_block(monkeypatch, returncode=0, installed=False):
    """Execute the install block alone with pip replaced by a recorder; return the calls.

    ``installed``: whether ``course_lib`` is importable (here it always is, so a missing one is
    simulated).
    """
    calls = []
    monkeypatch.setattr(
        importlib.util, "find_spec",
        lambda name, *a: REAL_FIND_SPEC(name, *a) if installed or name != "course_lib" else None,
    )

    def fake_run(args, **kwargs):
        calls.append(args)
        return subprocess.CompletedProcess(args, returncode, stdout="", stderr="pip: no network")

    monkeypatch.setattr(subprocess, "run", fake_run)
    exec(compile(install_block(repository=REPO), "<colab block>", "exec"), {})
    return calls


def test_outside_colab_the_block_installs_nothing(monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert run_block(monkeypatch) == []


def test_in_colab_the_block_installs_course_lib_and_the_extras(monkeypatch, capsys):
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-test")
    (call,) = run_block(monkeypatch)
    assert call[:5] == [sys.executable, "-m", "pip", "install", "--quiet"]
    assert call[5:] == ["course_lib @ git+https://github.com/someone/llm-course@main", *COLAB_EXTRAS]
    assert "installing course_lib" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match=r"(?s)pip could not install course_lib.*no network"):
        run_block(monkeypatch, returncode=1)
    # Run a second time in the same Colab session: course_lib is there, nothing to install.
    assert run_block(monkeypatch, installed=True) == []


def test_a_rewritten_setup_cell_runs_outside_colab_without_pip(copies, monkeypatch, capsys):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)

    def no_pip(*args, **kwargs):
        raise AssertionError("the setup cell ran a subprocess outside Colab")

    monkeypatch.setattr(subprocess, "run", no_pip)
    colabify_folder(copies, repository=REPO)
    namespace: dict = {}
    exec(setup_cell(read(copies / "05_attention.ipynb")).source, namespace)
    assert namespace["device"].type in ("cpu", "cuda", "mps")
    assert "course_lib is ready" in capsys.readouterr().out


def test_the_colab_extras_are_pinned_as_in_requirements():
    requirements = {line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()}
    for extra in COLAB_EXTRAS:
        assert extra in requirements, extra


def test_addresses():
    assert github_owner_repo("https://github.com/a/b") == ("a", "b")
    assert github_owner_repo("https://github.com/a/b.git/") == ("a", "b")
    for bad in ("https://gitlab.com/a/b", "http://github.com/a/b", "https://github.com/a",
                "https://github.com/a/b/c", "github.com/a/b", "https://github.com/a/b?x=1"):
        with pytest.raises(ValueError, match="github.com/OWNER/REPO"):
            github_owner_repo(bad)
    assert colab_url("05_attention.ipynb", repository=REPO, branch="dev") == (
        "https://colab.research.google.com/github/someone/llm-course/blob/dev/notebooks/05_attention.ipynb"
    )
    with pytest.raises(ValueError, match="notebook file name"):
        colab_url("notebooks/05_attention.ipynb", repository=REPO)
    with pytest.raises(ValueError, match="branch"):
        badge_markdown("05_attention.ipynb", repository=REPO, branch="main@evil")


def test_the_repository_is_configured_in_one_place():
    assert colab.REPOSITORY.startswith("https://github.com/")
    source = Path(colab.__file__).read_text()
    assert source.count('REPOSITORY = ') == 1
    # No other module hard-codes a course repository address.
    for path in (ROOT / "course_lib").rglob("*.py"):
        if path.name != "colab.py":
            assert "OWNER/REPO" not in path.read_text(), path


def test_pieces_without_a_notebook():
    assert with_badge("# T", "B") == "# T\n\nB"
    old = f"[![Open In Colab]({colab.BADGE_IMAGE})](old)"
    assert with_badge(f"# T\n\n{old}\n\ntext\nmore", "NEW") == "# T\n\nNEW\n\ntext\nmore"
    block = install_block(repository=REPO)
    once = with_install_block("# head\nx = 1", block)
    assert once == f"# head\n\n{block}\n\nx = 1"
    assert with_install_block(once, block) == once
    assert with_install_block("x = 1", block) == f"{block}\n\nx = 1"
    damaged = f"{BLOCK_START}\nimport os\n"
    with pytest.raises(ValueError, match="not its end line"):
        with_install_block(damaged, install_block(repository=REPO))


def test_command_line(tmp_path, capsys, copies):
    assert main([str(tmp_path / "missing")]) == 1
    assert "no folder" in capsys.readouterr().err
    assert main(["--repository", "https://gitlab.com/a/b", str(copies)]) == 1
    assert "GitHub" in capsys.readouterr().err
    assert main([str(copies)]) == 0  # the placeholder address works, with a warning
    out = capsys.readouterr()
    assert "placeholder" in out.err and f"{len(NOTEBOOKS)} notebook(s) rewritten" in out.out
    done = subprocess.run([sys.executable, "-m", "course_lib.colab", "--repository", REPO, str(copies)],
                          capture_output=True, text=True)
    assert done.returncode == 0 and f"{len(NOTEBOOKS)} notebook(s) rewritten" in done.stdout


def test_rewritten_notebooks_still_pass_the_stored_notebook_checks(copies):
    from test_notebooks import (  # tests/ is on sys.path under pytest
        test_anatomy,
        test_checked_cells_have_outputs_to_compare,
        test_name_and_kernel,
        test_stored_run_top_to_bottom_without_errors,
    )

    colabify_folder(copies, repository=REPO)
    for path in sorted(copies.glob("*.ipynb")):
        for check in (test_anatomy, test_name_and_kernel, test_stored_run_top_to_bottom_without_errors,
                      test_checked_cells_have_outputs_to_compare):
            check(path)
