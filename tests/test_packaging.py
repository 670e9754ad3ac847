"""The install files agree with each other and CI runs exactly what the README says."""

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def requirement_lines(text: str) -> list[str]:
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


def pip_section_of_environment_yml() -> list[str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    out = []
    for line in lines[start + 1 :]:
        match = re.match(r"^\s+- (.+)$", line)
        if not match:
            break
        out.append(match.group(1).strip())
    return out


def name_of(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_same_packages_as_requirements():
    assert pip_section_of_environment_yml() == requirement_lines((ROOT / "requirements.txt").read_text())


def test_requirements_pin_the_tested_torch_and_install_course_lib():
    reqs = requirement_lines((ROOT / "requirements.txt").read_text())
    assert "torch==2.13.0" in reqs  # the version the course is tested with
    assert "-e ." in reqs
    names = {name_of(r) for r in reqs}
    for needed in (
        "jupyterlab", "ipywidgets", "numpy", "matplotlib", "transformers", "tokenizers", "bertviz",
        "nbval", "gensim", "sacrebleu", "tqdm", "safetensors", "pytest", "ipykernel",
    ):
        assert needed in names, needed
    assert "bertviz>=1.4.1,<2" in reqs


CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"
INSTALL_DOCS = ("README.md", "requirements.txt", "environment.yml", "docs/instructor-guide.md")


def pinned_torch() -> str:
    reqs = requirement_lines((ROOT / "requirements.txt").read_text())
    return next(r.split("==")[1] for r in reqs if r.startswith("torch=="))


@pytest.mark.parametrize("name", INSTALL_DOCS)
def test_install_texts_name_the_same_torch_and_the_cpu_index(name):
    """PyPI's Linux torch is the CUDA build (about 4 GB); every install text gives the CPU path."""
    text = (ROOT / name).read_text()
    version = pinned_torch()
    assert set(re.findall(r"torch==([\w.+]+)", text)) == {version}, f"{name} names another torch version"
    assert f"torch=={version} {CPU_INDEX}" in text, f"{name} must give PyTorch's CPU-index command"
    for claim in ("CPU wheel for every platform", "pinned to the CPU wheel", "keep torch pinned to the CPU"):
        assert claim not in text, f"{name}: the pin does not avoid CUDA on Linux ({claim!r})"


def test_readme_gives_both_download_sizes():
    start = (ROOT / "README.md").read_text()
    assert "4 GB" in start and "200 MB" in start


def test_course_lib_dependencies_are_in_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {name_of(r) for r in requirement_lines((ROOT / "requirements.txt").read_text())}
    for dep in project["dependencies"]:
        assert name_of(dep) in names, dep


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- test-command -->\s*```bash\n(.+?)\n```", readme, re.S)
    assert match, "README.md must hold the test command in a bash block after <!-- test-command -->"
    command = match.group(1).strip()
    install, test = (part.strip() for part in command.split("&&"))
    assert install == "pip install -r requirements.txt"
    ci = (ROOT / ".ci" / "run").read_text()
    assert install in ci
    assert ci.rstrip().splitlines()[-1].strip() == test


@pytest.mark.parametrize("module", ["env", "data", "train", "metrics", "checkpoint", "checks", "objectives"])
def test_core_modules_import_and_document_themselves(module):
    import importlib

    mod = importlib.import_module(f"course_lib.{module}")
    assert mod.__doc__ and len(mod.__doc__) > 40
    for name in getattr(mod, "__all__", []):
        obj = getattr(mod, name)
        if callable(obj):
            assert obj.__doc__, f"course_lib.{module}.{name} has no docstring"
