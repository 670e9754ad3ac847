import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is installed by requirements.txt")
def test_ruff_is_clean_on_library_tests_and_notebooks():
    result = subprocess.run(
        ["ruff", "check", "course_lib", "tests", "notebooks"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
