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


def test_requirements_pin_torch_to_the_cpu_wheel_and_install_course_lib():
    reqs = requirement_lines((ROOT / "requirements.txt").read_text())
    assert "torch==2.13.0" in reqs  # a bare "torch" pulls gigabytes of CUDA packages
    assert "-e ." in reqs
    names = {name_of(r) for r in reqs}
    for needed in (
        "jupyterlab", "ipywidgets", "numpy", "matplotlib", "transformers", "tokenizers", "bertviz",
        "nbval", "gensim", "sacrebleu", "tqdm", "safetensors", "pytest", "ipykernel",
    ):
        assert needed in names, needed
    assert "bertviz>=1.4.1,<2" in reqs


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
