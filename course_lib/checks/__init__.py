"""Self-check functions for the exercises: one submodule per notebook, one function per exercise.

A checker runs the learner's function on cases chosen to catch the plausible mistakes and returns a
``Verdict`` that shows as a one-line message: what is right, or which mistake it looks like and a
hint. An exercise stub that still raises ``NotImplementedError`` gets "not done yet", not a crash.

    from course_lib.checks import welcome as check
    check.one_hot(one_hot)
"""

from course_lib.checks.core import Verdict, run_checker

__all__ = ["Verdict", "run_checker"]
