"""course_lib installed from its built wheel, with no repository beside it, has what notebooks need.

Colab and an offline classroom get course_lib from ``pip install`` alone: the shipped checkpoints
and their tokenizers (``assets/``) must be package data of the wheel, found through course_lib,
never through a path relative to the repository. This test builds the wheel from a copy of the
sources, installs it with ``--no-deps`` into a fresh virtual environment (whose dependencies come
from this environment through a ``.pth`` file, so nothing is downloaded), and runs course_lib from
an empty folder.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import hashlib
import json
from pathlib import Path

import course_lib
from course_lib import checkpoint, data

assets = checkpoint.ASSETS_DIR
model, tokenizer, metadata = checkpoint.load_pretrained("gpt")
ids = tokenizer("the history of the city", return_tensors="pt")["input_ids"]
print(json.dumps({
    "course_lib": course_lib.__file__,
    "modules": sorted(str(p.relative_to(Path(course_lib.__file__).parent)) for p in Path(course_lib.__file__).parent.rglob("*.py")),
    "assets": str(assets),
    "files": sorted(str(p.relative_to(assets)) for p in assets.rglob("*") if p.is_file()),
    "gpt_sha256": hashlib.sha256((checkpoint.asset_path("gpt") / "model.safetensors").read_bytes()).hexdigest(),
    "gpt_logits_shape": list(model(ids).shape),
    "gpt_expected_shape": [1, ids.shape[1], model.config.vocab_size],
    "wiki_train_articles": len(data.load_corpus("wiki").train),
}))
"""


def run(args, **kwargs):
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{args[:4]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def shipped_files() -> list[str]:
    assets = ROOT / "assets"
    return sorted(str(p.relative_to(assets)) for p in assets.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


@pytest.fixture(scope="module")
def wheel_install(tmp_path_factory):
    """course_lib built as a wheel and installed alone in a fresh venv: (python, venv, env, tmp)."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    # What the build reads, copied, so the build leaves no build/ folder in the repository.
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("course_lib", "assets"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)

    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(src)])
    (wheel,) = wheels.glob("course_lib-*.whl")

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # The dependencies (torch, transformers...) from this environment; its own course_lib (an
    # editable install) is not picked up: .pth files of a folder added this way are not run.
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_course_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)])

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(COURSE_CACHE_DIR=str(tmp_path / "cache"), PYTHONNOUSERSITE="1", OMP_NUM_THREADS="1")
    return python, venv, env, tmp_path


def test_the_wheel_ships_the_assets_and_works_without_the_repository(wheel_install):
    python, venv, env, tmp_path = wheel_install
    empty = tmp_path / "empty"
    empty.mkdir()
    probe = run([str(python), "-c", PROBE], cwd=empty, env=env)
    found = json.loads(probe.stdout.strip().splitlines()[-1])

    assert Path(found["course_lib"]).is_relative_to(venv), "course_lib must come from the wheel"
    assert Path(found["assets"]).is_relative_to(venv), "the assets must come from the wheel"
    modules = sorted(str(p.relative_to(ROOT / "course_lib")) for p in (ROOT / "course_lib").rglob("*.py"))
    assert found["modules"] == modules, "every module of course_lib (every subpackage) is in the wheel"
    assert found["files"] == shipped_files(), "every file of assets/ ships in the wheel"
    repo_gpt = hashlib.sha256((ROOT / "assets" / "gpt" / "model.safetensors").read_bytes()).hexdigest()
    assert found["gpt_sha256"] == repo_gpt
    assert found["gpt_logits_shape"] == found["gpt_expected_shape"]  # the shipped GPT runs
    assert found["wiki_train_articles"] > 50  # the corpus comes from gensim's wheel


@pytest.mark.parametrize("name", ["08_causal_lm.ipynb", "10_looking_inside.ipynb"])
def test_a_notebook_alone_in_a_folder_runs_with_the_wheel(wheel_install, name):
    """Colab's and an offline classroom's case: the notebook, nothing of the repository beside it."""
    python, _, env, tmp_path = wheel_install
    alone = tmp_path / f"alone-{name}"
    alone.mkdir()
    shutil.copy(ROOT / "notebooks" / name, alone / name)
    done = subprocess.run(
        [str(python), "-m", "pytest", "-q", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
         "-W", "ignore::DeprecationWarning", name],
        cwd=alone, env={**env, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")},
        capture_output=True, text=True,
    )
    assert done.returncode == 0, f"{name} failed from an empty folder:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
