"""Checks on the source itself that no behaviour test would name."""

import ast
from collections import Counter
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "soundsmith"


def test_no_module_defines_a_top_level_name_twice():
    """A second `def name` in a module silently replaces the first for every caller (train/cli.py once had two
    `teacher_projection`s with different signatures, and `train clap --text-from` broke)."""
    twice = []
    for file in sorted(SRC.rglob("*.py")):
        tree = ast.parse(file.read_text(encoding="utf-8"))
        names = Counter(node.name for node in tree.body
                        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))
        twice += [f"{file.relative_to(SRC)}: {name}" for name, count in names.items() if count > 1]
    assert not twice, twice
