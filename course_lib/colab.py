"""Colab: the "Open in Colab" badges and the install block of every notebook's setup cell.

The address of the course's repository is set in ONE place, :data:`REPOSITORY` below (or given on
the command line), and one command writes it into every notebook::

    python -m course_lib.colab notebooks/
    python -m course_lib.colab --repository https://github.com/someone/llm-course notebooks/

For each notebook it (re)writes:

- an "Open in Colab" badge on the line after the title of the first (markdown) cell, pointing at
  ``https://colab.research.google.com/github/OWNER/REPO/blob/BRANCH/notebooks/NAME.ipynb``;
- a block at the top of the setup cell (the first code cell) that, in Colab only, pip-installs
  ``course_lib`` from the repository and the packages Colab lacks (:data:`COLAB_EXTRAS`). Outside
  Colab the block does nothing: no network, no pip. It is plain Python (no ``%pip`` magic), so the
  cell stays valid Python for ``ast``, ruff and nbval.

Both are found again by their markers and replaced, so running the command twice changes nothing,
and running it with a new address rewrites every badge and block. Outputs are not touched.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "REPOSITORY",
    "BRANCH",
    "NOTEBOOK_FOLDER",
    "COLAB_EXTRAS",
    "PLACEHOLDER",
    "BLOCK_START",
    "BLOCK_END",
    "github_owner_repo",
    "colab_url",
    "badge_markdown",
    "install_block",
    "with_badge",
    "with_install_block",
    "colabify_notebook",
    "colabify_folder",
    "main",
]

# ------------------------------------------------------------------------------------------------
# THE ONE PLACE TO CONFIGURE: the GitHub address of the course repository that learners open in
# Colab and that Colab installs course_lib from. "OWNER/REPO" is a placeholder: replace it with the
# real address (or pass --repository), then run `python -m course_lib.colab notebooks/`.
PLACEHOLDER = "https://github.com/OWNER/REPO"
REPOSITORY = PLACEHOLDER
BRANCH = "main"
# ------------------------------------------------------------------------------------------------

NOTEBOOK_FOLDER = "notebooks"  # where the notebooks live inside the repository
# What the notebooks import that neither Colab nor course_lib's own dependencies bring
# (the same pins as requirements.txt; tests/test_colab.py checks that they agree).
COLAB_EXTRAS = ("sacrebleu>=2.4,<3", "bertviz>=1.4.1,<2")

BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BLOCK_START = "# >>> Colab setup: written by `python -m course_lib.colab`; edit course_lib/colab.py, not this"
BLOCK_END = "# <<< Colab setup"

_GITHUB_PART = re.compile(r"[A-Za-z0-9_.-]+")


def github_owner_repo(repository: str) -> tuple[str, str]:
    """``("owner", "repo")`` of a GitHub address such as ``https://github.com/owner/repo``.

    A trailing ``/`` or ``.git`` is accepted. Colab opens notebooks from GitHub only, so any other
    host is a ``ValueError`` that says so.
    """
    if not isinstance(repository, str):
        raise TypeError(f"the repository address must be a str, got {type(repository).__name__}")
    parts = urlsplit(repository.strip())
    path = parts.path.strip("/").removesuffix(".git").split("/")
    if (
        parts.scheme != "https"
        or parts.netloc.lower() != "github.com"
        or len(path) != 2
        or not all(_GITHUB_PART.fullmatch(p) for p in path)
        or parts.query
        or parts.fragment
    ):
        raise ValueError(
            "the repository address must look like https://github.com/OWNER/REPO (Colab opens "
            f"notebooks from GitHub only), got {repository!r}"
        )
    return path[0], path[1]


def _check_branch(branch: str) -> str:
    if not isinstance(branch, str) or not branch or any(c.isspace() or c in "@#?" for c in branch):
        raise ValueError(f"the branch must be a git branch or tag name such as 'main', got {branch!r}")
    return branch


def colab_url(notebook_name: str, *, repository: str = REPOSITORY, branch: str = BRANCH,
              folder: str = NOTEBOOK_FOLDER) -> str:
    """The Colab address that opens ``folder/notebook_name`` of the repository on ``branch``."""
    owner, repo = github_owner_repo(repository)
    if not notebook_name.endswith(".ipynb") or "/" in notebook_name:
        raise ValueError(f"expected a notebook file name such as '05_attention.ipynb', got {notebook_name!r}")
    path = "/".join(p for p in (folder.strip("/"), notebook_name) if p)
    return f"https://colab.research.google.com/github/{owner}/{repo}/blob/{_check_branch(branch)}/{path}"


def badge_markdown(notebook_name: str, **where: str) -> str:
    """The markdown of the "Open in Colab" badge of one notebook (one line)."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook_name, **where)})"


def install_block(*, repository: str = REPOSITORY, branch: str = BRANCH) -> str:
    """The setup cell's Colab block: pip-installs course_lib and :data:`COLAB_EXTRAS` in Colab only.

    The test is the one of ``course_lib.env.in_colab`` (course_lib cannot be imported before it is
    installed); nothing is installed when course_lib is already there (the cell run a second time).
    A failed install raises ``RuntimeError`` with the end of pip's message.
    """
    owner, repo = github_owner_repo(repository)
    spec = f"course_lib @ git+https://github.com/{owner}/{repo}@{_check_branch(branch)}"
    packages = ", ".join(json.dumps(p) for p in (spec, *COLAB_EXTRAS))
    return "\n".join([
        BLOCK_START,
        "import importlib.util",
        "import os",
        "import sys",
        "",
        "_in_colab = \"google.colab\" in sys.modules or \"COLAB_RELEASE_TAG\" in os.environ",
        "if _in_colab and importlib.util.find_spec(\"course_lib\") is None:  # only in Colab, once",
        "    import subprocess",
        "",
        f"    _packages = [{packages}]",
        "    print(\"Colab: installing course_lib and what Colab lacks (about a minute)...\")",
        "    _pip = subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"--quiet\", *_packages],",
        "                          capture_output=True, text=True)",
        "    if _pip.returncode != 0:",
        "        raise RuntimeError(\"pip could not install course_lib in Colab:\\n\" + _pip.stderr[-2000:])",
        "    importlib.invalidate_caches()  # so the import below finds the new packages",
        BLOCK_END,
    ])


def with_badge(title_source: str, badge: str) -> str:
    """The title cell's markdown with ``badge`` on its own line after the title, old badges removed."""
    lines = [line for line in title_source.split("\n") if BADGE_IMAGE not in line]
    title, rest = lines[0], lines[1:]
    while rest and not rest[0].strip():
        rest.pop(0)
    return "\n".join([title, "", badge] + (["", *rest] if rest else []))


def with_install_block(setup_source: str, block: str) -> str:
    """The setup cell's code with ``block`` in place of the old one, or after its leading comments."""
    lines = setup_source.split("\n")
    starts = [i for i, line in enumerate(lines) if line.startswith(BLOCK_START)]
    if starts:
        start = starts[0]
        end = next((i for i in range(start, len(lines)) if lines[i].startswith(BLOCK_END)), None)
        if end is None:
            raise ValueError(
                "the setup cell has the start of a Colab block but not its end line "
                f"({BLOCK_END!r}); restore or delete the block by hand, then run the command again"
            )
        if len(starts) > 1 and starts[1] <= end:
            raise ValueError("the setup cell holds a damaged Colab block (two starts); delete it by hand")
        return "\n".join(lines[:start] + block.split("\n") + lines[end + 1 :])
    at = 0
    while at < len(lines) and lines[at].startswith("#"):
        at += 1  # after the cell's leading comments ("Setup: run this cell first...")
    before, after = lines[:at], lines[at:]
    if before:
        before = [*before, ""]
    if after and after[0].strip():
        after = ["", *after]
    return "\n".join(before + block.split("\n") + after)


def colabify_notebook(notebook: Any, notebook_name: str, *, repository: str = REPOSITORY,
                      branch: str = BRANCH, folder: str = NOTEBOOK_FOLDER) -> bool:
    """Write the badge and the install block into ``notebook`` (an nbformat notebook), in place.

    Returns:
        True if anything changed.

    Raises:
        ValueError: the first cell is not a markdown title (``# ...``) or there is no code cell.
    """
    cells = notebook.cells
    if not cells or cells[0].cell_type != "markdown" or not cells[0].source.startswith("# "):
        raise ValueError(f"{notebook_name}: the first cell must be the markdown title ('# NN · Title')")
    setup = next((c for c in cells if c.cell_type == "code"), None)
    if setup is None:
        raise ValueError(f"{notebook_name}: no code cell, so no setup cell to put the Colab block in")
    badge = badge_markdown(notebook_name, repository=repository, branch=branch, folder=folder)
    title = with_badge(cells[0].source, badge)
    code = with_install_block(setup.source, install_block(repository=repository, branch=branch))
    changed = (title, code) != (cells[0].source, setup.source)
    cells[0].source, setup.source = title, code
    return changed


def colabify_folder(folder_path: str | Path, *, repository: str = REPOSITORY, branch: str = BRANCH,
                    folder: str = NOTEBOOK_FOLDER) -> list[Path]:
    """Rewrite the badge and install block of every ``*.ipynb`` in ``folder_path``.

    Only notebooks that change are written. Returns the paths written. Every notebook is checked
    before any is written, so an error leaves the folder as it was.
    """
    import nbformat

    github_owner_repo(repository)
    _check_branch(branch)
    src = Path(folder_path)
    if not src.is_dir():
        raise FileNotFoundError(f"no folder {src} (give the folder of the notebooks, e.g. notebooks/)")
    paths = sorted(src.glob("*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"the folder {src} holds no .ipynb notebook")
    changed = []
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        if colabify_notebook(notebook, path.name, repository=repository, branch=branch, folder=folder):
            changed.append((path, notebook))
    for path, notebook in changed:
        nbformat.write(notebook, path)
    return [path for path, _ in changed]


def main(argv: list[str] | None = None) -> int:
    """``python -m course_lib.colab [--repository URL] [--branch NAME] NOTEBOOK_DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.colab",
        description="Write the 'Open in Colab' badge and the Colab install block of every notebook.",
    )
    parser.add_argument("notebook_dir", metavar="NOTEBOOK_DIR", help="the folder of the notebooks")
    parser.add_argument("--repository", default=REPOSITORY,
                        help=f"GitHub address of the course (default: course_lib.colab.REPOSITORY, {REPOSITORY})")
    parser.add_argument("--branch", default=BRANCH, help=f"branch or tag Colab opens and installs (default {BRANCH})")
    parser.add_argument("--folder", default=NOTEBOOK_FOLDER,
                        help=f"the notebooks' folder inside the repository (default {NOTEBOOK_FOLDER})")
    args = parser.parse_args(argv)
    try:
        written = colabify_folder(args.notebook_dir, repository=args.repository, branch=args.branch,
                                  folder=args.folder)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if github_owner_repo(args.repository) == github_owner_repo(PLACEHOLDER):
        print(f"warning: the repository is still the placeholder {PLACEHOLDER}; set REPOSITORY in "
              "course_lib/colab.py or pass --repository", file=sys.stderr)
    print(f"{len(written)} notebook(s) rewritten" + "".join(f"\n  {p.name}" for p in written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
