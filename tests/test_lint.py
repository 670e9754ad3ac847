import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean_on_library_tests_and_notebooks():
    # ruff comes with requirements.txt; run it from this interpreter's environment.
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "course_lib", "tests", "notebooks"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
