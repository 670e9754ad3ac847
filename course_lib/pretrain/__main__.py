"""``python -m course_lib.pretrain MODEL [options]``: run one model's pretraining recipe."""

from __future__ import annotations

import importlib
import sys

RECIPES = ("gpt", "bert")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in RECIPES:
        print(f"usage: python -m course_lib.pretrain {{{','.join(RECIPES)}}} [options]", file=sys.stderr)
        return 2
    recipe = importlib.import_module(f"course_lib.pretrain.{argv[0]}")
    return int(recipe.main(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
